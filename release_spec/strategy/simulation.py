"""Simulate many canary rollouts at once: how often does a judge roll back, and how soon?

Every rollout is a sequence of *looks*. Before look ``i`` the canary's share of the
requests, a fraction ``rho_i`` in (0, 1), is fixed (it may differ between looks and
between rollouts); the look's requests are routed at random with that share (what
hashing request ids does for a population of users), every request errs
independently with its arm's error rate, and the judge looks at the counts. Two
judges see the same draws:

* ``sequential``: `release_spec.statistics.SequentialErrorRateTest`
  (through its vectorised form ``sequential_log_evidence``), anytime-valid;
* ``naive``: the one-sided two-proportion z-test on the cumulative counts,
  repeated at every look at level alpha, stopping at the first rejection.

Whole arrays of shape ``(runs, looks)`` are drawn and judged at once with NumPy,
so thousands of rollouts take seconds. A rollout's *exposure* is the number of
canary requests served until it was rolled back, or until its last look when it
never was.

Sizes are capped so that an absurd one is refused at once with a `ValueError`
naming the parameter and the cap, instead of ending in a `MemoryError`:
`MAX_RUNS` rollouts, `MAX_LOOKS` looks, `MAX_CELLS` rollouts x looks,
`MAX_LOOK_REQUESTS` requests in one look, `MAX_STEPS` share steps and
`MAX_BATCH_REQUESTS` requests per batch of `simulate_rollout`.

Latency is judged like errors: `draw_slow` draws each arm's slow requests (slower
than the SLO) on the same requests, and `judge_rejections` applies the rule of
`release_spec.strategy.judge.CanaryJudge` to several metrics (alpha split equally).

`compare_rules` puts the rules of the progressive-delivery engines (`argo_rule`,
`flagger_rule`, `kayenta_rule`, each with its engine's documented defaults) and the
sequential judge (`sequential_rule`) on the same simulated measurement intervals of
the `SCENARIOS`: no regression at several error rates, a regression, flaky spikes,
intervals without traffic; ``release-spec simulate --rules all`` prints the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from release_spec.statistics import (
    fixed_horizon_sample_size,
    sequential_log_evidence,
    two_proportion_z_test,
)
from release_spec.strategy._validate import FRACTION, OPEN_FRACTION, Range
from release_spec.strategy.rollout import (
    RolloutController,
    RolloutPlan,
    RolloutState,
    ServedRequest,
    check_effect,
)

__all__ = [
    "MAX_BATCH_REQUESTS",
    "MAX_CELLS",
    "MAX_LOOKS",
    "MAX_LOOK_REQUESTS",
    "MAX_RUNS",
    "MAX_STEPS",
    "RULES",
    "SCENARIOS",
    "Comparison",
    "JudgeRun",
    "Looks",
    "RuleComparison",
    "RuleResult",
    "RuleSettings",
    "Scenario",
    "Simulation",
    "apply_rule",
    "argo_rule",
    "compare_judges",
    "compare_rules",
    "draw_looks",
    "draw_scenario",
    "draw_slow",
    "flagger_rule",
    "judge_rejections",
    "kayenta_rule",
    "kayenta_score",
    "mann_whitney_classification",
    "monte_carlo_bound",
    "parse_rules",
    "random_fraction_schedule",
    "rule_label",
    "sequential_p_values",
    "sequential_rule",
    "simulate",
    "simulate_rollout",
]

Method = Literal["sequential", "naive"]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

MAX_RUNS = 100_000
"""Most rollouts one call simulates (``runs``)."""

MAX_LOOKS = 100_000
"""Most looks per rollout (``looks``)."""

MAX_CELLS = 2**22
"""Most rollouts x looks in one call: every (runs, looks) array is then at most
32 MiB, and a whole `simulate` stays within a few hundred MiB."""

MAX_LOOK_REQUESTS = 2**40
"""Most requests in one look, ``canary_per_look / canary_fraction`` (also caps
``canary_per_look``)."""

MAX_STEPS = 16
"""Most share steps per rollout in `random_fraction_schedule` (``max_steps``)."""

MAX_BATCH_REQUESTS = 2**20
"""Most requests per batch of `simulate_rollout` (``batch_requests``)."""


def _size(name: str, value: object, cap: int, cap_name: str) -> int:
    """A whole number (Python or NumPy, never a bool) in [1, cap], else a ValueError naming both."""
    rng = Range(int, 1, cap)
    if not rng.contains(value):
        raise ValueError(f"{name}: expected {rng.describe()} ({cap_name}), got {value!r}")
    k: int = rng.check(name, value)
    return k


def _cells(runs: int, looks: int) -> None:
    if runs * looks > MAX_CELLS:
        raise ValueError(
            f"runs x looks must be at most MAX_CELLS = {MAX_CELLS}, got {runs} x {looks}"
        )


def monte_carlo_bound(alpha: float, runs: int, k: float = 3.0) -> float:
    """alpha plus ``k`` binomial standard errors of a rate estimated from ``runs`` rollouts.

    Examples:
        >>> round(monte_carlo_bound(0.05, 2000), 4)
        0.0646
    """
    OPEN_FRACTION.check("alpha", alpha)
    Range(int, 1, None).check("runs", runs)
    return alpha + k * math.sqrt(alpha * (1 - alpha) / runs)


def random_fraction_schedule(
    rng: np.random.Generator,
    runs: int,
    looks: int,
    *,
    low: float = 0.01,
    high: float = 0.5,
    max_steps: int = 6,
) -> FloatArray:
    """A different piecewise-constant schedule of canary fractions per rollout, in [low, high].

    Each rollout gets 1 to ``max_steps`` steps with random boundaries and shares
    drawn log-uniformly, in random order (shares may go down as well as up: the
    judge must not depend on the schedule).
    """
    if not (0 < low <= high < 1):
        raise ValueError(f"need 0 < low <= high < 1, got low={low}, high={high}")
    runs = _size("runs", runs, MAX_RUNS, "MAX_RUNS")
    looks = _size("looks", looks, MAX_LOOKS, "MAX_LOOKS")
    max_steps = _size("max_steps", max_steps, MAX_STEPS, "MAX_STEPS")
    _cells(runs, looks)
    n_steps = rng.integers(1, max_steps + 1, size=runs)
    shares = np.exp(rng.uniform(math.log(low), math.log(high), size=(runs, max_steps)))
    # Step boundaries: sorted uniform cut points; the step of look i is how many cuts precede it.
    cuts = np.sort(rng.integers(1, max(looks, 2), size=(runs, max_steps - 1)), axis=1)
    cuts = np.where(np.arange(max_steps - 1) < (n_steps - 1)[:, None], cuts, looks)
    step_of_look = (np.arange(looks)[None, :, None] >= cuts[:, None, :]).sum(axis=2)
    out: FloatArray = np.take_along_axis(shares, step_of_look, axis=1)
    return out


@dataclass(frozen=True)
class Looks:
    """Per-look counts of a batch of simulated rollouts, each of shape ``(runs, looks)``."""

    canary_requests: IntArray
    canary_errors: IntArray
    baseline_requests: IntArray
    baseline_errors: IntArray


def draw_looks(
    rng: np.random.Generator,
    canary_fractions: FloatArray,
    *,
    baseline_error: float,
    canary_error: float,
    canary_per_look: int,
) -> Looks:
    """Draw the counts of every look of every rollout.

    A look holds ``round(canary_per_look / rho)`` requests, so the canary
    gets about ``canary_per_look`` of them whatever its share; each request
    goes to the canary with probability ``rho`` and errs with its arm's rate.
    """
    shares = np.asarray(canary_fractions, dtype=np.float64)
    if shares.ndim != 2:
        raise ValueError(f"canary_fractions must have shape (runs, looks), got {shares.shape}")
    if np.any(~np.isfinite(shares)) or np.any(shares <= 0) or np.any(shares >= 1):
        raise ValueError("canary_fractions must lie in (0, 1)")
    FRACTION.check("baseline_error", baseline_error)
    FRACTION.check("canary_error", canary_error)
    if shares.size > MAX_CELLS:
        raise ValueError(f"canary_fractions must have at most MAX_CELLS = {MAX_CELLS} looks in all")
    per_look = _size("canary_per_look", canary_per_look, MAX_LOOK_REQUESTS, "MAX_LOOK_REQUESTS")
    if per_look / shares.min() > MAX_LOOK_REQUESTS:
        raise ValueError(
            f"canary_per_look / canary_fraction must be at most MAX_LOOK_REQUESTS = "
            f"{MAX_LOOK_REQUESTS} "
            f"requests per look, got {per_look} / {shares.min():g}"
        )
    total = np.maximum(np.rint(canary_per_look / shares), 1).astype(np.int64)
    m_c = rng.binomial(total, shares)
    m_b = total - m_c
    return Looks(m_c, rng.binomial(m_c, canary_error), m_b, rng.binomial(m_b, baseline_error))


@dataclass(frozen=True)
class JudgeRun:
    """What one judge did on a batch of simulated rollouts.

    ``rejected_at`` is the index of the look that rolled each rollout back (-1 if
    none); ``exposure`` the canary requests served until then (until the last
    look if never).
    """

    method: Method
    alpha: float
    rejected_at: IntArray = field(repr=False, compare=False)
    exposure: IntArray = field(repr=False, compare=False)

    @property
    def runs(self) -> int:
        """Number of simulated rollouts."""
        return int(self.rejected_at.size)

    @property
    def rollback_rate(self) -> float:
        """Fraction of rollouts rolled back at some look."""
        return float(np.mean(self.rejected_at >= 0))

    @property
    def median_exposure(self) -> float:
        """Median canary requests served per rollout (rolled back or not)."""
        return float(np.median(self.exposure))

    def rolled_back_within(self, canary_requests: int) -> float:
        """Fraction of rollouts rolled back by ``canary_requests`` canary requests served."""
        return float(np.mean((self.rejected_at >= 0) & (self.exposure <= canary_requests)))


def _first_true(mask: NDArray[np.bool_]) -> IntArray:
    hit = mask.any(axis=-1)
    first = np.argmax(mask, axis=-1)
    out: IntArray = np.where(hit, first, -1).astype(np.int64)
    return out


def sequential_p_values(looks: Looks) -> FloatArray:
    """The sequential judge's always-valid p-value after every look, shape ``(runs, looks)``.

    Exactly `release_spec.statistics.SequentialErrorRateTest.p_value` after each
    update, for all rollouts at once (through ``sequential_log_evidence``).

    Examples:
        >>> one = Looks(np.array([[100, 100]]), np.array([[3, 9]]),
        ...             np.array([[1900, 1900]]), np.array([[20, 20]]))
        >>> [round(float(v), 4) for v in sequential_p_values(one)[0]]
        [0.4981, 0.0003]
    """
    log_m = sequential_log_evidence(
        looks.canary_errors,
        looks.canary_requests,
        looks.baseline_errors,
        looks.baseline_requests,
    )
    p: FloatArray = np.minimum(1.0, np.exp(-np.maximum.accumulate(np.maximum(log_m, 0.0), axis=-1)))
    return p


def draw_slow(
    rng: np.random.Generator,
    looks: Looks,
    *,
    baseline_slow: float | FloatArray,
    canary_slow: float | FloatArray,
) -> Looks:
    """Slow-request counts on the requests of ``looks``, as a `Looks` (slow in the error fields).

    Each request of an arm is slow (slower than the SLO) with the arm's rate in that
    look. A rate may be a constant or an array broadcastable to ``(runs, looks)``:
    the same array for both arms is a machine whose load varies over time and slows
    both arms alike.

    Examples:
        >>> d = draw_looks(np.random.default_rng(0), np.full((2, 3), 0.1), baseline_error=0.0,
        ...                canary_error=0.0, canary_per_look=100)
        >>> s = draw_slow(np.random.default_rng(1), d, baseline_slow=0.0, canary_slow=1.0)
        >>> bool((s.canary_errors == d.canary_requests).all()), int(s.baseline_errors.sum())
        (True, 0)
    """
    out = []
    for name, rate in (("baseline_slow", baseline_slow), ("canary_slow", canary_slow)):
        arr = np.broadcast_to(np.asarray(rate, dtype=np.float64), looks.canary_requests.shape)
        if np.any(~np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
            raise ValueError(f"{name} must lie in [0, 1]")
        out.append(arr)
    b, c = out
    return Looks(
        looks.canary_requests,
        rng.binomial(looks.canary_requests, c),
        looks.baseline_requests,
        rng.binomial(looks.baseline_requests, b),
    )


def judge_rejections(metrics: Sequence[Looks], alpha: float = 0.05) -> IntArray:
    """The look at which `strategy.judge.CanaryJudge` judging these metrics rejects, or -1.

    With ``k`` metrics (errors, and slow requests from `draw_slow`), each has its own
    sequential test at level ``alpha / k`` (Bonferroni), and the judge rejects at the
    first look where any of them does.

    Examples:
        >>> worse = Looks(*(np.full((1, 5), v) for v in (100, 9, 1900, 19)))
        >>> quiet = Looks(*(np.full((1, 5), v) for v in (100, 1, 1900, 19)))
        >>> judge_rejections([quiet, worse]), judge_rejections([quiet])
        (array([0]), array([-1]))
    """
    if not metrics:
        raise ValueError("judge_rejections needs at least one metric")
    OPEN_FRACTION.check("alpha", alpha)
    hit = np.zeros(metrics[0].canary_requests.shape, dtype=bool)
    for m in metrics:
        hit |= sequential_p_values(m) <= alpha / len(metrics)
    return _first_true(hit)


def _judge(method: Method, looks: Looks, alpha: float) -> JudgeRun:
    cum_c = np.cumsum(looks.canary_requests, axis=-1)
    if method == "sequential":
        p = sequential_p_values(looks)
    else:
        c_b = np.cumsum(looks.baseline_requests, axis=-1)
        # The z-test needs both arms non-empty; before that a look cannot reject.
        ok = (cum_c > 0) & (c_b > 0)
        p = np.where(
            ok,
            two_proportion_z_test(
                np.cumsum(looks.canary_errors, axis=-1),
                np.maximum(cum_c, 1),
                np.cumsum(looks.baseline_errors, axis=-1),
                np.maximum(c_b, 1),
            ),
            1.0,
        )
    rejected_at = _first_true(p <= alpha)
    last = cum_c[..., -1]
    exposure = np.where(
        rejected_at >= 0,
        np.take_along_axis(cum_c, np.maximum(rejected_at, 0)[:, None], 1)[:, 0],
        last,
    )
    return JudgeRun(method, alpha, rejected_at, exposure.astype(np.int64))


@dataclass(frozen=True)
class Simulation:
    """Both judges on the same simulated rollouts."""

    baseline_error: float
    canary_error: float
    canary_per_look: int
    looks: int
    sequential: JudgeRun
    naive: JudgeRun

    @property
    def max_canary_requests(self) -> int:
        """About how many canary requests a rollout serves if it is never rolled back."""
        return self.canary_per_look * self.looks


def simulate(
    *,
    runs: int,
    baseline_error: float,
    canary_error: float,
    canary_fractions: float | FloatArray,
    canary_per_look: int,
    looks: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> Simulation:
    """Simulate ``runs`` rollouts and judge each with both judges.

    Args:
        runs: number of rollouts.
        baseline_error: error rate of the production model.
        canary_error: error rate of the candidate (equal for the no-regression case).
        canary_fractions: the canary's share as a fraction in (0, 1): a constant, one
            schedule of shape ``(looks,)`` shared by all rollouts, or ``(runs, looks)``.
        canary_per_look: expected canary requests between two looks.
        looks: number of looks (needed when ``canary_fractions`` is a constant).
        alpha: level of both judges.
        seed: seed of the NumPy generator.

    Examples:
        >>> sim = simulate(runs=200, baseline_error=0.02, canary_error=0.04,
        ...                canary_fractions=0.05, canary_per_look=50, looks=60, seed=1)
        >>> sim.sequential.rolled_back_within(2500) > 0.9
        True
    """
    runs = _size("runs", runs, MAX_RUNS, "MAX_RUNS")
    OPEN_FRACTION.check("alpha", alpha)
    arr = np.asarray(canary_fractions, dtype=np.float64)
    if looks is not None:
        looks = _size("looks", looks, MAX_LOOKS, "MAX_LOOKS")
    if arr.ndim == 0:
        if looks is None:
            raise ValueError("looks must be >= 1 when canary_fractions is a constant")
        _cells(runs, looks)
        arr = np.full((runs, looks), float(arr))
    elif arr.ndim == 1:
        _cells(runs, arr.size)
        arr = np.broadcast_to(arr, (runs, arr.size))
    elif arr.shape[0] != runs:
        raise ValueError(f"canary_fractions has {arr.shape[0]} rows for {runs} runs")
    if looks is not None and arr.shape[1] != looks:
        raise ValueError(f"canary_fractions has {arr.shape[1]} looks, expected {looks}")
    rng = np.random.default_rng(seed)
    drawn = draw_looks(
        rng,
        arr,
        baseline_error=baseline_error,
        canary_error=canary_error,
        canary_per_look=canary_per_look,
    )
    return Simulation(
        baseline_error=baseline_error,
        canary_error=canary_error,
        canary_per_look=canary_per_look,
        looks=int(arr.shape[1]),
        sequential=_judge("sequential", drawn, alpha),
        naive=_judge("naive", drawn, alpha),
    )


def simulate_rollout(
    plan: RolloutPlan,
    *,
    baseline_error: float,
    canary_error: float,
    batch_requests: int = 2_000,
    max_requests: int = 2_000_000,
    latency_ms: float = 20.0,
    seed: int = 0,
) -> RolloutState:
    """Drive one `RolloutController` request by request.

    Request ids ``r0, r1, ...`` are routed by the controller's hash; each request
    errs with its arm's rate and takes an exponentially distributed latency with
    mean ``latency_ms``. After every batch the controller looks, and a pending
    promotion is applied at once. Stops when the rollout is aborted or complete,
    or after ``max_requests`` (a holding step may never decide).

    Examples:
        >>> from release_spec.strategy.rollout import service_rollout_plan
        >>> s = simulate_rollout(service_rollout_plan(), baseline_error=0.02, canary_error=0.06)
        >>> s.status.value, s.production, s.canary_share_pct
        ('aborted', 'production', 0.0)
    """
    FRACTION.check("baseline_error", baseline_error)
    FRACTION.check("canary_error", canary_error)
    batch_requests = _size(
        "batch_requests", batch_requests, MAX_BATCH_REQUESTS, "MAX_BATCH_REQUESTS"
    )
    max_requests = _size("max_requests", max_requests, 2**62, "2**62")
    rng = np.random.default_rng(seed)
    ctl = RolloutController(plan, production="production")
    ctl.start("candidate")
    n = 0
    while not ctl.state.status.terminal and n < max_requests:
        arms = [ctl.route(f"r{i}") for i in range(n, n + batch_requests)]
        u = rng.random(batch_requests)
        lat = rng.exponential(latency_ms, batch_requests)
        ctl.observe(
            ServedRequest(
                a, bool(x < (canary_error if a == "canary" else baseline_error)), float(t)
            )
            for a, x, t in zip(arms, u, lat, strict=True)
        )
        ctl.promote()
        n += batch_requests
    return ctl.state


@dataclass(frozen=True)
class Comparison:
    """Both judges with and without a regression, and the fixed-horizon yardstick."""

    alpha: float
    canary_fraction: float
    null: Simulation
    regression: Simulation
    fixed_horizon: int

    def lines(self, within: int = 2500) -> list[str]:
        """A plain-text table for the command line.

        Detection is reported twice: rolled back at any look, and rolled back
        with at most ``within`` canary requests served.
        """
        n = self.null.sequential.runs
        r = self.regression
        head = (
            f"{n} rollouts per case; canary fraction {self.canary_fraction:g}; a look every "
            f"~{r.canary_per_look} canary requests, {r.looks} looks "
            f"(~{r.max_canary_requests} canary requests); alpha {self.alpha:g}"
        )
        out = [
            head,
            f"no regression: error rate {self.null.baseline_error:g} on both arms",
            f"regression: {r.baseline_error:g} -> {r.canary_error:g}",
            "",
            f"{'judge':<12}{'false rollbacks':>17}{'detection':>11}"
            f"{f'by {within}':>10}{'median exposure':>17}",
        ]
        for method in ("sequential", "naive"):
            fp: JudgeRun = getattr(self.null, method)
            tp: JudgeRun = getattr(r, method)
            out.append(
                f"{method:<12}{fp.rollback_rate:>17.4f}{tp.rollback_rate:>11.4f}"
                f"{tp.rolled_back_within(within):>10.4f}{tp.median_exposure:>17.0f}"
            )
        out += [
            "",
            f"false-rollback bound alpha + 3 s.e.: {monte_carlo_bound(self.alpha, n):.4f}",
            f"fixed-horizon canary requests at 80% power (one-sided): {self.fixed_horizon}",
        ]
        return out


def compare_judges(
    *,
    runs: int = 2000,
    baseline_error: float = 0.02,
    regression: float = 0.02,
    canary_fraction: float = 0.05,
    canary_per_look: int = 25,
    looks: int = 400,
    alpha: float = 0.05,
    seed: int = 0,
) -> Comparison:
    """Simulate both judges without and with a regression of ``regression``.

    Detection is the fraction of regressed rollouts rolled back within the
    ``looks``; exposure is the canary requests served until then (see
    `JudgeRun`).

    Examples:
        >>> c = compare_judges(runs=300, looks=100, seed=2)
        >>> c.fixed_horizon, c.null.sequential.rollback_rate <= 0.05 < c.null.naive.rollback_rate
        (610, True)
    """
    OPEN_FRACTION.check("canary_fraction", canary_fraction)
    check_effect(baseline_error, regression)

    def run(canary_error: float, seed_offset: int) -> Simulation:
        return simulate(
            runs=runs,
            baseline_error=baseline_error,
            canary_error=canary_error,
            canary_fractions=canary_fraction,
            canary_per_look=canary_per_look,
            looks=looks,
            alpha=alpha,
            seed=seed + seed_offset,
        )

    null, bad = run(baseline_error, 0), run(baseline_error + regression, 1)
    # One-sided, like the judge it is compared with (the canary worse, never better).
    fixed = fixed_horizon_sample_size(
        baseline_error,
        baseline_error + regression,
        alpha=alpha,
        power=0.8,
        canary_fraction=canary_fraction,
        alternative="greater",
    )
    return Comparison(alpha, canary_fraction, null, bad, fixed.canary_requests)


# ------------------------------------------------------------------------- rule comparison

#: The rules ``compare_rules`` knows, in table order.
RULES = ("argo", "flagger", "kayenta", "sequential")


@dataclass(frozen=True)
class RuleSettings:
    """The traffic of every scenario and the settings of every rule in `compare_rules`.

    The engines' own defaults where they have one; where a rule needs a number the
    engine cannot default (a threshold), the value an operator who knows
    production's normal error rate ``p0`` would write. An interval is a minute
    (Flagger's default analysis interval); the default traffic is that of
    `release_spec.strategy.rollout.service_rollout_plan` (10,000 requests a minute).

    Args:
        canary_fraction: the canary's share of every interval's requests, a fraction
            in (0, 1).
        requests_per_interval: requests in one interval (both arms).
        intervals: intervals per rollout.
        threshold_margin: Argo and Flagger fail an interval whose canary error rate
            is above ``p0 + threshold_margin`` (the regression the rollout must catch).
        argo_failure_limit: Argo's ``failureLimit``: the analysis fails once more
            measurements than this have failed (the documentation's template: 3;
            Argo's default 0 behaves like Flagger's default below).
        argo_every: intervals per Argo measurement, each over those intervals (the
            documentation's template: ``interval: 5m`` over a ``[5m]`` range).
        flagger_threshold: Flagger's ``analysis.threshold``: roll back once this many
            checks have failed (Flagger's default: 1).
        kayenta_every: intervals between two Kayenta analyses; each analysis covers
            every interval since the start (Argo's Kayenta provider with
            ``lookback: true``, one data point per interval and arm).
        kayenta_confidence: confidence level of Kayenta's Mann-Whitney interval.
        kayenta_tolerance: Kayenta's tolerance, a fraction of the Hodges-Lehmann estimate.
        kayenta_pass: score at or above which a Kayenta analysis passes.
        kayenta_marginal: score below which a Kayenta analysis fails at once.
        alpha: level of the sequential judge.

    Examples:
        >>> RuleSettings(intervals=0)
        Traceback (most recent call last):
        ...
        ValueError: intervals: expected an integer in [1, 100000] (MAX_LOOKS), got 0
    """

    canary_fraction: float = 0.05
    requests_per_interval: int = 10_000
    intervals: int = 120
    threshold_margin: float = 0.02
    argo_failure_limit: int = 3
    argo_every: int = 5
    flagger_threshold: int = 1
    kayenta_every: int = 30
    kayenta_confidence: float = 0.98
    kayenta_tolerance: float = 0.25
    kayenta_pass: float = 95.0
    kayenta_marginal: float = 75.0
    alpha: float = 0.05

    def __post_init__(self) -> None:
        for name in ("canary_fraction", "kayenta_confidence", "alpha"):
            OPEN_FRACTION.check(name, getattr(self, name))
        _size(
            "requests_per_interval",
            self.requests_per_interval,
            MAX_LOOK_REQUESTS,
            "MAX_LOOK_REQUESTS",
        )
        _size("intervals", self.intervals, MAX_LOOKS, "MAX_LOOKS")
        for name in ("argo_every", "flagger_threshold", "kayenta_every"):
            _size(name, getattr(self, name), MAX_LOOKS, "MAX_LOOKS")
        Range(int, 0, None).check("argo_failure_limit", self.argo_failure_limit)
        Range(float, 0, 1, closed="left").check("threshold_margin", self.threshold_margin)
        Range(float, 0, None).check("kayenta_tolerance", self.kayenta_tolerance)
        if not (0 <= self.kayenta_marginal <= self.kayenta_pass <= 100):
            raise ValueError(
                "need 0 <= kayenta_marginal <= kayenta_pass <= 100, got "
                f"{self.kayenta_marginal} and {self.kayenta_pass}"
            )


@dataclass(frozen=True)
class Scenario:
    """One kind of traffic, drawn interval by interval (see `draw_scenario`).

    Args:
        name: short id, the key in the JSON output.
        label: what a reader of the table sees.
        baseline_error: production's error rate.
        canary_error: the candidate's; above ``baseline_error`` is a lasting regression.
        shared_spike_rate: chance that an interval is a shared spike: both arms err at
            ``spike_error`` (a dependency both arms call fails for one interval).
        canary_blip_rate: chance that an interval is a canary blip: the canary alone
            errs at ``spike_error`` for that interval, then recovers (a pod restart).
        spike_error: error rate during a spike or a blip.
        idle_rate: chance that an interval has no request at all.
    """

    name: str
    label: str
    baseline_error: float
    canary_error: float
    shared_spike_rate: float = 0.0
    canary_blip_rate: float = 0.0
    spike_error: float = 0.2
    idle_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "baseline_error",
            "canary_error",
            "shared_spike_rate",
            "canary_blip_rate",
            "spike_error",
            "idle_rate",
        ):
            try:
                FRACTION.check(name, getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"scenario {self.name!r}: {exc}") from None

    @property
    def regression(self) -> bool:
        """True when the canary is lastingly worse (rolling back is then right)."""
        return self.canary_error > self.baseline_error

    @property
    def null(self) -> bool:
        """True when the canary is never worse than the baseline, not even for an interval.

        On these scenarios every rollback is false and an anytime-valid judge's rate is
        at most its alpha.
        """
        return not self.regression and self.canary_blip_rate == 0


#: The scenarios of the comparison on the Phased rollout page, in table order.
SCENARIOS = (
    Scenario("none-1", "no regression, 1 %", 0.01, 0.01),
    Scenario("none-5", "no regression, 5 %", 0.05, 0.05),
    Scenario("none-20", "no regression, 20 %", 0.20, 0.20),
    Scenario("regression", "2 % -> 4 %", 0.02, 0.04),
    Scenario("shared-spikes", "shared spikes (2 %; 5 % of intervals at 20 %)", 0.02, 0.02, 0.05),
    Scenario("canary-blips", "canary blips (2 %; 1 % of intervals at 20 %)", 0.02, 0.02, 0.0, 0.01),
    Scenario("no-traffic", "no traffic in 20 % of intervals (2 %)", 0.02, 0.02, idle_rate=0.2),
)


def draw_scenario(
    rng: np.random.Generator, scenario: Scenario, settings: RuleSettings, runs: int
) -> Looks:
    """Per-interval counts of ``runs`` rollouts of one scenario, shape ``(runs, intervals)``.

    Each interval holds ``requests_per_interval`` requests (none if idle), each sent
    to the canary with probability ``canary_fraction``; every request errs
    independently with its arm's rate in that interval.

    Examples:
        >>> d = draw_scenario(np.random.default_rng(0), SCENARIOS[6], RuleSettings(), 3)
        >>> d.canary_requests.shape, bool((d.canary_requests + d.baseline_requests == 0).any())
        ((3, 120), True)
    """
    runs = _size("runs", runs, MAX_RUNS, "MAX_RUNS")
    _cells(runs, settings.intervals)
    shape = (runs, settings.intervals)
    idle = rng.random(shape) < scenario.idle_rate
    total = np.where(idle, 0, settings.requests_per_interval).astype(np.int64)
    m_c = rng.binomial(total, settings.canary_fraction)
    m_b = total - m_c
    shared = rng.random(shape) < scenario.shared_spike_rate
    blip = rng.random(shape) < scenario.canary_blip_rate
    p_c = np.where(shared | blip, scenario.spike_error, scenario.canary_error)
    p_b = np.where(shared, scenario.spike_error, scenario.baseline_error)
    return Looks(m_c, rng.binomial(m_c, p_c), m_b, rng.binomial(m_b, p_b))


def _interval_rate(errors: IntArray, requests: IntArray) -> FloatArray:
    # What a rate query returns for an interval: NaN (0/0) when there was no request.
    e = np.asarray(errors, dtype=np.float64)
    n = np.asarray(requests, dtype=np.float64)
    out: FloatArray = np.divide(e, n, out=np.full(e.shape, np.nan), where=n > 0)
    return out


def argo_rule(
    canary_errors: IntArray,
    canary_requests: IntArray,
    *,
    threshold: float,
    failure_limit: int = 0,
    every: int = 1,
) -> IntArray:
    """Argo Rollouts: abort once more than ``failure_limit`` measurements have failed.

    A measurement is taken every ``every`` intervals (the metric's ``interval``) of
    the canary's error rate over those intervals (the query's range), with
    ``successCondition: result <= threshold``. A measurement whose condition is
    false is *Failed*; an interval without traffic gives NaN, for which the
    condition is false too (Argo documents ``isNaN(result)`` guards for this). The
    analysis run is Failed, and the rollout aborted, when the count of failed
    measurements exceeds ``failureLimit`` (Argo's default 0; the documentation's
    template uses 3). Failures need not be consecutive and are never forgiven.

    References: argoproj/argo-rollouts ``analysis/analysis.go``
    (``assessMetricFailureInconclusiveOrError``: ``failed > failureLimit``);
    ``docs/features/analysis.md`` (the ``success-rate`` template, ``failureLimit: 3``).

    Returns:
        Per rollout, the index of the interval at which it aborts (the last interval
        of the deciding measurement), or -1.

    Examples:
        >>> argo_rule(np.array([[0, 5, 5, 0, 5, 5]]), np.full((1, 6), 100), threshold=0.03,
        ...           failure_limit=3)
        array([5])
        >>> argo_rule(np.array([[0, 5, 5, 0, 5, 5]]), np.full((1, 6), 100), threshold=0.02,
        ...           failure_limit=0, every=2)
        array([1])
    """
    Range(int, 1, None).check("every", every)
    e = np.asarray(canary_errors, dtype=np.int64)
    n = np.asarray(canary_requests, dtype=np.int64)
    blocks = e.shape[-1] // every
    # Measurements end at intervals every-1, 2*every-1, ...; a trailing part is not measured.
    shape = (*e.shape[:-1], blocks, every)
    e_m = e[..., : blocks * every].reshape(shape).sum(axis=-1)
    n_m = n[..., : blocks * every].reshape(shape).sum(axis=-1)
    failed = ~(_interval_rate(e_m, n_m) <= threshold)
    at = _first_true(np.cumsum(failed, axis=-1) > failure_limit)
    out: IntArray = np.where(at >= 0, (at + 1) * every - 1, -1).astype(np.int64)
    return out


def flagger_rule(
    canary_errors: IntArray, canary_requests: IntArray, *, max_error_rate: float, threshold: int = 1
) -> IntArray:
    """Flagger: roll back once ``threshold`` checks have failed.

    Every analysis interval Flagger queries the canary's error rate and fails the
    check when it is above the metric's ``thresholdRange.max``; a query that returns
    no value or NaN (no traffic) fails the check too ("Halt advancement no values
    found"). The failed-checks counter only grows during an analysis, and the
    canary is rolled back once it reaches the analysis ``threshold`` (default 1).
    Flagger acts on it at its next tick; this function reports the interval of the
    deciding check.

    References: fluxcd/flagger ``pkg/controller/scheduler.go`` (``FailedChecks >=
    GetAnalysisThreshold()``), ``pkg/controller/scheduler_metrics.go``,
    ``pkg/apis/flagger/v1beta1/canary.go`` (``GetAnalysisThreshold``: default 1),
    fluxcd/flagger#1095 (NaN counts as no values).

    Examples:
        >>> flagger_rule(np.array([[0, 5, 0]]), np.array([[100, 100, 0]]), max_error_rate=0.03,
        ...              threshold=2)
        array([2])
    """
    rate = _interval_rate(canary_errors, canary_requests)
    failed = np.isnan(rate) | (rate > max_error_rate)
    return _first_true(np.cumsum(failed, axis=-1) >= threshold)


def mann_whitney_classification(
    experiment: FloatArray,
    control: FloatArray,
    *,
    confidence: float = 0.98,
    tolerance: float = 0.25,
) -> Literal["High", "Low", "Pass", "Nodata"]:
    r"""Kayenta's Mann-Whitney classification of one metric, canary (experiment) vs control.

    NaN values are removed (Kayenta's ``removeNaNs``; outliers are kept, Kayenta's
    default). No data on either side is ``Nodata``; identical series ``Pass``.
    Otherwise the confidence interval for the location shift
    (experiment - control) at ``confidence`` is the classical distribution-free one
    (Hollander and Wolfe): with the $mn$ pairwise differences $d_{(1)} \le \dots$,
    $C = \lfloor mn/2 - z_{(1+c)/2}\sqrt{mn(m+n+1)/12} \rfloor$ and the interval
    $[d_{(C)}, d_{(mn+1-C)}]$, the one R's ``wilcox.test(conf.int = TRUE)`` (which
    Kayenta calls) approximates; with $C < 1$ it is unbounded. The metric is
    ``High`` when the interval lies above ``tolerance`` times the absolute
    Hodges-Lehmann estimate (the median difference), ``Low`` when below minus it.

    References: spinnaker/kayenta ``NetflixACAJudge.scala`` (confidence 0.98,
    fraction 0.25) and ``MannWhitneyClassifier.scala``.

    Examples:
        >>> c = np.array([0.01, 0.02, 0.0, 0.01, 0.03, 0.02, 0.01, 0.02])
        >>> mann_whitney_classification(c + 0.05, c), mann_whitney_classification(c, c)
        ('High', 'Pass')
    """
    x = np.asarray(experiment, dtype=np.float64)
    y = np.asarray(control, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if not x.size or not y.size:
        return "Nodata"
    if x.size == y.size and np.array_equal(x, y):
        return "Pass"
    m, n = x.size, y.size
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    c = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    if c < 1:
        return "Pass"
    d = (x[:, None] - y[None, :]).ravel()
    mid = (m * n - 1) // 2, m * n // 2
    d = np.partition(d, sorted({c - 1, m * n - c, *mid}))
    estimate = (d[mid[0]] + d[mid[1]]) / 2
    bound = tolerance * abs(float(estimate))
    if d[c - 1] > bound:
        return "High"
    if d[m * n - c] < -bound:
        return "Low"
    return "Pass"


def kayenta_score(classifications: Sequence[str]) -> float | None:
    """Kayenta's score for metrics whose increase is bad: percent of metrics not ``High``.

    ``Nodata`` metrics are left out; with no metric left there is no score (``None``).
    One metric of equal weight per classification (Kayenta's ``WeightedSumScorer``
    with a single group).

    Examples:
        >>> kayenta_score(["Pass", "High", "Low", "Nodata"]), kayenta_score(["Nodata"])
        (66.66666666666667, None)
    """
    judged = [c for c in classifications if c != "Nodata"]
    if not judged:
        return None
    return 100.0 * sum(c != "High" for c in judged) / len(judged)


def kayenta_rule(
    looks: Looks,
    *,
    every: int = 30,
    confidence: float = 0.98,
    tolerance: float = 0.25,
    pass_score: float = 95.0,
    marginal_score: float = 75.0,
) -> IntArray:
    """Kayenta: an analysis every ``every`` intervals; fail below marginal (below pass at the end).

    Each analysis compares the per-interval error rates of the canary (experiment)
    and the baseline (control) since the start with `mann_whitney_classification`
    and scores them with `kayenta_score`. Spinnaker's canary stage fails as soon as
    an analysis scores below ``marginal_score``, and the last one must reach
    ``pass_score``. Scores are classified pass (>= pass), marginal (>= marginal) or
    fail. An analysis with no data scores nothing and decides nothing.

    Examples:
        >>> quiet = Looks(*(np.full((1, 60), v) for v in (100, 1, 1900, 19)))
        >>> worse = Looks(*(np.full((1, 60), v) for v in (100, 9, 1900, 19)))
        >>> int(kayenta_rule(quiet)[0]), int(kayenta_rule(worse)[0])
        (-1, 29)
    """
    c_rate = _interval_rate(looks.canary_errors, looks.canary_requests)
    b_rate = _interval_rate(looks.baseline_errors, looks.baseline_requests)
    runs, n = c_rate.shape
    ends = list(range(every, n + 1, every))
    if not ends or ends[-1] != n:
        ends.append(n)
    out = np.full(runs, -1, dtype=np.int64)
    for r in range(runs):
        for end in ends:
            score = kayenta_score(
                [
                    mann_whitney_classification(
                        c_rate[r, :end], b_rate[r, :end], confidence=confidence, tolerance=tolerance
                    )
                ]
            )
            if score is None:
                continue
            if score < marginal_score or (end == n and score < pass_score):
                out[r] = end - 1
                break
    return out


def sequential_rule(looks: Looks, *, alpha: float = 0.05) -> IntArray:
    """The sequential judge at every interval: roll back at the first p <= alpha.

    Examples:
        >>> worse = Looks(*(np.full((1, 5), v) for v in (100, 9, 1900, 19)))
        >>> sequential_rule(worse)
        array([0])
    """
    return _first_true(sequential_p_values(looks) <= alpha)


def apply_rule(rule: str, looks: Looks, baseline_error: float, settings: RuleSettings) -> IntArray:
    """Run one rule of `RULES` with ``settings`` on drawn intervals; -1 where it never rolls back.

    ``baseline_error`` is production's normal error rate, from which the operator of
    Argo or Flagger sets the threshold.

    Examples:
        >>> d = draw_scenario(np.random.default_rng(1), SCENARIOS[3], RuleSettings(), 50)
        >>> bool((apply_rule("sequential", d, 0.02, RuleSettings()) >= 0).mean() > 0.8)
        True
    """
    threshold = baseline_error + settings.threshold_margin
    if rule == "argo":
        return argo_rule(
            looks.canary_errors,
            looks.canary_requests,
            threshold=threshold,
            failure_limit=settings.argo_failure_limit,
            every=settings.argo_every,
        )
    if rule == "flagger":
        return flagger_rule(
            looks.canary_errors,
            looks.canary_requests,
            max_error_rate=threshold,
            threshold=settings.flagger_threshold,
        )
    if rule == "kayenta":
        return kayenta_rule(
            looks,
            every=settings.kayenta_every,
            confidence=settings.kayenta_confidence,
            tolerance=settings.kayenta_tolerance,
            pass_score=settings.kayenta_pass,
            marginal_score=settings.kayenta_marginal,
        )
    if rule == "sequential":
        return sequential_rule(looks, alpha=settings.alpha)
    raise ValueError(f"unknown rule {rule!r} (known: {', '.join(RULES)})")


def parse_rules(text: str) -> tuple[str, ...]:
    """``"all"`` or a comma-separated subset of `RULES`, in table order, without repeats.

    Examples:
        >>> parse_rules("sequential,argo"), parse_rules("all") == RULES
        (('argo', 'sequential'), True)
        >>> parse_rules("argo,spinnaker")
        Traceback (most recent call last):
        ...
        ValueError: unknown rule 'spinnaker' (known: all, argo, flagger, kayenta, sequential)
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return RULES
    if not names:
        raise ValueError(f"no rule given (known: all, {', '.join(RULES)})")
    for name in names:
        if name not in RULES:
            raise ValueError(f"unknown rule {name!r} (known: all, {', '.join(RULES)})")
    return tuple(r for r in RULES if r in names)


@dataclass(frozen=True)
class RuleResult:
    """What one rule did on one scenario's rollouts.

    ``median_intervals`` is the median number of intervals until the rollback,
    over the rollouts rolled back (``None`` when none was).
    """

    rule: str
    scenario: str
    runs: int
    rollbacks: int
    median_intervals: float | None

    @property
    def rollback_rate(self) -> float:
        """Fraction of rollouts rolled back."""
        return self.rollbacks / self.runs


def rule_label(rule: str, settings: RuleSettings) -> str:
    """The rule and the settings used, as the table says them.

    Examples:
        >>> rule_label("flagger", RuleSettings())
        'Flagger: canary error rate > p0 + 0.02 fails a check; rollback at threshold 1 failed check(s)'
    """  # noqa: E501
    m = f"p0 + {settings.threshold_margin:g}"
    labels = {
        "argo": f"Argo Rollouts: canary error rate <= {m} per measurement (every "
        f"{settings.argo_every} intervals); abort after failureLimit "
        f"{settings.argo_failure_limit} + 1 failed measurements",
        "flagger": f"Flagger: canary error rate > {m} fails a check; rollback at threshold "
        f"{settings.flagger_threshold} failed check(s)",
        "kayenta": f"Kayenta: Mann-Whitney {settings.kayenta_confidence:.0%} on per-interval "
        f"rates every {settings.kayenta_every} intervals (growing window), pass "
        f"{settings.kayenta_pass:g} / marginal {settings.kayenta_marginal:g}",
        "sequential": f"sequential judge (eq-sequential), alpha {settings.alpha:g}, "
        "a look every interval",
    }
    if rule not in labels:
        raise ValueError(f"unknown rule {rule!r} (known: {', '.join(RULES)})")
    return labels[rule]


@dataclass(frozen=True)
class RuleComparison:
    """Every rule on the same drawn intervals of every scenario."""

    runs: int
    seed: int
    settings: RuleSettings
    scenarios: tuple[Scenario, ...]
    rules: tuple[str, ...]
    results: tuple[RuleResult, ...]

    def result(self, rule: str, scenario: str) -> RuleResult:
        """The result of ``rule`` on the scenario named ``scenario``."""
        for r in self.results:
            if r.rule == rule and r.scenario == scenario:
                return r
        raise KeyError(f"no result for rule {rule!r} on scenario {scenario!r}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: settings, scenarios, rules with their labels, and every result."""
        return {
            "runs": self.runs,
            "seed": self.seed,
            "settings": asdict(self.settings),
            "scenarios": [{**asdict(s), "regression": s.regression} for s in self.scenarios],
            "rules": [{"name": r, "label": rule_label(r, self.settings)} for r in self.rules],
            "results": [
                {
                    "rule": r.rule,
                    "scenario": r.scenario,
                    "runs": r.runs,
                    "rollbacks": r.rollbacks,
                    "rollback_rate": r.rollback_rate,
                    "median_intervals": r.median_intervals,
                }
                for r in self.results
            ],
        }

    def lines(self) -> list[str]:
        """A plain-text table: per rule and scenario, rollbacks (%) / median intervals."""
        s = self.settings
        per_interval = s.canary_fraction * s.requests_per_interval
        out = [
            f"{self.runs} rollouts per scenario, seed {self.seed}; {s.intervals} intervals of "
            f"{s.requests_per_interval} requests, canary share {s.canary_fraction:g} "
            f"(about {per_interval:.0f} canary requests an interval)",
            "each cell: rolled back (%) / median intervals until the rollback; p0 is "
            "production's normal error rate",
            "",
        ]
        out += [f"  {r}: {rule_label(r, s)}" for r in self.rules]
        out += [""]
        width = 12
        out.append(f"{'scenario':<48}" + "".join(f"{r:>{width}}" for r in self.rules))
        for sc in self.scenarios:
            cells = []
            for rule in self.rules:
                res = self.result(rule, sc.name)
                med = "-" if res.median_intervals is None else f"{res.median_intervals:g}"
                cells.append(f"{100 * res.rollback_rate:.1f}/{med}".rjust(width))
            tag = " (regression)" if sc.regression else ""
            out.append(f"{(sc.label + tag)[:47]:<48}" + "".join(cells))
        return out


def compare_rules(
    rules: Sequence[str] = RULES,
    *,
    runs: int = 2000,
    seed: int = 0,
    settings: RuleSettings | None = None,
    scenarios: Sequence[Scenario] = SCENARIOS,
) -> RuleComparison:
    """Run the chosen rules on the same simulated intervals of every scenario.

    Scenario ``i`` is drawn from ``np.random.default_rng([seed, i])``, so a subset
    of rules (or the same rules again) sees exactly the same intervals.

    Examples:
        >>> c = compare_rules(("flagger", "sequential"), runs=200, seed=1)
        >>> flag, seq = c.result("flagger", "none-5"), c.result("sequential", "none-5")
        >>> seq.rollback_rate <= 0.05 < flag.rollback_rate
        True
    """
    settings = settings or RuleSettings()
    runs = _size("runs", runs, MAX_RUNS, "MAX_RUNS")
    _cells(runs, settings.intervals)
    chosen = tuple(r for r in RULES if r in rules)
    unknown = sorted(set(rules) - set(RULES))
    if unknown or not chosen:
        raise ValueError(f"rules must be a non-empty subset of {RULES}, got {tuple(rules)}")
    results = []
    for i, sc in enumerate(scenarios):
        drawn = draw_scenario(np.random.default_rng([seed, i]), sc, settings, runs)
        for rule in chosen:
            at = apply_rule(rule, drawn, sc.baseline_error, settings)
            hit = at[at >= 0]
            median = float(np.median(hit + 1)) if hit.size else None
            results.append(RuleResult(rule, sc.name, runs, int(hit.size), median))
    return RuleComparison(runs, seed, settings, tuple(scenarios), chosen, tuple(results))
