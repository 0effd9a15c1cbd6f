"""The stage state machine, the retry loop and the release steps, without TensorFlow."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_spec.strategy.gates import GateResult
from release_spec.strategy.stages import (
    ALLOWED,
    AttemptOutcome,
    Diagnosis,
    Hyperparameters,
    IllegalTransitionError,
    ReleaseStep,
    StageRecord,
    State,
    TrainingCurves,
    adjust,
    diagnose,
    run_release,
    run_stage,
    transition,
)

HP = Hyperparameters(learning_rate=1e-3, epochs=10, batch_size=32)


def _gate(name: str, passed: bool) -> GateResult:
    return GateResult(name, passed, 1.0 if passed else 0.0, 0.5, None, "detail")


def test_the_documented_path_is_legal():
    rec = StageRecord("release")
    for to in (State.RUNNING, State.PASSED, State.RELEASED, State.ROLLED_BACK):
        rec = transition(rec, to)
    assert rec.state is State.ROLLED_BACK
    assert [s.value for s in rec.history] == [
        "planned",
        "running",
        "passed",
        "released",
        "rolled_back",
    ]


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ((), State.PASSED),  # planned -> passed: never ran
        ((), State.RELEASED),
        ((State.RUNNING, State.FAILED), State.RELEASED),  # a failed stage cannot be released
        ((State.RUNNING, State.PASSED), State.FAILED),
        ((State.RUNNING, State.ROLLED_BACK), State.RUNNING),  # rolled back is final
        ((State.RUNNING, State.PASSED, State.RELEASED), State.RUNNING),
    ],
)
def test_illegal_transitions_raise_naming_both_states(path, bad):
    rec = StageRecord("s")
    for to in path:
        rec = transition(rec, to)
    with pytest.raises(IllegalTransitionError, match=f"{rec.state.value} -> {bad.value}"):
        transition(rec, bad)
    assert issubclass(IllegalTransitionError, ValueError)


# The machine as documented (planned -> running -> passed / failed -> released / rolled_back,
# failed -> running for a retry), written out independently of ALLOWED.
DOCUMENTED = {
    ("planned", "running"),
    ("running", "passed"),
    ("running", "failed"),
    ("running", "rolled_back"),
    ("failed", "running"),
    ("passed", "released"),
    ("released", "rolled_back"),
}
# A legal path from planned to each state.
PATH_TO = {
    State.PLANNED: (),
    State.RUNNING: (State.RUNNING,),
    State.PASSED: (State.RUNNING, State.PASSED),
    State.FAILED: (State.RUNNING, State.FAILED),
    State.RELEASED: (State.RUNNING, State.PASSED, State.RELEASED),
    State.ROLLED_BACK: (State.RUNNING, State.ROLLED_BACK),
}


@pytest.mark.parametrize("frm", list(State))
@pytest.mark.parametrize("to", list(State))
def test_every_pair_of_states_against_the_documented_machine(frm, to):
    rec = StageRecord("s")
    for step in PATH_TO[frm]:
        rec = transition(rec, step)
    if (frm.value, to.value) in DOCUMENTED:
        assert transition(rec, to).state is to
    else:
        with pytest.raises(IllegalTransitionError):
            transition(rec, to)


@given(st.lists(st.sampled_from(list(State)), max_size=12))
def test_transition_follows_allowed_exactly(moves):
    rec = StageRecord("s")
    for to in moves:
        if to in ALLOWED[rec.state]:
            new = transition(rec, to)
            assert new.state is to
            assert new.history == (*rec.history, to)
            rec = new
        else:
            with pytest.raises(IllegalTransitionError):
                transition(rec, to)
    # Released is reachable only through passed.
    states = list(rec.history)
    if State.RELEASED in states:
        assert states[states.index(State.RELEASED) - 1] is State.PASSED


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        StageRecord("s").state = State.RUNNING  # type: ignore[misc]


def test_diagnose_prefers_forgetting_then_gap():
    curves = TrainingCurves((0.99,), (0.80,))
    forget = _gate("finetune.no_forgetting", False)
    assert diagnose([forget], curves, overfit_gap=0.05).cause == "forgetting"
    d = diagnose([_gate("finetune.improvement", False)], curves, overfit_gap=0.05)
    assert d.cause == "over-fitting"
    assert "gap 0.1900 > 0.05" in d.evidence
    under = diagnose([], TrainingCurves((0.81,), (0.80,)), overfit_gap=0.05)
    assert under.cause == "under-fitting"
    with pytest.raises(ValueError, match="at least one epoch"):
        diagnose([], TrainingCurves((), ()), overfit_gap=0.05)


def test_adjust_per_cause():
    assert adjust(HP, Diagnosis("under-fitting", ""), max_epochs=12).epochs == 12
    over = adjust(dataclasses.replace(HP, l2=1e-3), Diagnosis("over-fitting", ""))
    assert (over.l2, over.early_stopping) == (pytest.approx(1e-2), True)
    forget = adjust(HP, Diagnosis("forgetting", ""))
    assert (forget.learning_rate, forget.epochs, forget.replay) == (5e-4, 8, 0.25)
    assert adjust(dataclasses.replace(HP, replay=0.9), Diagnosis("forgetting", "")).replay == 1.0


@given(
    cause=st.sampled_from(["under-fitting", "over-fitting", "forgetting"]),
    lr=st.floats(1e-6, 1.0),
    epochs=st.integers(1, 200),
    l2=st.floats(0.0, 1.0),
    replay=st.floats(0.0, 1.0),
)
def test_adjust_stays_in_range(cause, lr, epochs, l2, replay):
    hp = Hyperparameters(lr, epochs, 32, l2=l2, replay=replay)
    new = adjust(hp, Diagnosis(cause, ""), max_epochs=300)
    assert 0 < new.learning_rate <= lr
    assert 1 <= new.epochs <= 300
    assert 0 <= new.replay <= 1
    assert new.l2 >= 0
    assert new != hp or cause == "under-fitting"


OVERFIT = TrainingCurves((0.99,), (0.90,))


def _attempts(verdicts, curves=OVERFIT):
    """An attempt function whose n-th call returns gates with the n-th verdict."""
    seen: list[Hyperparameters] = []

    def attempt(hp: Hyperparameters) -> AttemptOutcome[int]:
        seen.append(hp)
        ok = verdicts[len(seen) - 1]
        return AttemptOutcome(len(seen), (_gate("s.g", ok),), curves, {"n": float(len(seen))})

    return attempt, seen


def test_run_stage_retries_with_adjusted_hyperparameters_until_pass():
    attempt, seen = _attempts([False, False, True])
    rec, artifact = run_stage("pretrain", HP, attempt, max_attempts=3, overfit_gap=0.05)
    assert rec.state is State.PASSED
    assert artifact == 3
    assert len(rec.attempts) == 3
    assert [s.value for s in rec.history] == [
        "planned",
        "running",
        "failed",
        "running",
        "failed",
        "running",
        "passed",
    ]
    # Over-fitting (train 0.99 vs val 0.90): L2 then early stopping.
    assert seen[1].l2 == 1e-4
    assert seen[1].early_stopping
    assert seen[2].l2 == pytest.approx(1e-3)
    first, second = rec.attempts[0], rec.attempts[1]
    assert first.reason == "initial attempt"
    assert first.diagnosis is not None
    assert first.diagnosis.cause == "over-fitting"
    assert second.reason.startswith("retry after over-fitting")
    assert "l2 0.0 -> 0.0001" in second.reason
    assert rec.attempts[2].diagnosis is None
    assert rec.to_dict()["attempts"][0]["figures"] == {"n": 1.0}


def test_run_stage_fails_after_max_attempts():
    attempt, seen = _attempts([False] * 5)
    rec, artifact = run_stage("finetune", HP, attempt, max_attempts=2, overfit_gap=0.05)
    assert rec.state is State.FAILED
    assert len(seen) == 2
    assert artifact == 2
    assert [g.name for g in rec.failed_gates] == ["s.g"]
    with pytest.raises(ValueError, match="max_attempts"):
        run_stage("x", HP, attempt, max_attempts=0, overfit_gap=0.05)


def test_run_release_stops_at_first_failing_step():
    ran: list[str] = []

    def step(name, ok, on_failure=State.FAILED):
        def run():
            ran.append(name)
            return (_gate(f"release.{name}", ok),)

        return ReleaseStep(name, run, on_failure)

    rec = run_release(
        [step("functional", True), step("performance", False), step("stability", True)]
    )
    assert rec.state is State.FAILED
    assert ran == ["functional", "performance"]
    assert rec.skipped == ("stability",)
    assert [g.name for g in rec.failed_gates] == ["release.performance"]

    ran.clear()
    rolled = run_release([step("functional", True), step("rollout", False, State.ROLLED_BACK)])
    assert rolled.state is State.ROLLED_BACK

    ok = run_release([step("functional", True), step("stability", True)])
    assert ok.state is State.PASSED
    assert transition(ok, State.RELEASED).state is State.RELEASED
    with pytest.raises(ValueError, match="at least one step"):
        run_release([])
