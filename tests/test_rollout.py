"""The phased-rollout controller: routing, steps, abort, hold, restart, planner, invariants."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from release_spec.statistics import Interval, fixed_horizon_sample_size
from release_spec.strategy.judge import ArmCounts, Decision, MetricVerdict, Verdict
from release_spec.strategy.plan import load_plan, parse_plan
from release_spec.strategy.rollout import (
    ROLLOUT_TRANSITIONS,
    Counts,
    LiveRequest,
    RolloutController,
    RolloutPlan,
    RolloutState,
    RolloutStatus,
    RolloutStep,
    ServedRequest,
    forecast_steps,
    replay,
    route,
    service_rollout_plan,
    transition,
)
from release_spec.strategy.stages import IllegalTransitionError


def _plan(*steps: tuple[float, int, float], **settings: Any) -> RolloutPlan:
    """A plan of ``(share_pct, min_canary_requests, max_bake_minutes)`` steps."""
    return RolloutPlan(steps=tuple(RolloutStep(*s) for s in steps), **settings)


Arm = Literal["canary", "baseline"]

# A plan small enough to walk through by hand: 100 requests per minute, so a
# 1-minute bake is 100 routed requests.
SMALL = _plan(
    (10.0, 20, 1.0),
    (50.0, 20, 1.0),
    (100.0, 0, 1.0),
    alpha=0.05,
    margin=0.05,
    latency_slo_ms=100.0,
    slow_margin=0.05,
    requests_per_minute=100.0,
)


@dataclass
class ScriptedJudge:
    """A judge whose verdict the test sets; it records what the controller fed it."""

    reject: bool = False
    promote: bool = False
    reject_metric: str = "errors"
    updates: int = 0
    canary_requests: int = 0
    fed: list[tuple[ArmCounts, ArmCounts]] = field(default_factory=list)

    def update(self, canary: ArmCounts, baseline: ArmCounts) -> Verdict:
        self.updates += 1
        self.canary_requests += canary.requests
        self.fed.append((canary, baseline))
        decision: Decision = "reject" if self.reject else "promote" if self.promote else "continue"
        bounds = Interval(-0.1, 0.0 if self.promote else 1.0)
        metrics = tuple(
            MetricVerdict(
                name,
                0.0005 if self.reject and name == self.reject_metric else 0.5,
                bounds,
                "reject" if self.reject and name == self.reject_metric else decision,
            )
            for name in ("errors", "slow")
        )
        return Verdict(
            decision=decision,
            p_value=0.001 if self.reject else 1.0,
            bounds=bounds,
            looks=self.updates,
            canary_requests=self.canary_requests,
            baseline_requests=0,
            reason="scripted",
            metrics=metrics,  # type: ignore[arg-type]
        )


def controller(
    plan: RolloutPlan = SMALL, promote: bool = False
) -> tuple[RolloutController, list[ScriptedJudge]]:
    judges: list[ScriptedJudge] = []

    def factory() -> ScriptedJudge:
        judges.append(ScriptedJudge(promote=promote))
        return judges[-1]

    return RolloutController(plan, production="v1", judge_factory=factory), judges


def batch(
    canary: int, baseline: int, canary_errors: int = 0, latency: float = 5.0
) -> list[ServedRequest]:
    return [ServedRequest("canary", i < canary_errors, latency) for i in range(canary)] + [
        ServedRequest("baseline", False, latency) for _ in range(baseline)
    ]


# --- routing -------------------------------------------------------------------------------


def test_route_is_the_blake2b_bucket() -> None:
    digest = hashlib.blake2b(b"v2\x1fuser-7", digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 10_000
    assert route("user-7", bucket + 1, salt="v2") == "canary"
    assert route("user-7", bucket, salt="v2") == "baseline"


def test_route_share_matches_fraction_and_is_nested() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    at_1 = {i for i in ids if route(i, 100) == "canary"}
    at_5 = {i for i in ids if route(i, 500) == "canary"}
    # Binomial(20000, 0.05): sd about 31, so 4 sd either side.
    assert 1000 - 125 < len(at_5) < 1000 + 125
    assert 200 - 57 < len(at_1) < 200 + 57
    assert at_1 <= at_5


def test_route_rejects_share_out_of_range() -> None:
    with pytest.raises(ValueError, match="canary_basis_points"):
        route("x", 10_001)


# --- plan validation -----------------------------------------------------------------------


def test_default_plan_weights_sum_to_100() -> None:
    plan = service_rollout_plan()
    assert [s.share_pct for s in plan.steps] == [1.0, 5.0, 25.0, 50.0, 100.0]
    assert [s.basis_points for s in plan.steps] == [100, 500, 2500, 5000, 10_000]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": ()}, "at least one step"),
        ({"steps": (RolloutStep(5.0, 1, 1.0), RolloutStep(5.0, 1, 1.0))}, "strictly increasing"),
        ({"steps": (RolloutStep(100.0, 1, 1.0),)}, "first step"),
        ({"steps": SMALL.steps, "alpha": 1.0}, "alpha"),
        ({"steps": SMALL.steps, "on_inconclusive": "promote"}, "on_inconclusive"),
        ({"steps": SMALL.steps, "requests_per_minute": 0.0}, "requests_per_minute"),
        ({"steps": SMALL.steps, "latency_slo_ms": 0.0}, "latency_slo_ms"),
        ({"steps": SMALL.steps, "latency_slo_ms": math.inf}, "latency_slo_ms"),
        ({"steps": SMALL.steps, "slow_margin": 1.0}, "slow_margin"),
    ],
)
def test_plan_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutPlan(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 1, 1.0), "share_pct"),
        ((0.005, 1, 1.0), "multiple of 0.01"),
        ((5.0, -1, 1.0), "min_canary"),
        ((5.0, 1, 0.0), "max_bake"),
    ],
)
def test_step_rejects_bad_values(args: tuple[float, int, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutStep(*args)


def test_counts_reject_errors_above_requests() -> None:
    with pytest.raises(ValueError, match="canary errors"):
        Counts(canary_requests=1, canary_errors=2)
    with pytest.raises(ValueError, match="non-negative"):
        Counts(baseline_requests=-1)
    with pytest.raises(ValueError, match="baseline slow requests"):
        Counts(baseline_requests=1, baseline_slow=2)
    assert Counts(1, 0, 2, 1, 1, 2) + Counts(1, 1, 0, 0, 1, 0) == Counts(2, 1, 2, 1, 2, 2)


# --- controller ----------------------------------------------------------------------------


def test_observe_before_start_raises() -> None:
    c, _ = controller()
    with pytest.raises(ValueError, match="no rollout in progress"):
        c.observe(batch(1, 9))


def test_reject_aborts_at_once_with_evidence() -> None:
    c, judges = controller()
    c.start("v2")
    c.observe(batch(5, 45, canary_errors=1))
    judges[0].reject = True
    s = c.observe(batch(5, 45, canary_errors=4))
    assert s.status == "aborted"
    assert s.canary_share_pct == 0
    assert s.weights == {"production": 100.0, "canary": 0.0}
    assert s.production == "v1"
    abort = s.events[-1]
    assert abort.kind == "abort"
    assert abort.step == 0
    assert abort.share_pct_before == 10.0
    assert abort.counts == Counts(10, 5, 90, 0)
    assert abort.p_value == 0.001
    assert "p = 0.001" in abort.reason
    assert "5/10" in abort.reason


def test_abort_is_idempotent_and_late_outcomes_change_nothing() -> None:
    c, _ = controller()
    c.start("v2")
    first = c.abort("manual")
    assert c.abort("again") == first
    assert c.observe(batch(3, 3)) == first
    assert [e.kind for e in first.events] == ["start", "abort"]


def test_abort_wins_over_pending_promotion() -> None:
    c, _ = controller(promote=True)
    c.start("v2")
    s = c.observe(batch(20, 80))
    assert s.status == "promotion_pending"
    assert s.events[-1].kind == "promotion_ready"
    c.abort("pager")
    s = c.promote()
    assert s.status == "aborted"
    assert s.canary_share_pct == 0
    assert s.step == 0
    assert "promote" not in [e.kind for e in s.events]


def test_reject_while_promotion_pending_aborts() -> None:
    c, judges = controller(promote=True)
    c.start("v2")
    assert c.observe(batch(20, 80)).status == "promotion_pending"
    judges[0].reject = True
    s = c.observe(batch(2, 8))
    assert s.status == "aborted"
    assert c.promote().status == "aborted"


def test_promotion_needs_min_requests_and_the_judges_promote() -> None:
    c, judges = controller(promote=True)
    c.start("v2")
    assert c.observe(batch(19, 21)).status == "analysing"  # 19 < 20 canary requests
    judges[0].promote = False  # enough requests, but the judge says continue
    assert c.observe(batch(5, 5)).status in ("analysing", "holding")
    judges[0].promote = True
    s = c.observe(batch(1, 1))
    assert s.status == "promotion_pending"
    assert "slow-request-rate difference 0.0000 < slow_margin 0.05" in s.events[-1].reason


def test_walks_all_steps_then_production_changes() -> None:
    c, judges = controller(promote=True)
    c.start("v2")
    c.observe(batch(20, 80))
    s = c.promote()
    assert s.step == 1
    assert s.canary_share_pct == 50.0
    assert s.step_counts == Counts()
    assert s.production == "v1"
    c.observe(batch(20, 20))
    s = c.promote()
    assert s.status == "completed"
    assert s.production == "v2"
    assert s.canary_share_pct == 0
    assert [e.kind for e in s.events] == [
        "start",
        "promotion_ready",
        "promote",
        "promotion_ready",
        "complete",
    ]
    # One sequential test spans the whole rollout of a candidate.
    assert len(judges) == 1
    assert judges[0].canary_requests == 40


def test_inconclusive_step_holds_and_never_promotes_without_evidence() -> None:
    c, judges = controller()
    c.start("v2")
    s = c.observe(batch(30, 70))  # 100 requests = the 1-minute bake
    assert s.status == "holding"
    assert s.canary_share_pct == 10.0
    assert s.events[-1].kind == "hold"
    assert "baked 1 min" in s.events[-1].reason
    for _ in range(5):
        s = c.observe(batch(10, 90))
        assert s.status == "holding"
        assert s.canary_share_pct == 10.0
    assert c.promote().step == 0
    judges[0].promote = True
    assert c.observe(batch(10, 90)).status == "promotion_pending"


def test_inconclusive_step_rolls_back_when_plan_says_so() -> None:
    plan = RolloutPlan(steps=SMALL.steps, on_inconclusive="rollback", requests_per_minute=100.0)
    c, _ = controller(plan)
    c.start("v2")
    s = c.observe(batch(30, 70))
    assert s.status == "aborted"
    assert s.canary_share_pct == 0
    assert s.production == "v1"
    assert s.events[-1].reason.startswith("inconclusive")


def test_slow_requests_are_counted_per_arm_above_the_slo() -> None:
    c, judges = controller()
    c.start("v2")
    out = [ServedRequest("canary", False, t) for t in (99.0, 100.0, 100.5, 400.0)]
    out += [ServedRequest("baseline", True, t) for t in (1.0, 100.0, 101.0)]
    s = c.observe(out)
    # Strictly slower than the 100 ms SLO is slow; both arms are counted.
    assert judges[0].fed == [
        (ArmCounts(4, 0, 2), ArmCounts(3, 3, 1)),
    ]
    assert s.counts == Counts(4, 0, 3, 3, 2, 1)
    assert (s.history[-1].canary_slow, s.history[-1].baseline_slow) == (2, 1)


def test_slow_metric_rejection_names_the_slo_and_the_rates() -> None:
    c, judges = controller()
    c.start("v2")
    judges[0].reject, judges[0].reject_metric = True, "slow"
    s = c.observe(batch(10, 90, latency=500.0))
    assert s.status == "aborted"
    reason = s.events[-1].reason
    assert "slow-request rate (> 100 ms) 10/10 = 1.0000 vs baseline 90/90" in reason
    assert "p = 0.001 <= alpha = 0.05 (split over 2 metrics)" in reason


def _real_judge_rollout(
    plan: RolloutPlan,
    seed: int,
    serve: Callable[[Arm, random.Random], ServedRequest],
    *,
    batches: int,
    promote: bool,
) -> RolloutController:
    """Candidate v2 against v1 with the real judge: batches of 500 requests, each served by
    ``serve`` on the arm it is routed to, until the rollout ends or the batches run out."""
    c = RolloutController(plan, production="v1")
    rng = random.Random(seed)
    c.start("v2")
    for b in range(batches):
        if c.state.status.terminal:
            break
        c.observe([serve(c.route(f"r{b}-{i}"), rng) for i in range(500)])
        if promote:
            c.promote()
    return c


def _latency_rollout(canary_slow: float, baseline_slow: float, seed: int) -> RolloutController:
    """The real judge on 20 % canary traffic; errors equal, slow rates as given."""
    plan = _plan(
        (20.0, 100_000, 1_000.0),
        (100.0, 0, 1.0),
        latency_slo_ms=100.0,
        requests_per_minute=1000.0,
    )

    def serve(arm: Arm, rng: random.Random) -> ServedRequest:
        slow = rng.random() < (canary_slow if arm == "canary" else baseline_slow)
        return ServedRequest(arm, rng.random() < 0.02, 150.0 if slow else 20.0)

    return _real_judge_rollout(plan, seed, serve, batches=40, promote=False)


def test_real_judge_rolls_back_a_canary_that_is_slower() -> None:
    s = _latency_rollout(canary_slow=0.10, baseline_slow=0.02, seed=5).state
    assert s.status == "aborted"
    assert "slow-request rate (> 100 ms)" in s.events[-1].reason
    assert s.counts.canary_slow > 2 * s.counts.canary_requests * 0.02


def test_real_judge_ignores_a_machine_that_slows_both_arms() -> None:
    # 30 % of requests are slow on both arms (a loaded machine), far above any fixed p99.
    s = _latency_rollout(canary_slow=0.30, baseline_slow=0.30, seed=6).state
    assert s.status == "analysing"
    assert s.counts.baseline_slow > 0.25 * s.counts.baseline_requests
    assert s.p_value > 0.05


def test_new_candidate_mid_analysis_restarts() -> None:
    c, judges = controller(promote=True)
    c.start("v2")
    c.observe(batch(20, 80))
    c.promote()
    c.observe(batch(5, 5, canary_errors=2))
    s = c.start("v3")
    assert s.status == "analysing"
    assert s.step == 0
    assert s.canary_share_pct == 10.0
    assert s.candidate == "v3"
    assert s.counts == Counts()
    assert s.step_counts == Counts()
    assert s.events[-1].kind == "restart"
    assert "'v2'" in s.events[-1].reason
    assert len(judges) == 2
    assert judges[1].updates == 0


def test_history_records_share_and_p_value_per_look() -> None:
    c, _ = controller(promote=True)
    c.start("v2")
    c.observe(batch(20, 80))
    c.promote()
    c.observe(batch(10, 10))
    h = c.state.history
    assert [(r.look, r.share_pct, r.canary_requests) for r in h] == [(1, 10.0, 20), (2, 50.0, 30)]
    assert h[-1].minutes == pytest.approx(1.2)


# --- status: an Enum, a table, one transition() ---------------------------------------------


@pytest.mark.parametrize("source", list(RolloutStatus))
@pytest.mark.parametrize("target", list(RolloutStatus))
def test_transition_moves_exactly_along_the_table(
    source: RolloutStatus, target: RolloutStatus
) -> None:
    state = RolloutState(production="v1", status=source)
    if target in ROLLOUT_TRANSITIONS[source]:
        assert transition(state, target).status is target
    else:
        with pytest.raises(IllegalTransitionError, match=f"{source.value} -> {target.value}"):
            transition(state, target)


def test_nothing_but_a_new_candidate_leaves_a_finished_rollout() -> None:
    for done in (RolloutStatus.ABORTED, RolloutStatus.COMPLETED):
        assert ROLLOUT_TRANSITIONS[done] == {RolloutStatus.ANALYSING}
    # Only a pending promotion completes; only an active rollout aborts.
    assert {s for s in RolloutStatus if RolloutStatus.COMPLETED in ROLLOUT_TRANSITIONS[s]} == {
        RolloutStatus.PROMOTION_PENDING
    }
    assert {s for s in RolloutStatus if RolloutStatus.ABORTED in ROLLOUT_TRANSITIONS[s]} == {
        s for s in RolloutStatus if s.active
    }


def test_status_properties_and_its_value_in_the_report() -> None:
    assert {s.value for s in RolloutStatus if s.active} == {
        "analysing",
        "promotion_pending",
        "holding",
    }
    assert {s.value for s in RolloutStatus if s.terminal} == {"aborted", "completed"}
    assert not RolloutStatus.IDLE.active
    assert not RolloutStatus.IDLE.terminal
    # A str Enum: equal to its value, written as its value.
    assert RolloutStatus.ABORTED == "aborted"
    assert f"{RolloutStatus.ABORTED}" == "aborted"
    assert json.dumps({"status": RolloutStatus.HOLDING}) == '{"status": "holding"}'


# --- with the real judge -------------------------------------------------------------------


def _simulate(p_canary: float, p_baseline: float, seed: int) -> RolloutController:
    plan = _plan(
        (5.0, 300, 60.0),
        (25.0, 500, 60.0),
        (100.0, 0, 1.0),
        margin=0.03,
        requests_per_minute=1000.0,
    )

    def serve(arm: Arm, rng: random.Random) -> ServedRequest:
        return ServedRequest(arm, rng.random() < (p_canary if arm == "canary" else p_baseline), 1.0)

    return _real_judge_rollout(plan, seed, serve, batches=400, promote=True)


def test_real_judge_rolls_back_a_regression() -> None:
    c = _simulate(p_canary=0.10, p_baseline=0.02, seed=3)
    s = c.state
    assert s.status == "aborted"
    assert s.production == "v1"
    assert s.events[-1].p_value <= 0.05
    assert s.events[-1].reason.startswith("judge rejected")


def test_real_judge_completes_without_regression() -> None:
    s = _simulate(p_canary=0.02, p_baseline=0.02, seed=4).state
    assert s.status == "completed"
    assert s.production == "v2"


# --- planner -------------------------------------------------------------------------------


def test_forecast_warns_when_bake_is_too_short() -> None:
    assert all(
        f.warning is None
        for f in forecast_steps(service_rollout_plan(), baseline_error=0.02, regression=0.02)
    )
    quiet = replace(service_rollout_plan(), requests_per_minute=1000.0)
    fc = forecast_steps(quiet, baseline_error=0.02, regression=0.02)
    assert [f.share_pct for f in fc] == [1.0, 5.0, 25.0, 50.0]
    # 1 % of 1000 requests/min for 60 min = 600 canary requests, fewer than needed.
    assert fc[0].expected_canary_requests == pytest.approx(600)
    needed = fixed_horizon_sample_size(0.02, 0.04, alpha=0.05, power=0.8, canary_fraction=0.01)
    assert fc[0].required_canary_requests == needed.canary_requests
    assert fc[0].warning is not None
    minutes = math.ceil(needed.canary_requests / 10)
    assert f"bake at least {minutes} min" in fc[0].warning
    assert fc[1].required_canary_requests == 774
    # 5 % for 30 min = 1500: enough for the effect, not for the step's own minimum of 2000.
    assert fc[1].warning is not None
    assert "minimum 2000" in fc[1].warning


def test_forecast_warns_when_bake_is_below_the_step_minimum() -> None:
    plan = _plan((50.0, 10_000, 10.0), (100.0, 0, 1.0))
    (fc,) = forecast_steps(plan, baseline_error=0.02, regression=0.05)
    assert fc.expected_canary_requests == pytest.approx(5000)
    assert fc.warning is not None
    assert "minimum 10000" in fc.warning


def test_forecast_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="regression"):
        forecast_steps(service_rollout_plan(), baseline_error=0.5, regression=0.6)


# --- invariants, statefully ----------------------------------------------------------------


class RolloutMachine(RuleBasedStateMachine):
    """Random sequences of starts, batches, promotions and aborts keep the invariants."""

    @initialize()
    def setup(self) -> None:
        # A wide margin so that promotions, completions and aborts all happen in short runs.
        self.plan = replace(SMALL, margin=0.1)
        self.ctl = RolloutController(self.plan, production="v0")
        self.production = "v0"
        self.ids = [f"user-{i}" for i in range(64)]
        self.arms: dict[str, str] | None = None
        self.step_key: tuple[str | None, int, int] | None = None
        self.n = 0

    # Restarts and manual aborts are drawn rarely (1 in 5 calls act) so runs also get
    # far enough to promote and complete.
    @rule(name=st.sampled_from(["a", "b", "c", "d"]), act=st.integers(0, 4))
    def new_candidate(self, name: str, act: int) -> None:
        if act == 0 or self.ctl.state.status in ("idle", "aborted", "completed"):
            self.ctl.start(name)

    @precondition(lambda self: self.ctl.state.status != "idle")
    @rule(
        canary=st.integers(0, 40),
        baseline=st.integers(0, 60),
        # Mostly healthy traffic, so that runs get far enough to promote and complete.
        canary_error_rate=st.integers(0, 19).map(lambda i: {0: 1.0, 1: 0.5}.get(i, 0.0)),
        latency=st.integers(0, 29).map(lambda i: 1000.0 if i == 0 else 1.0),
    )
    def observe(self, canary: int, baseline: int, canary_error_rate: float, latency: float) -> None:
        before = self.ctl.state
        errs = round(canary * canary_error_rate)
        after = self.ctl.observe(batch(canary, baseline, errs, latency))
        if before.status == "aborted":
            assert after == before

    @precondition(lambda self: self.ctl.state.status != "idle")
    @rule()
    def healthy_batch_then_promote(self) -> None:
        self.observe(40, 60, 0.0, 1.0)
        self.promote()

    @rule()
    def promote(self) -> None:
        before = self.ctl.state
        after = self.ctl.promote()
        if before.status == "aborted":
            assert after == before
        if after.status == "completed" and before.status != "completed":
            self.production = before.candidate or self.production

    @rule(act=st.integers(0, 4))
    def abort(self, act: int) -> None:
        if act:
            return
        before = self.ctl.state
        after = self.ctl.abort("test")
        if before.status == "aborted":
            assert after == before

    @invariant()
    def weights_in_range_and_sum_to_100(self) -> None:
        w = self.ctl.state.weights
        assert 0 <= w["canary"] <= 100
        assert 0 <= w["production"] <= 100
        assert self.ctl.state.canary_basis_points + round(w["production"] * 100) == 10_000
        assert w["canary"] in {0.0, *(s.share_pct for s in self.plan.steps)}

    @invariant()
    def aborted_means_zero_share(self) -> None:
        s = self.ctl.state
        if s.status in ("aborted", "completed", "idle"):
            assert s.canary_basis_points == 0

    @invariant()
    def no_promotion_after_abort(self) -> None:
        since_abort = False
        for e in self.ctl.state.events:
            if e.kind in ("start", "restart"):
                since_abort = False
            elif e.kind == "abort":
                since_abort = True
            elif since_abort:
                raise AssertionError(f"{e.kind} after an abort: {e}")

    @invariant()
    def production_changes_only_on_completion(self) -> None:
        assert self.ctl.state.production == self.production

    @invariant()
    def routing_sticky_within_a_step(self) -> None:
        s = self.ctl.state
        key = (s.candidate, s.step, s.canary_basis_points)
        arms: dict[str, str] = {i: self.ctl.route(i) for i in self.ids}
        if key == self.step_key:
            assert arms == self.arms
        self.step_key, self.arms = key, arms


TestRolloutMachine = RolloutMachine.TestCase
# Each look runs the real judge (two metrics); 100 runs of 30 steps keep CI quick.
_profile = settings.default
assert _profile is not None
TestRolloutMachine.settings = settings(
    _profile, max_examples=min(_profile.max_examples, 100), stateful_step_count=30
)


def test_machine_exercised_every_transition() -> None:
    """The machine's rules reach every kind of event within the runs the machine test makes.

    Self-contained (it runs the machine itself, derandomized, and collects the events
    in a local set), so it passes alone, in any order and in parallel.
    """
    seen: set[str] = set()

    class Recording(RolloutMachine):
        def teardown(self) -> None:
            seen.update(e.kind for e in self.ctl.state.events)

    run_state_machine_as_test(
        Recording,
        settings=settings(
            max_examples=30, stateful_step_count=30, derandomize=True, database=None, deadline=None
        ),
    )
    assert {"start", "restart", "promote", "complete", "abort", "hold"} <= seen, seen


# --- replaying recorded traffic ------------------------------------------------------------


def test_replay_observes_the_routed_arm_only() -> None:
    c, judges = controller()
    c.start("v2")
    # The canary is always wrong and the baseline always right: canary errors = canary requests.
    reqs = [LiveRequest(f"u{i}", canary_error=True, baseline_error=False) for i in range(60)]
    s = replay(c, reqs, batch_size=60)
    expected = sum(route(f"u{i}", 1000, salt="v2") == "canary" for i in range(60))
    assert s.counts == Counts(expected, expected, 60 - expected, 0)
    assert judges[0].updates == 1


def test_replay_stops_at_abort_and_leaves_the_rest() -> None:
    c, judges = controller()
    c.start("v2")
    judges[0].reject = True
    reqs = [LiveRequest(f"u{i}", canary_error=False, baseline_error=False) for i in range(500)]
    s = replay(c, reqs, batch_size=50)
    assert s.status == "aborted"
    assert s.counts.requests == 50


def test_replay_returns_an_unfinished_rollout_as_it_stands() -> None:
    c, _ = controller()
    c.start("v2")
    reqs = [LiveRequest(f"u{i}", canary_error=False, baseline_error=False) for i in range(250)]
    s = replay(c, reqs, batch_size=100)
    assert s.status == "holding"
    assert s.looks == 3
    assert s.counts.requests == 250
    with pytest.raises(ValueError, match="batch_size"):
        replay(c, reqs, batch_size=0)


# --- plan keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["latency_p99_ms", "latency_min_samples"])
def test_plan_file_refuses_the_old_latency_keys_naming_the_new_ones(key: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^phased_rollout\.{key}: no longer a key; replaced by latency_slo_ms and "
        "slow_margin",
    ):
        parse_plan({"phased_rollout": {key: 50}})


def test_plan_file_latency_keys_reach_the_judge() -> None:
    default = load_plan().phased_rollout.rollout_plan()
    assert (default.latency_slo_ms, default.slow_margin) == (50.0, 0.03)
    plan = parse_plan({"phased_rollout": {"latency_slo_ms": 80, "slow_margin": 0.05}})
    rp = plan.phased_rollout.rollout_plan()
    assert (rp.latency_slo_ms, rp.slow_margin) == (80.0, 0.05)
    assert rp.judge_config().metrics == ("errors", "slow")
    assert rp.judge_config().slow_margin == 0.05
    with pytest.raises(ValueError, match=r"phased_rollout\.slow_margin"):
        parse_plan({"phased_rollout": {"slow_margin": 0.9}})


def test_a_judge_of_errors_only_is_not_quoted_on_slow_requests() -> None:
    """The language run judges errors only: its reasons must not print "inf < slow_margin"."""
    from release_spec.strategy.judge import CanaryJudge, JudgeConfig

    plan = _plan((10.0, 20, 1.0), (50.0, 20, 1.0), alpha=0.05, margin=0.5)

    def judge() -> CanaryJudge:
        return CanaryJudge(JudgeConfig(alpha=0.05, margin=0.5))

    c = RolloutController(plan, production="v1", judge_factory=judge)
    c.start("v2")
    s = c.state
    for _ in range(20):
        s = c.observe(batch(100, 100))
        if s.status == "promotion_pending":
            break
    assert s.status == "promotion_pending"
    reason = s.events[-1].reason
    assert "upper bound on the error-rate difference" in reason
    assert "slow" not in reason
    assert "inf" not in reason
