"""A run's outcome: released, unchanged, stopped, held or rolled back, and its exit code.

``held`` (the rollout ended without evidence either way) and ``rolled_back``
(evidence of harm) used to be one outcome; these tests pin the difference on
real rollout controllers, without training a model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import report_factories as make

from release_spec.cli import EXIT_HELD, EXIT_OK, EXIT_STOPPED, RUN_EXIT_CODES
from release_spec.strategy.rollout import (
    LiveRequest,
    RolloutController,
    RolloutPlan,
    RolloutStep,
    replay,
)
from release_spec.workbench.pipeline import rollout_verdict, same_weights
from release_spec.workbench.report import OUTCOMES, outcome_summary, render_markdown
from release_spec.workbench.report_schema import RunOutcome

PLAN = RolloutPlan(
    steps=(RolloutStep(10.0, 200, 10.0), RolloutStep(100.0, 0, 1.0)),
    alpha=0.05,
    margin=0.03,
    requests_per_minute=1000.0,
)


def _requests(n, canary_every=0, canary_ms=1.0):
    # canary_every = k: every k-th request is a canary error; baseline errs on every 50th.
    return [
        LiveRequest(
            f"r{i}",
            canary_error=bool(canary_every) and i % canary_every == 0,
            baseline_error=i % 50 == 0,
            canary_latency_ms=canary_ms,
        )
        for i in range(n)
    ]


def _run(requests, plan=PLAN, exhausted=True):
    ctl = RolloutController(plan, production="v1")
    ctl.start("v2")
    state = replay(ctl, requests, batch_size=100)
    if exhausted and state.status not in ("aborted", "completed"):
        state = ctl.abort("live pool exhausted")
    return state


def test_rollout_verdict_harm_when_the_judge_rejects():
    state = _run(_requests(20_000, canary_every=3))
    assert state.status == "aborted"
    assert state.events[-1].reason.startswith("judge rejected")
    assert rollout_verdict(state, PLAN.alpha) == "harm"


def test_rollout_verdict_harm_when_the_canary_is_slow():
    state = _run(_requests(20_000, canary_ms=500.0))
    assert state.events[-1].reason.startswith("judge rejected")
    assert "slow-request rate" in state.events[-1].reason
    assert rollout_verdict(state, PLAN.alpha) == "harm"


def test_rollout_verdict_undecided_when_the_traffic_runs_out():
    # 1,000 requests at 10 % give about 100 canary requests, short of the step's 200.
    state = _run(_requests(1_000))
    assert state.status == "aborted"
    assert state.events[-1].reason == "live pool exhausted"
    assert state.counts.canary_requests < 200
    assert rollout_verdict(state, PLAN.alpha) == "undecided"


def test_rollout_verdict_undecided_when_an_inconclusive_bake_rolls_back():
    # A half-minute bake brings about 50 canary requests, short of the step's 200.
    steps = (RolloutStep(10.0, 200, 0.5), RolloutStep(100.0, 0, 1.0))
    plan = replace(PLAN, steps=steps, on_inconclusive="rollback")
    state = _run(_requests(20_000), plan=plan, exhausted=False)
    assert state.events[-1].reason.startswith("inconclusive")
    assert rollout_verdict(state, plan.alpha) == "undecided"


def test_rollout_verdict_completed():
    state = _run(_requests(200_000), exhausted=False)
    assert state.status == "completed"
    assert rollout_verdict(state, PLAN.alpha) == "completed"


def test_exit_codes_tell_a_bad_candidate_from_missing_evidence():
    assert set(RUN_EXIT_CODES) == set(OUTCOMES) == {o.value for o in RunOutcome}
    assert RUN_EXIT_CODES["released"] == RUN_EXIT_CODES["unchanged"] == EXIT_OK == 0
    assert RUN_EXIT_CODES["stopped"] == RUN_EXIT_CODES["rolled_back"] == EXIT_STOPPED == 3
    assert RUN_EXIT_CODES["held"] == EXIT_HELD == 4


class _Model:
    def __init__(self, *weights):
        self.weights = [np.asarray(w, np.float32) for w in weights]

    def get_weights(self):
        return self.weights


def test_same_weights_is_exact():
    a = _Model(np.ones((3, 2)), np.zeros(2))
    assert same_weights(a, _Model(np.ones((3, 2)), np.zeros(2)))
    nudged = np.ones((3, 2))
    nudged[2, 1] = np.nextafter(np.float32(1), np.float32(2))
    assert not same_weights(a, _Model(nudged, np.zeros(2)))
    assert not same_weights(a, _Model(np.ones((2, 3)), np.zeros(2)))
    assert not same_weights(a, _Model(np.ones((3, 2))))


@pytest.mark.parametrize("outcome", list(RunOutcome))
def test_report_states_the_outcome(outcome):
    md = render_markdown(make.report(outcome=outcome).to_json())
    assert md.startswith(
        f"# Release report: {outcome.value}\n\n**Outcome**: {OUTCOMES[outcome.value]}."
    )


def test_outcome_summary_names_the_step_and_exposure_of_a_hold():
    end = make.rollout_end(step=1, share=5.0, reason="live pool exhausted", canary_requests=420)
    held = make.rollout("aborted", verdict="undecided", rolled_back=None, held=end)
    text = outcome_summary(make.report(outcome=RunOutcome.HELD, rollout=held).to_json())
    assert text.startswith("the rollout ended before the candidate was shown non-inferior")
    assert text.endswith("at step 1 (5 % canary) after 420 canary requests")
    assert "harm" not in outcome_summary(make.report(outcome=RunOutcome.UNCHANGED).to_json())
