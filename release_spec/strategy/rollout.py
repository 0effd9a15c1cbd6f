"""Phased rollout: traffic steps, sticky routing, a sequential judge and automatic rollback.

The release stage ends by sending a growing share of live traffic to the
candidate (the *canary*) while the production model serves the rest (the
*baseline*). After every batch of served requests the controller *looks*: it feeds
each arm's new counts of errors and of slow requests (slower than the plan's
latency SLO) to the anytime-valid `release_spec.strategy.judge.CanaryJudge`, and decides
whether to abort (canary share to 0 at once), to mark the step ready for
promotion, or, when the step's bake is over without an answer, to hold or roll
back as the plan says. Because the judge is anytime-valid, looking after every
batch does not inflate false rollbacks the way a fixed-level test repeated at
every look does (see ``release_spec.strategy.simulation``); and because latency is judged
as a rate compared with the baseline's, a machine that slows both arms does not
roll the canary back.

Units are in the names: a step's share is ``share_pct`` (percent), the router
takes ``canary_basis_points`` (1 % = 100 bp; kept in integer basis points so the
two traffic weights always sum to exactly 100 %). The controller's status is a
`RolloutStatus`, moved only by `transition` along `ROLLOUT_TRANSITIONS`, the
idiom of `release_spec.strategy.stages`.

This module is the strategy layer: the standard library, ``release_spec.strategy.judge`` and
the formulas in ``release_spec.statistics`` only, never TensorFlow.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal, Protocol

from release_spec.statistics import fixed_horizon_sample_size
from release_spec.strategy._validate import OPEN_FRACTION, Range, one_of
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig, Verdict
from release_spec.strategy.stages import IllegalTransitionError

__all__ = [
    "ROLLOUT_TRANSITIONS",
    "Counts",
    "Judge",
    "LiveRequest",
    "LookRecord",
    "RolloutController",
    "RolloutEvent",
    "RolloutPlan",
    "RolloutState",
    "RolloutStatus",
    "RolloutStep",
    "ServedRequest",
    "StepForecast",
    "check_effect",
    "forecast_steps",
    "replay",
    "route",
    "service_rollout_plan",
    "transition",
]

BASIS_POINTS = 10_000
_SHARE_PCT = Range(float, 0, 100, closed="right")
_COUNT = Range(int, 0, None)
_POSITIVE = Range(float, 0, None, closed="neither")
_MARGIN = Range(float, 0, 1, closed="left")
Arm = Literal["canary", "baseline"]
_EventKind = Literal["start", "restart", "promotion_ready", "promote", "hold", "abort", "complete"]


class RolloutStatus(str, Enum):
    """Where the rollout of the current candidate stands.

    A str Enum: a status equals its value (``RolloutStatus.ABORTED == "aborted"``)
    and the report records the value.
    """

    IDLE = "idle"
    ANALYSING = "analysing"
    PROMOTION_PENDING = "promotion_pending"
    HOLDING = "holding"
    ABORTED = "aborted"
    COMPLETED = "completed"

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        """A candidate holds a share of traffic and its evidence is being judged."""
        return self in _ACTIVE

    @property
    def terminal(self) -> bool:
        """The candidate's rollout is over (rolled back or production); looks change nothing."""
        return self in (RolloutStatus.ABORTED, RolloutStatus.COMPLETED)


_ACTIVE = frozenset(
    {RolloutStatus.ANALYSING, RolloutStatus.PROMOTION_PENDING, RolloutStatus.HOLDING}
)

#: Legal moves. Any status but ``idle`` may start a new candidate (``-> analysing``);
#: only an active rollout may abort; only a pending promotion may complete.
ROLLOUT_TRANSITIONS: Mapping[RolloutStatus, frozenset[RolloutStatus]] = {
    RolloutStatus.IDLE: frozenset({RolloutStatus.ANALYSING}),
    RolloutStatus.ANALYSING: frozenset(
        {
            RolloutStatus.ANALYSING,
            RolloutStatus.PROMOTION_PENDING,
            RolloutStatus.HOLDING,
            RolloutStatus.ABORTED,
        }
    ),
    RolloutStatus.PROMOTION_PENDING: frozenset(
        {RolloutStatus.ANALYSING, RolloutStatus.COMPLETED, RolloutStatus.ABORTED}
    ),
    RolloutStatus.HOLDING: frozenset(
        {RolloutStatus.ANALYSING, RolloutStatus.PROMOTION_PENDING, RolloutStatus.ABORTED}
    ),
    RolloutStatus.ABORTED: frozenset({RolloutStatus.ANALYSING}),
    RolloutStatus.COMPLETED: frozenset({RolloutStatus.ANALYSING}),
}


class Judge(Protocol):
    """What the controller needs from a judge (`release_spec.strategy.judge.CanaryJudge`)."""

    def update(self, canary: ArmCounts, baseline: ArmCounts) -> Verdict:
        """Add one look's counts (since the previous look) and return the verdict."""
        ...


@dataclass(frozen=True)
class Counts:
    """Requests, errors and slow requests (slower than the latency SLO) per arm."""

    canary_requests: int = 0
    canary_errors: int = 0
    baseline_requests: int = 0
    baseline_errors: int = 0
    canary_slow: int = 0
    baseline_slow: int = 0

    def __post_init__(self) -> None:
        for name in ("canary", "baseline"):
            n = getattr(self, f"{name}_requests")
            e = getattr(self, f"{name}_errors")
            slow = getattr(self, f"{name}_slow")
            if n < 0 or e < 0 or slow < 0:
                raise ValueError(
                    f"{name} counts must be non-negative, got {e} errors and {slow} slow of {n}"
                )
            if e > n:
                raise ValueError(f"{name} errors ({e}) exceed {name} requests ({n})")
            if slow > n:
                raise ValueError(f"{name} slow requests ({slow}) exceed {name} requests ({n})")

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.canary_requests + other.canary_requests,
            self.canary_errors + other.canary_errors,
            self.baseline_requests + other.baseline_requests,
            self.baseline_errors + other.baseline_errors,
            self.canary_slow + other.canary_slow,
            self.baseline_slow + other.baseline_slow,
        )

    def arms(self) -> tuple[ArmCounts, ArmCounts]:
        """The canary's and the baseline's counts, as the judge takes them."""
        return (
            ArmCounts(self.canary_requests, self.canary_errors, self.canary_slow),
            ArmCounts(self.baseline_requests, self.baseline_errors, self.baseline_slow),
        )

    @property
    def requests(self) -> int:
        """Requests on both arms."""
        return self.canary_requests + self.baseline_requests


@dataclass(frozen=True)
class ServedRequest:
    """One served request: which arm served it, whether it was wrong, how long it took."""

    arm: Arm
    error: bool
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.arm not in ("canary", "baseline"):
            raise ValueError(f"arm must be 'canary' or 'baseline', got {self.arm!r}")
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be finite and >= 0, got {self.latency_ms}")


@dataclass(frozen=True)
class RolloutStep:
    """One traffic step: canary share, minimum canary requests, maximum bake.

    Args:
        share_pct: canary share of traffic in percent, (0, 100], a multiple of 0.01.
        min_canary_requests: canary requests this step must see before it may promote.
        max_bake_minutes: how long the step may run without an answer; the
            controller's clock is routed requests divided by the plan's
            ``requests_per_minute``.
    """

    share_pct: float
    min_canary_requests: int
    max_bake_minutes: float

    def __post_init__(self) -> None:
        _SHARE_PCT.check("share_pct", self.share_pct)
        if abs(self.share_pct * 100 - round(self.share_pct * 100)) > 1e-9:
            raise ValueError(
                f"share_pct: expected a multiple of 0.01 (percent), got {self.share_pct!r}"
            )
        _COUNT.check("min_canary_requests", self.min_canary_requests)
        _POSITIVE.check("max_bake_minutes", self.max_bake_minutes)

    @property
    def basis_points(self) -> int:
        """The share in basis points (1 % = 100)."""
        return round(self.share_pct * 100)


@dataclass(frozen=True)
class RolloutPlan:
    """Steps and decision rules of a phased rollout.

    Args:
        steps: increasing canary shares; a final step at 100 % means "the
            candidate becomes production" and is not analysed.
        alpha: level of the judge (false-rollback budget for the whole rollout,
            however often it looks, split equally over its two metrics: error rate
            and slow-request rate).
        margin: a step may promote once the upper confidence bound on
            (canary error rate - baseline error rate) is below this.
        on_inconclusive: what a step does when its bake ends undecided:
            ``"hold"`` keeps the share and keeps analysing (never promotes
            without evidence), ``"rollback"`` aborts.
        latency_slo_ms: a request that takes longer than this is *slow*; the
            judge compares the canary's slow-request rate with the baseline's.
        slow_margin: a step may promote only once the upper confidence bound on
            (canary slow-request rate - baseline slow-request rate) is below this.
        requests_per_minute: expected live traffic, the controller's clock.
    """

    steps: tuple[RolloutStep, ...]
    # One default per knob: the plan file's ``[phased_rollout]`` takes these
    # (`release_spec.strategy.plan.PhasedRolloutPlan`). The margins are the offline
    # non-inferiority margin's three points (a regression the release gate would also
    # refuse), not 2: at a baseline error up to 50 % the default bakes still bring the
    # fixed-horizon sample size for 3 points. 50 ms is the embedded model's SLO: its
    # predict call on a batch takes a few ms, so 250 ms would call nothing slow.
    alpha: float = 0.05
    margin: float = 0.03
    on_inconclusive: Literal["hold", "rollback"] = "hold"
    latency_slo_ms: float = 50.0
    slow_margin: float = 0.03
    requests_per_minute: float = 1000.0

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps: expected at least one step")
        bps = [s.basis_points for s in self.steps]
        if any(b >= c for b, c in itertools.pairwise(bps)):
            raise ValueError(
                "steps: expected strictly increasing shares, got "
                f"{[s.share_pct for s in self.steps]} %"
            )
        if bps[0] == BASIS_POINTS:
            raise ValueError("steps: the first step cannot send 100 % of traffic to the canary")
        OPEN_FRACTION.check("alpha", self.alpha)
        _MARGIN.check("margin", self.margin)
        one_of("on_inconclusive", self.on_inconclusive, ("hold", "rollback"))
        _POSITIVE.check("latency_slo_ms", self.latency_slo_ms)
        _MARGIN.check("slow_margin", self.slow_margin)
        _POSITIVE.check("requests_per_minute", self.requests_per_minute)

    def judge_config(self) -> JudgeConfig:
        """The judge's settings: alpha split over the error and slow-request metrics.

        Examples:
            >>> cfg = service_rollout_plan().judge_config()
            >>> cfg.metrics, cfg.metric_alpha, cfg.slow_margin
            (('errors', 'slow'), 0.025, 0.03)
        """
        return JudgeConfig(alpha=self.alpha, margin=self.margin, slow_margin=self.slow_margin)


def service_rollout_plan() -> RolloutPlan:
    """The library's rollout plan for a service: 1 % -> 5 % -> 25 % -> 50 % -> 100 %.

    Sized for 10,000 requests a minute. It is not the release plan's rollout
    (``[phased_rollout]`` of ``default_plan.toml``, read into
    `release_spec.strategy.plan.PhasedRolloutPlan`), which has the same shares
    sized for 1,000 requests a minute. A step promotes once the canary is shown
    not worse than production by 2 percentage points of error rate (``margin``)
    or more; at a 2 % error rate that takes a few thousand canary requests, so
    the 1 % step bakes up to an hour. Run `forecast_steps` with your own traffic
    before using it.

    Examples:
        >>> [s.share_pct for s in service_rollout_plan().steps]
        [1.0, 5.0, 25.0, 50.0, 100.0]
    """
    return RolloutPlan(
        steps=(
            RolloutStep(1.0, 1_000, 60.0),
            RolloutStep(5.0, 2_000, 30.0),
            RolloutStep(25.0, 5_000, 30.0),
            RolloutStep(50.0, 10_000, 30.0),
            RolloutStep(100.0, 0, 1.0),
        ),
        alpha=0.05,
        margin=0.02,
        requests_per_minute=10_000.0,
    )


# --8<-- [start:route]
def route(request_id: str, canary_basis_points: int, salt: str = "") -> Arm:
    """Assign a request to an arm by a stable hash of its id.

    The id is hashed with BLAKE2b (not Python's per-process ``hash``) into a
    bucket in [0, 10 000); the request goes to the canary when its bucket is
    below the canary share in basis points. The same id therefore always
    lands on the same arm for a given share, and a user on the canary at 1 %
    stays on it at 5 %. ``salt`` (the candidate's id) reshuffles the buckets
    so successive candidates are tried on different users.

    Examples:
        >>> route("user-42", 0), route("user-42", 10_000)
        ('baseline', 'canary')
        >>> route("user-42", 500, salt="v2") == route("user-42", 500, salt="v2")
        True
    """
    if not (0 <= canary_basis_points <= BASIS_POINTS):
        raise ValueError(f"canary_basis_points must be in [0, 10000], got {canary_basis_points}")
    digest = hashlib.blake2b(f"{salt}\x1f{request_id}".encode(), digest_size=8).digest()
    return (
        "canary"
        if int.from_bytes(digest, "big") % BASIS_POINTS < canary_basis_points
        else "baseline"
    )


# --8<-- [end:route]


@dataclass(frozen=True)
class RolloutEvent:
    """A decision with its evidence: start, restart, promote, hold, abort, complete."""

    kind: Literal["start", "restart", "promotion_ready", "promote", "hold", "abort", "complete"]
    look: int
    step: int
    share_pct_before: float
    share_pct_after: float
    reason: str
    counts: Counts
    step_counts: Counts
    p_value: float
    upper_bound: float
    slow_upper_bound: float = math.inf


@dataclass(frozen=True)
class LookRecord:
    """One look: the clock, the traffic split and the judge's state after it.

    ``p_value`` is the judge's (Bonferroni-adjusted over its metrics);
    ``upper_bound`` bounds the error-rate difference, ``slow_upper_bound`` the
    slow-request-rate difference.
    """

    look: int
    minutes: float
    step: int
    share_pct: float
    canary_requests: int
    canary_errors: int
    baseline_requests: int
    baseline_errors: int
    p_value: float
    upper_bound: float
    canary_slow: int = 0
    baseline_slow: int = 0
    slow_upper_bound: float = math.inf


@dataclass(frozen=True)
class RolloutState:
    """A snapshot of the controller; every field is a value."""

    production: str
    candidate: str | None = None
    status: RolloutStatus = RolloutStatus.IDLE
    step: int = 0
    canary_basis_points: int = 0
    counts: Counts = field(default_factory=Counts)
    step_counts: Counts = field(default_factory=Counts)
    step_requests: int = 0
    minutes: float = 0.0
    p_value: float = 1.0
    upper_bound: float = math.inf
    slow_upper_bound: float = math.inf
    looks: int = 0
    events: tuple[RolloutEvent, ...] = ()
    history: tuple[LookRecord, ...] = ()

    @property
    def canary_share_pct(self) -> float:
        """Canary share in percent."""
        return self.canary_basis_points / 100

    @property
    def weights(self) -> dict[str, float]:
        """Traffic weights in percent; they always sum to 100."""
        return {
            "production": (BASIS_POINTS - self.canary_basis_points) / 100,
            "canary": self.canary_basis_points / 100,
        }


# --8<-- [start:transition]
def transition(state: RolloutState, to: RolloutStatus, **changes: object) -> RolloutState:
    """``state`` moved to status ``to`` (with ``changes``); `IllegalTransitionError` if not allowed.

    Examples:
        >>> transition(RolloutState(production="v1"), RolloutStatus.COMPLETED)
        Traceback (most recent call last):
        ...
        release_spec.strategy.stages.IllegalTransitionError: rollout: idle -> completed is not allowed
    """  # noqa: E501
    if to not in ROLLOUT_TRANSITIONS[state.status]:
        raise IllegalTransitionError(f"rollout: {state.status.value} -> {to.value} is not allowed")
    return replace(state, status=to, **changes)  # type: ignore[arg-type]


# --8<-- [end:transition]


class RolloutController:
    """Runs one candidate at a time through the plan's steps.

    Invariants (checked by ``tests/test_rollout.py`` with a Hypothesis state machine):
    the canary share is 0 or a step's share, so the weights lie in [0, 100] and
    sum to 100; after an abort the share is 0 and stays 0 until a new candidate
    starts; nothing promotes after an abort; the production model changes only
    when the last step completes; a request id keeps its arm within a step.

    Args:
        plan: the steps and decision rules.
        production: the id of the model currently in production.
        judge_factory: returns a fresh judge (default:
            ``CanaryJudge(plan.judge_config())``); one judge covers the whole
            rollout of a candidate (the shares may change between looks), a new
            candidate gets a new one. Its verdict rejects (abort) or promotes (the
            step is ready once it also has its minimum of canary requests).
    """

    def __init__(
        self,
        plan: RolloutPlan,
        *,
        production: str,
        judge_factory: Callable[[], Judge] | None = None,
    ) -> None:
        self.plan = plan
        self._judge_factory: Callable[[], Judge] = judge_factory or (
            lambda: CanaryJudge(plan.judge_config())
        )
        self._judge: Judge | None = None
        self._verdict: Verdict | None = None
        self._state = RolloutState(production=production)

    @property
    def state(self) -> RolloutState:
        """The current snapshot."""
        return self._state

    def route(self, request_id: str) -> Arm:
        """The arm that serves ``request_id`` under the current share."""
        return route(request_id, self._state.canary_basis_points, salt=self._state.candidate or "")

    def start(self, candidate: str) -> RolloutState:
        """Start (or, mid-analysis, restart) the rollout of ``candidate`` at the first step.

        Whatever the previous candidate had accumulated is discarded: its
        evidence says nothing about the new model.
        """
        if not candidate:
            raise ValueError("candidate id must be a non-empty string")
        s = self._state
        kind: Literal["start", "restart"] = "restart" if s.status.active else "start"
        self._judge = self._judge_factory()
        self._verdict = None
        first = self.plan.steps[0]
        # Everything but the clock and the record starts afresh.
        fresh = transition(
            RolloutState(
                production=s.production,
                status=s.status,
                minutes=s.minutes,
                looks=s.looks,
                events=s.events,
                history=s.history,
            ),
            RolloutStatus.ANALYSING,
            candidate=candidate,
            canary_basis_points=first.basis_points,
        )
        reason = (
            f"new candidate {candidate!r} replaces {s.candidate!r}; analysis restarted"
            if kind == "restart"
            else f"candidate {candidate!r} starts at {first.share_pct:g} %"
        )
        self._state = self._with_event(fresh, kind, reason, s.canary_share_pct)
        return self._state

    def observe(self, served: Iterable[ServedRequest]) -> RolloutState:
        """Take one batch of served requests, then look once.

        Requests that are served after an abort or completion (already in
        flight) change nothing.
        """
        s = self._state
        if s.status == RolloutStatus.IDLE:
            raise ValueError("no rollout in progress: call start(candidate) first")
        if s.status.terminal:
            return s
        delta = _count(list(served), self.plan.latency_slo_ms)
        assert self._judge is not None
        verdict = self._verdict = self._judge.update(*delta.arms())
        slow = next((m for m in verdict.metrics if m.name == "slow"), None)
        counts = s.counts + delta
        s = replace(
            s,
            counts=counts,
            step_counts=s.step_counts + delta,
            step_requests=s.step_requests + delta.requests,
            minutes=s.minutes + delta.requests / self.plan.requests_per_minute,
            p_value=float(verdict.p_value),
            upper_bound=float(verdict.bounds.high),
            slow_upper_bound=math.inf if slow is None else float(slow.bounds.high),
            looks=s.looks + 1,
        )
        s = replace(s, history=(*s.history, _record(s)))
        self._state = s
        return self._decide()

    def promote(self) -> RolloutState:
        """Apply a pending promotion: next step, or completion after the last analysed step.

        Does nothing unless a promotion is pending; in particular an abort
        that came first wins, and the share stays 0.
        """
        s = self._state
        if s.status != RolloutStatus.PROMOTION_PENDING:
            return s
        nxt = s.step + 1
        if nxt >= len(self.plan.steps) or self.plan.steps[nxt].basis_points == BASIS_POINTS:
            assert s.candidate is not None
            return self._move(
                RolloutStatus.COMPLETED,
                "complete",
                f"candidate {s.candidate!r} is production",
                production=s.candidate,
                canary_basis_points=0,
                step=nxt,
            )
        step = self.plan.steps[nxt]
        return self._move(
            RolloutStatus.ANALYSING,
            "promote",
            f"step {s.step} passed; canary share {s.canary_share_pct:g} % -> {step.share_pct:g} %",
            step=nxt,
            canary_basis_points=step.basis_points,
            step_counts=Counts(),
            step_requests=0,
        )

    def abort(self, reason: str = "manual abort") -> RolloutState:
        """Send the canary's share to 0 at once; idempotent, production untouched."""
        s = self._state
        if not s.status.active:
            return s
        return self._move(RolloutStatus.ABORTED, "abort", reason, canary_basis_points=0)

    # --8<-- [start:decide]
    def _decide(self) -> RolloutState:
        """One look's verdict; the order is the rule: reject, promotion, bake."""
        s = self._state
        step = self.plan.steps[s.step]
        v = self._verdict
        assert v is not None
        if v.decision == "reject":
            return self.abort(self._reject_reason(v))
        if s.status == RolloutStatus.PROMOTION_PENDING:
            return s
        ready = s.step_counts.canary_requests >= step.min_canary_requests and v.decision == (
            "promote"
        )
        if ready:
            reason = (
                f"step {s.step}: {s.step_counts.canary_requests} canary requests >= "
                f"{step.min_canary_requests}, upper bound on the error-rate difference "
                f"{s.upper_bound:.4f} < margin {self.plan.margin:g}"
            )
            if math.isfinite(s.slow_upper_bound):  # infinite: the judge judges errors only
                reason += (
                    f", on the slow-request-rate difference {s.slow_upper_bound:.4f} "
                    f"< slow_margin {self.plan.slow_margin:g}"
                )
            return self._move(RolloutStatus.PROMOTION_PENDING, "promotion_ready", reason)
        baked = s.step_requests >= step.max_bake_minutes * self.plan.requests_per_minute
        if baked and s.status == RolloutStatus.ANALYSING:
            bounds = f"{s.upper_bound:.4f} vs margin {self.plan.margin:g}"
            if math.isfinite(s.slow_upper_bound):  # infinite: the judge judges errors only
                bounds = (
                    f"upper bounds {bounds} and "
                    f"{s.slow_upper_bound:.4f} vs slow_margin {self.plan.slow_margin:g}"
                )
            else:
                bounds = f"upper bound {bounds}"
            why = (
                f"step {s.step} baked {step.max_bake_minutes:g} min without a decision "
                f"({s.step_counts.canary_requests} canary requests, p = {s.p_value:.3g}, "
                f"{bounds})"
            )
            if self.plan.on_inconclusive == "rollback":
                return self.abort(f"inconclusive: {why}")
            return self._move(RolloutStatus.HOLDING, "hold", f"holding: {why}")
        return self._state

    # --8<-- [end:decide]

    def _reject_reason(self, v: Verdict) -> str:
        s = self._state
        worst = min((m for m in v.metrics if m.decision == "reject"), key=lambda m: m.p_value)
        c = s.counts
        if worst.name == "slow":
            what = f"slow-request rate (> {self.plan.latency_slo_ms:g} ms)"
            canary, baseline = (
                (c.canary_slow, c.canary_requests),
                (c.baseline_slow, c.baseline_requests),
            )
        else:
            what = "error rate"
            canary, baseline = (
                (c.canary_errors, c.canary_requests),
                (c.baseline_errors, c.baseline_requests),
            )
        return (
            f"judge rejected at step {s.step} ({s.canary_share_pct:g} %): canary {what} "
            f"{_rate(*canary)} vs baseline {_rate(*baseline)}, always-valid p = "
            f"{v.p_value:.3g} <= alpha = {self.plan.alpha:g} (split over {len(v.metrics)} metrics)"
        )

    def _move(
        self, to: RolloutStatus, kind: _EventKind, reason: str, **changes: object
    ) -> RolloutState:
        """`transition` the state to ``to`` (with ``changes``) and record the event."""
        before = self._state.canary_share_pct
        self._state = self._with_event(transition(self._state, to, **changes), kind, reason, before)
        return self._state

    def _with_event(
        self,
        s: RolloutState,
        kind: _EventKind,
        reason: str,
        share_pct_before: float,
    ) -> RolloutState:
        event = RolloutEvent(
            kind=kind,
            look=s.looks,
            step=s.step,
            share_pct_before=share_pct_before,
            share_pct_after=s.canary_share_pct,
            reason=reason,
            counts=s.counts,
            step_counts=s.step_counts,
            p_value=s.p_value,
            upper_bound=s.upper_bound,
            slow_upper_bound=s.slow_upper_bound,
        )
        return replace(s, events=(*s.events, event))


@dataclass(frozen=True)
class LiveRequest:
    """A recorded request with what each arm would have answered (known in simulation)."""

    request_id: str
    canary_error: bool
    baseline_error: bool
    canary_latency_ms: float = 0.0
    baseline_latency_ms: float = 0.0


def replay(
    controller: RolloutController, requests: Iterable[LiveRequest], *, batch_size: int
) -> RolloutState:
    """Serve recorded requests through a started controller, one look per batch.

    Each request goes to the arm its id hashes to under the share in force
    when it arrives, and only that arm's outcome is observed. A pending
    promotion is applied after the look that made it pending. Stops at an
    abort or at completion; when the requests run out first, the state is
    returned as it stands (the caller decides what an unfinished rollout means).

    Examples:
        >>> ctl = RolloutController(service_rollout_plan(), production="v1")
        >>> _ = ctl.start("v2")
        >>> reqs = [LiveRequest(f"u{i}", canary_error=i % 3 == 0, baseline_error=False)
        ...         for i in range(100_000)]
        >>> replay(ctl, reqs, batch_size=1_000).status.value
        'aborted'
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[ServedRequest] = []
    for r in requests:
        if controller.state.status.terminal:
            break
        if controller.route(r.request_id) == "canary":
            batch.append(ServedRequest("canary", r.canary_error, r.canary_latency_ms))
        else:
            batch.append(ServedRequest("baseline", r.baseline_error, r.baseline_latency_ms))
        if len(batch) == batch_size:
            controller.observe(batch)
            controller.promote()
            batch = []
    if batch and not controller.state.status.terminal:
        controller.observe(batch)
        controller.promote()
    return controller.state


def _count(batch: Sequence[ServedRequest], slo_ms: float) -> Counts:
    cn = sum(1 for o in batch if o.arm == "canary")
    ce = sum(1 for o in batch if o.arm == "canary" and o.error)
    be = sum(1 for o in batch if o.arm == "baseline" and o.error)
    cs = sum(1 for o in batch if o.arm == "canary" and o.latency_ms > slo_ms)
    bs = sum(1 for o in batch if o.arm == "baseline" and o.latency_ms > slo_ms)
    return Counts(cn, ce, len(batch) - cn, be, cs, bs)


def _record(s: RolloutState) -> LookRecord:
    c = s.counts
    return LookRecord(
        look=s.looks,
        minutes=s.minutes,
        step=s.step,
        share_pct=s.canary_share_pct,
        canary_requests=c.canary_requests,
        canary_errors=c.canary_errors,
        baseline_requests=c.baseline_requests,
        baseline_errors=c.baseline_errors,
        p_value=s.p_value,
        upper_bound=s.upper_bound,
        canary_slow=c.canary_slow,
        baseline_slow=c.baseline_slow,
        slow_upper_bound=s.slow_upper_bound,
    )


def _rate(errors: int, requests: int) -> str:
    return f"{errors}/{requests}" + (f" = {errors / requests:.4f}" if requests else "")


@dataclass(frozen=True)
class StepForecast:
    """What a step can be expected to see against what the judge needs."""

    step: int
    share_pct: float
    expected_canary_requests: float
    required_canary_requests: int
    min_canary_requests: int
    warning: str | None


def check_effect(baseline_error: float, regression: float) -> None:
    """Refuse an effect that is not a regression between two error rates in (0, 1).

    Examples:
        >>> check_effect(0.02, 0.99)
        Traceback (most recent call last):
        ...
        ValueError: regression must be in (0, 1 - baseline_error), got 0.99 with baseline_error 0.02
    """
    if not (0 < baseline_error < 1):
        raise ValueError(f"baseline_error must be in (0, 1), got {baseline_error}")
    if not (0 < regression < 1 - baseline_error):
        raise ValueError(
            f"regression must be in (0, 1 - baseline_error), got {regression} "
            f"with baseline_error {baseline_error}"
        )


# --8<-- [start:forecast_steps]
def forecast_steps(
    plan: RolloutPlan,
    *,
    baseline_error: float,
    regression: float,
    power: float = 0.8,
) -> tuple[StepForecast, ...]:
    """Expected canary requests per step, and a warning where the bake cannot reach them.

    For each analysed step with canary share rho, the required number is the
    fixed-horizon sample size (``fixed_horizon_sample_size``, eq-sample-size,
    two-sided Wald form at the plan's alpha) to detect ``baseline_error ->
    baseline_error + regression`` with the given power when the baseline gets
    (1 - rho) / rho requests per canary request. The sequential judge usually
    decides sooner under a real regression (see ``release_spec.strategy.simulation``),
    so this is a conservative planning figure. The expected number is
    rho x ``requests_per_minute`` x the step's maximum bake.

    Examples:
        >>> quiet = replace(service_rollout_plan(), requests_per_minute=1_000.0)
        >>> fc = forecast_steps(quiet, baseline_error=0.02, regression=0.02)
        >>> [(f.share_pct, f.required_canary_requests, round(f.expected_canary_requests))
        ...  for f in fc[:2]]
        [(1.0, 758, 600), (5.0, 774, 1500)]
        >>> print(fc[0].warning)  # doctest: +ELLIPSIS
        step 0 (1 %): the 60 min bake brings about 600 canary requests, fewer than the 758 ...
    """
    check_effect(baseline_error, regression)
    OPEN_FRACTION.check("power", power)
    out = []
    for i, step in enumerate(plan.steps):
        if step.basis_points == BASIS_POINTS:
            continue
        rho = step.share_pct / 100
        expected = rho * plan.requests_per_minute * step.max_bake_minutes
        required = fixed_horizon_sample_size(
            baseline_error,
            baseline_error + regression,
            alpha=plan.alpha,
            power=power,
            canary_fraction=rho,
        ).canary_requests
        warning = None
        if expected < required:
            warning = (
                f"step {i} ({step.share_pct:g} %): the {step.max_bake_minutes:g} min bake brings "
                f"about {expected:.0f} canary requests, fewer than the {required} needed to detect "
                f"{baseline_error:.4g} -> {baseline_error + regression:.4g} with power {power:g}; "
                f"bake at least {math.ceil(required / (rho * plan.requests_per_minute))} min"
            )
        elif expected < step.min_canary_requests:
            warning = (
                f"step {i} ({step.share_pct:g} %): the bake brings about {expected:.0f} canary "
                f"requests, fewer than the step's minimum {step.min_canary_requests}"
            )
        out.append(
            StepForecast(i, step.share_pct, expected, required, step.min_canary_requests, warning)
        )
    return tuple(out)


# --8<-- [end:forecast_steps]
