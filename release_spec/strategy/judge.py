r"""The canary judge: the error-rate and slow-request metrics judged together, anytime-valid.

One place where a canary's looks become a decision, shared by the HTTP judge service
(``release_spec.services``) and the rollout controller (``release_spec.strategy.rollout``). Each
judged metric is a rate per request (errors; requests slower than the SLO) and gets two
anytime-valid procedures from `release_spec.statistics`: a
`~release_spec.statistics.SequentialErrorRateTest` that rejects when the canary's rate
is higher, and an `~release_spec.statistics.ErrorRateConfidenceSequence` whose upper
bound on (canary rate - baseline rate) promotes once it is below the metric's margin.
The false-rejection rate ``alpha`` covers all looks and all metrics: it is split equally
over the $k$ judged metrics (Bonferroni), so the judge's p-value is
$\min(1, k \min_m p_m)$.

Strategy layer: the standard library, NumPy and the formulas in
``release_spec.statistics`` only (no web stack, no TensorFlow).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from release_spec.statistics import (
    ErrorRateConfidenceSequence,
    Interval,
    SequentialErrorRateTest,
)

__all__ = [
    "ArmCounts",
    "CanaryJudge",
    "Decision",
    "JudgeConfig",
    "MetricVerdict",
    "Verdict",
]

Decision = Literal["continue", "promote", "reject"]
MetricName = Literal["errors", "slow"]
_STATE_VERSION = 1


def _count(name: str, value: object) -> int:
    # bool is an int subclass: True requests is a caller's bug, not one request.
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be nonnegative, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ArmCounts:
    """Counts of one arm since the previous look.

    Args:
        requests: requests served.
        errors: requests that failed, at most ``requests``.
        slow: requests slower than the SLO, at most ``requests``.

    Raises:
        ValueError: a count that is negative, not a whole number (bools refused), or
            errors/slow above requests; the message names the field.

    Examples:
        >>> ArmCounts(requests=1000, errors=3, slow=12)
        ArmCounts(requests=1000, errors=3, slow=12)
        >>> ArmCounts(requests=10, errors=11)
        Traceback (most recent call last):
        ...
        ValueError: errors must not exceed requests, got 11 > 10
    """

    requests: int
    errors: int
    slow: int = 0

    def __post_init__(self) -> None:
        for name in ("requests", "errors", "slow"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))
        for name in ("errors", "slow"):
            if getattr(self, name) > self.requests:
                raise ValueError(
                    f"{name} must not exceed requests, got {getattr(self, name)} > {self.requests}"
                )

    def bad(self, metric: MetricName) -> int:
        """The count of ``metric`` (``"errors"`` or ``"slow"``).

        Examples:
            >>> ArmCounts(requests=100, errors=2, slow=5).bad("slow")
            5
        """
        return self.errors if metric == "errors" else self.slow


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class JudgeConfig:
    """What the judge guarantees and what it calls good enough.

    Args:
        alpha: false-rejection rate over all looks and all judged metrics, in (0, 1).
        margin: promote once the upper bound on (canary error rate - baseline error
            rate) is below this, in (0, 1).
        slow_margin: the same for the slow-request rate; ``None`` leaves that metric
            unjudged (and all of ``alpha`` to the error rate).
        min_canary_requests: promote only after this many canary requests.

    Raises:
        ValueError: a setting out of range, naming it.

    Examples:
        >>> JudgeConfig(alpha=0.05, slow_margin=0.05).metrics
        ('errors', 'slow')
        >>> JudgeConfig(alpha=0.05, slow_margin=0.05).metric_alpha
        0.025
    """

    alpha: float = 0.05
    margin: float = 0.03
    slow_margin: float | None = None
    min_canary_requests: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _fraction("alpha", self.alpha))
        object.__setattr__(self, "margin", _fraction("margin", self.margin))
        if self.slow_margin is not None:
            slow = _fraction("slow_margin", self.slow_margin)
            object.__setattr__(self, "slow_margin", slow)
        min_req = _count("min_canary_requests", self.min_canary_requests)
        object.__setattr__(self, "min_canary_requests", min_req)

    @property
    def metrics(self) -> tuple[MetricName, ...]:
        """The judged metrics, error rate first."""
        return ("errors",) if self.slow_margin is None else ("errors", "slow")

    @property
    def metric_alpha(self) -> float:
        """Each metric's share of ``alpha`` (Bonferroni: ``alpha / k``)."""
        return self.alpha / len(self.metrics)

    def margin_of(self, metric: MetricName) -> float:
        """The promotion margin of ``metric``.

        Examples:
            >>> JudgeConfig(margin=0.02, slow_margin=0.1).margin_of("slow")
            0.1
        """
        if metric == "errors":
            return self.margin
        if self.slow_margin is None:
            raise ValueError("the slow-request metric is not judged (slow_margin is None)")
        return self.slow_margin


@dataclass(frozen=True)
class MetricVerdict:
    """One metric's state after the latest look.

    Attributes:
        name: ``"errors"`` or ``"slow"``.
        p_value: the metric's always-valid p-value (not adjusted for the other metric).
        bounds: anytime-valid bounds on canary rate minus baseline rate.
        decision: ``"reject"`` when the metric alone rejects, ``"promote"`` when its upper
            bound is below its margin, else ``"continue"``.
    """

    name: MetricName
    p_value: float
    bounds: Interval
    decision: Decision


@dataclass(frozen=True)
class Verdict:
    """The judge's answer after the latest look.

    Attributes:
        decision: ``"reject"`` (sticky), ``"promote"`` or ``"continue"``.
        p_value: Bonferroni-adjusted p-value, $\\min(1, k \\min_m p_m)$.
        bounds: the error-rate metric's bounds.
        looks: looks counted so far.
        canary_requests: canary requests counted so far.
        baseline_requests: baseline requests counted so far.
        reason: one sentence a human can act on.
        metrics: each judged metric's own verdict, error rate first.
    """

    decision: Decision
    p_value: float
    bounds: Interval
    looks: int
    canary_requests: int
    baseline_requests: int
    reason: str
    metrics: tuple[MetricVerdict, ...]


_LABEL = {"errors": "error rate", "slow": "slow-request rate"}


class CanaryJudge:
    r"""Anytime-valid canary judge over the error rate and, optionally, the slow-request rate.

    Feed it each look's counts (since the previous look) with `update`. With $k$ judged
    metrics, metric $m$ has a sequential test at level $\alpha/k$ (p-value $p_m$) and a
    confidence sequence at level $\alpha/k$ (upper bound $U_m$). The rule, in order:

    1. some $p_m \le \alpha/k$: ``"reject"``, and it stays so (each $p_m$ never
       increases); by Ville's inequality and the union bound, a canary no worse than
       the baseline on every metric is rejected with probability at most $\alpha$,
       however many looks are taken;
    2. at least ``min_canary_requests`` canary requests and $U_m <$ margin$_m$ for
       every metric: ``"promote"``;
    3. otherwise ``"continue"``.

    Args:
        config: the judge's settings.

    Examples:
        >>> judge = CanaryJudge(JudgeConfig(alpha=0.05, margin=0.02))
        >>> v = judge.update(ArmCounts(requests=4000, errors=80),
        ...                  ArmCounts(requests=76000, errors=1520))
        >>> v.decision, round(v.bounds.high, 4), v.looks
        ('promote', 0.0124, 1)
        >>> v = judge.update(ArmCounts(requests=2000, errors=200),
        ...                  ArmCounts(requests=38000, errors=760))
        >>> v.decision, v.p_value < 0.05
        ('reject', True)
    """

    def __init__(self, config: JudgeConfig) -> None:
        if not isinstance(config, JudgeConfig):
            raise ValueError(f"config must be a JudgeConfig, got {config!r}")
        self.config = config
        a = config.metric_alpha
        self._tests = {m: SequentialErrorRateTest(a) for m in config.metrics}
        self._bounds = {m: ErrorRateConfidenceSequence(a) for m in config.metrics}
        self._looks = 0
        self._canary_requests = 0
        self._baseline_requests = 0
        self._verdict = self._decide()

    def update(self, canary: ArmCounts, baseline: ArmCounts) -> Verdict:
        """Count one look (counts since the previous look) and return the new verdict.

        Raises:
            ValueError: an argument that is not an `ArmCounts`; nothing is counted.
        """
        for name, arm in (("canary", canary), ("baseline", baseline)):
            if not isinstance(arm, ArmCounts):
                raise ValueError(f"{name} must be an ArmCounts, got {arm!r}")
        # ArmCounts are validated on construction, so nothing below can fail half-way, and
        # the statistics classes' checks, which cost more than their arithmetic on this
        # per-look path, are skipped: their `_add_look` is the arithmetic of `update`.
        # The counts are whole numbers below 2**53, exact as floats.
        for m in self.config.metrics:
            look = (
                float(canary.bad(m)),
                float(canary.requests),
                float(baseline.bad(m)),
                float(baseline.requests),
            )
            self._tests[m]._add_look(*look)
            self._bounds[m]._add_look(*look)
        self._looks += 1
        self._canary_requests += canary.requests
        self._baseline_requests += baseline.requests
        self._verdict = self._decide()
        return self._verdict

    @property
    def verdict(self) -> Verdict:
        """The verdict after the latest look (``"continue"`` before any)."""
        return self._verdict

    def _decide(self) -> Verdict:
        cfg = self.config
        k = len(cfg.metrics)
        verdicts = []
        for m in cfg.metrics:
            test, cs = self._tests[m], self._bounds[m]
            decision: Decision = "continue"
            if test.decision == "reject":
                decision = "reject"
            elif cs.upper < cfg.margin_of(m):
                decision = "promote"
            verdicts.append(MetricVerdict(m, test.p_value, Interval(cs.lower, cs.upper), decision))
        p_adj = min(1.0, k * min(v.p_value for v in verdicts))
        rejected = [v for v in verdicts if v.decision == "reject"]
        enough = self._canary_requests >= cfg.min_canary_requests
        overall: Decision
        if rejected:
            overall = "reject"
            worst = min(rejected, key=lambda v: v.p_value)
            reason = (
                f"reject: the canary's {_LABEL[worst.name]} is higher than the baseline's "
                f"(adjusted p = {p_adj:.3g} <= alpha = {cfg.alpha:g}); roll the canary back"
            )
        elif enough and all(v.decision == "promote" for v in verdicts):
            overall = "promote"
            parts = ", ".join(
                f"{_LABEL[v.name]} at most {v.bounds.high:.4f} above the baseline's "
                f"(margin {cfg.margin_of(v.name):g})"
                for v in verdicts
            )
            reason = f"promote: {parts} after {self._canary_requests} canary requests"
        else:
            overall = "continue"
            if not enough:
                reason = (
                    f"continue: {self._canary_requests} of the "
                    f"{cfg.min_canary_requests} canary requests needed before promotion"
                )
            else:
                v = next(v for v in verdicts if v.decision != "promote")
                reason = (
                    f"continue: the canary's {_LABEL[v.name]} may still be up to "
                    f"{v.bounds.high:.4f} above the baseline's (margin "
                    f"{cfg.margin_of(v.name):g}); keep sending traffic"
                )
        return Verdict(
            decision=overall,
            p_value=p_adj,
            bounds=verdicts[0].bounds,
            looks=self._looks,
            canary_requests=self._canary_requests,
            baseline_requests=self._baseline_requests,
            reason=reason,
            metrics=tuple(verdicts),
        )

    def state(self) -> dict[str, object]:
        """The judge's state as JSON-serialisable values; `from_state` restores it exactly.

        Floats are kept exactly: scalars as Python floats (JSON writes the shortest
        repr that reads back to the same double), the sequential test's log-mixture
        vector as base64 of its little-endian float64 bytes (compact).

        Examples:
            >>> judge = CanaryJudge(JudgeConfig())
            >>> _ = judge.update(ArmCounts(100, 3), ArmCounts(1900, 20))
            >>> again = CanaryJudge.from_state(JudgeConfig(), judge.state())
            >>> again.verdict == judge.verdict
            True
        """
        metrics: dict[str, object] = {}
        for m in self.config.metrics:
            t, cs = self._tests[m], self._bounds[m]
            # The statistics classes keep their running state in attributes; reading
            # them is cheaper than replaying every look, which would need the history.
            metrics[m] = {
                "s": base64.b64encode(t._s.astype("<f8").tobytes()).decode("ascii"),
                **{
                    key: getattr(t if of_test else cs, attr)
                    for key, of_test, attr, _ in _METRIC_STATE
                },
            }
        return {
            "version": _STATE_VERSION,
            "looks": self._looks,
            "canary_requests": self._canary_requests,
            "baseline_requests": self._baseline_requests,
            "metrics": metrics,
        }

    @classmethod
    def from_state(cls, config: JudgeConfig, state: Mapping[str, object]) -> CanaryJudge:
        """Rebuild a judge from `state` (its config is not part of the state).

        Raises:
            ValueError: a state of another version, for other metrics, or malformed,
                naming the key.
        """
        judge = cls(config)
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"state.version must be {_STATE_VERSION}")
        metrics = state.get("metrics")
        if not isinstance(metrics, Mapping) or set(metrics) != set(config.metrics):
            raise ValueError(
                f"state.metrics must hold exactly {list(config.metrics)}, got "
                f"{sorted(metrics) if isinstance(metrics, Mapping) else metrics!r}"
            )
        judge._looks = _count("state.looks", state.get("looks"))
        judge._canary_requests = _count("state.canary_requests", state.get("canary_requests"))
        judge._baseline_requests = _count("state.baseline_requests", state.get("baseline_requests"))
        for m in config.metrics:
            ms = metrics[m]
            if not isinstance(ms, Mapping):
                raise ValueError(f"state.metrics.{m} must be a mapping")
            t, cs = judge._tests[m], judge._bounds[m]
            try:
                s = np.frombuffer(base64.b64decode(str(ms["s"]), validate=True), dtype="<f8")
            except (KeyError, ValueError) as e:
                raise ValueError(f"state.metrics.{m}.s must be base64 float64 bytes") from e
            if s.shape != t._s.shape:
                raise ValueError(f"state.metrics.{m}.s must hold {t._s.size} floats")
            t._s = s.astype(np.float64)
            for key, of_test, attr, is_count in _METRIC_STATE:
                value = (
                    _count(f"state.metrics.{m}.{key}", ms.get(key))
                    if is_count
                    else _state_float(ms, m, key)
                )
                setattr(t if of_test else cs, attr, value)
        judge._verdict = judge._decide()
        return judge


#: A metric's state beside its log-mixture vector ``s``, in the order it is written and read:
#: (key, held by the sequential test (else by the confidence sequence), attribute, a count).
_METRIC_STATE = (
    ("log_m", True, "_log_m", False),
    ("max_log_m", True, "_max_log_m", False),
    ("looks", True, "looks", True),
    ("canary_requests", True, "canary_requests", True),
    ("baseline_requests", True, "baseline_requests", True),
    ("canary_errors", False, "canary_errors", True),
    ("cs_canary_requests", False, "canary_requests", True),
    ("baseline_errors", False, "baseline_errors", True),
    ("cs_baseline_requests", False, "baseline_requests", True),
    ("lower", False, "lower", False),
    ("upper", False, "upper", False),
)


def _state_float(ms: Mapping[str, object], metric: str, key: str) -> float:
    v = ms.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        raise ValueError(f"state.metrics.{metric}.{key} must be a number, got {v!r}")
    return float(v)
