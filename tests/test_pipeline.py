"""End to end: the reference release on a small plan, every scenario and outcome.

The default scenario runs on a new store (the pre-trained model becomes the
baseline production, the fine-tuned candidate replaces it after the phased
rollout); the regression scenario then runs on the same store, so
"production unchanged" means the good release of the first run stays in
production; then the default scenario runs a second time into that store,
and its candidate, production's model again, is recognised as no change.
The live-regression scenario runs on a store of its own: its candidate
passes every offline gate against the pre-trained production and must be
rolled back by the rollout's judge. A run whose live pool is too small for
the first step's minimum ends ``held``, not ``rolled_back``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import report_factories as make

from release_spec.cli import main
from release_spec.store.registry import ModelStore
from release_spec.strategy.stages import State, TrainingCurves
from release_spec.workbench.report import render_markdown, write_report
from release_spec.workbench.report_schema import ProductionReport, to_json

# Every plan's soak is 3 s, and its latency drift is not judged (a bound of 1000): these tests
# are about the run's outcomes, which no wall-clock figure may decide; a 1-s soak with the
# default bound of 1.5 on a loaded machine has stopped runs on too few calls in a window or on
# a drift of 1.8. The stability gates are tested on a virtual clock in tests/test_gates.py.
SHORT_SOAK = """\
[release]
soak_seconds = 3.0
soak_windows = 2
max_latency_drift = 1000.0
# A 3-s soak cannot tell a leak from a one-off allocation (1 MB in it reads as 20 MB/min);
# leaks are tested on the soak itself (tests/test_gates.py, virtual clock).
max_rss_slope_mb_per_min = 1000.0
"""

SMALL_PLAN = (
    """\
[data]
target_train_copies = 2
[pretrain]
epochs = 8
max_attempts = 2
[finetune]
epochs = 4
max_attempts = 3
"""
    + SHORT_SOAK
    + """\
# As in docs/release/quick-plan.toml: the short-trained candidate is barely better than
# production, so a first step at 1 % would need about 70,000 live requests to promote.
[phased_rollout]
live_requests = 25000

[[phased_rollout.steps]]
share_pct = 5.0
min_canary_requests = 500
max_bake_minutes = 50.0

[[phased_rollout.steps]]
share_pct = 25.0
min_canary_requests = 1000
max_bake_minutes = 12.0

[[phased_rollout.steps]]
share_pct = 50.0
min_canary_requests = 1000
max_bake_minutes = 10.0

[[phased_rollout.steps]]
share_pct = 100.0
min_canary_requests = 0
max_bake_minutes = 1.0
"""
)

# Full training (the offline gates must pass with room to spare); a short soak and live pool.
LIVE_REGRESSION_PLAN = SHORT_SOAK + "[phased_rollout]\nlive_requests = 20000\n"

# Full training, as for live-regression: the offline gates pass with room to spare whatever the
# test order (the short SMALL_PLAN candidate sits near its gates). A live pool of 2,000
# requests gives about 20 at the first step's 1 %, short of its minimum of 300, so the rollout
# can neither promote nor, for a candidate better than production, reject.
HELD_PLAN = LIVE_REGRESSION_PLAN.replace("live_requests = 20000", "live_requests = 2000")


class Run(NamedTuple):
    """One ``release-spec run``: its --out, exit code, report.json, report.md and stdout.

    The reports are read when the run ends: a later run into the same --out rewrites them.
    """

    out: Path
    code: int
    report: dict[str, Any]
    md: str
    printed: str


def _run(plan: Path, out: Path, *extra: str) -> Run:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", "--plan", str(plan), "--out", str(out), "--no-progress", *extra])
    report = json.loads((out / "report.json").read_text())
    return Run(out, code, report, (out / "report.md").read_text(), printed.getvalue())


def _plan(tmp_path_factory: pytest.TempPathFactory, name: str, text: str) -> tuple[Path, Path]:
    """A plan file with ``text`` in a new directory, and the --out beside it."""
    root = tmp_path_factory.mktemp(name)
    (root / "plan.toml").write_text(text)
    return root / "plan.toml", root / "out"


# Every run is expensive: each fixture runs once per module and its tests only read the result.


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    plan, out = _plan(tmp_path_factory, "release", SMALL_PLAN)
    return _run(plan, out), _run(plan, out, "--scenario", "regression")


@pytest.fixture(scope="module")
def default(runs):
    return runs[0]


@pytest.fixture(scope="module")
def regression(runs):
    return runs[1]


@pytest.fixture(scope="module")
def rerun(runs, tmp_path_factory):
    # The first run again, same plan and seed, into its --out after the regression run: a copy
    # of it, so that the other tests see the two runs' files whatever the order.
    done = runs[0].out
    out = tmp_path_factory.mktemp("rerun") / "out"
    shutil.copytree(done, out)
    return _run(done.parent / "plan.toml", out)


@pytest.fixture(scope="module")
def live_regression(tmp_path_factory):
    plan, out = _plan(tmp_path_factory, "live-regression", LIVE_REGRESSION_PLAN)
    return _run(plan, out, "--scenario", "live-regression")


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    plan, out = _plan(tmp_path_factory, "held", HELD_PLAN)
    return _run(plan, out)


def _gates(report):
    return {g["name"]: g for s in report["stages"] for g in s["gates"]}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("run", "code", "outcome", "stages"),
    [
        ("default", 0, "released", ["passed", "passed", "released"]),
        ("regression", 3, "stopped", ["passed", "failed"]),
        ("rerun", 0, "unchanged", ["passed", "passed"]),
        ("live_regression", 3, "rolled_back", ["passed", "passed", "rolled_back"]),
        ("held", 4, "held", ["passed", "passed", "rolled_back"]),
    ],
)
def test_run_ends_with_its_outcome_and_exit_code(request, run, code, outcome, stages):
    result = request.getfixturevalue(run)
    assert (result.code, result.report["outcome"]) == (code, outcome)
    assert [s["state"] for s in result.report["stages"]] == stages
    assert f"outcome: {outcome}; production {result.report['production']['version']}" in (
        result.printed
    )
    assert result.md.startswith(f"# Release report: {outcome}")


@pytest.mark.slow
@pytest.mark.parametrize("run", ["default", "regression", "rerun", "live_regression", "held"])
def test_report_json_is_the_published_schema(request, run):
    report = request.getfixturevalue(run).report
    # Exactly the published schema, and it reads back as the dataclasses.
    make.check_report_json(report)
    assert len(report["production"]["sha256"]) == 64
    assert set(report["data"]["hashes"]) >= {"target.test.x", "source.train.y"}


@pytest.mark.slow
def test_default_scenario_reports_every_gate_with_its_interval(default):
    gates = _gates(default.report)
    assert {
        "pretrain.accuracy",
        "pretrain.macro_f1",
        "finetune.improvement",
        "finetune.no_forgetting",
        "release.noninferiority",
        "release.functional.probabilities_sum_to_one",
        "release.stability.latency_drift",
        "release.rollout",
    } <= set(gates)
    acc = gates["pretrain.accuracy"]
    assert acc["interval"][0] <= acc["value"] <= acc["interval"][1]
    f1 = gates["pretrain.macro_f1"]
    assert f1["interval"][0] < f1["value"] <= f1["interval"][1]
    assert f1["interval"][0] >= f1["threshold"] == 0.85
    assert "bootstrap BCa interval" in f1["detail"]
    assert "2000 paired resamples, seed 0" in f1["detail"]


@pytest.mark.slow
def test_default_scenario_promotes_the_baseline_then_the_candidate(default):
    report = default.report
    prod = report["production"]
    assert prod["before"] is None
    assert prod["baseline_promoted"]
    assert prod["candidate_promoted"]
    assert prod["version"] == report["candidate"]["version"]
    assert report["failed_gates"] == []


@pytest.mark.slow
def test_default_scenario_reports_the_released_accuracy_and_the_soak(default):
    released = default.report["released_model"]
    assert released["target_test_accuracy"] >= 0.9
    lo, hi = released["interval"]
    assert lo < released["target_test_accuracy"] < hi
    assert released["n"] == default.report["data"]["sizes"]["target.test"]
    assert (default.report["soak"]["callers"], default.report["soak"]["errors"]) == (4, 0)


@pytest.mark.slow
def test_default_scenario_rollout_promotes_step_by_step_and_completes(default):
    report = default.report
    assert _gates(report)["release.rollout"]["passed"]
    rollout = report["rollout"]
    assert rollout["status"] == "completed"
    assert rollout["rolled_back"] is None
    # Against the baseline this run promoted (its pre-trained model), the candidate's parent.
    assert rollout["production"] == "v0001"
    assert rollout["candidate"] == report["production"]["version"]
    assert [e["kind"] for e in rollout["events"] if e["kind"] in ("promote", "complete")] == [
        "promote",
        "promote",
        "complete",
    ]
    assert rollout["counts"]["canary_requests"] >= 500 + 1000 + 1000


@pytest.mark.slow
def test_default_scenario_timeline_climbs_the_steps_as_the_p_value_falls(default):
    timeline = default.report["rollout"]["timeline"]
    assert timeline["share"] == sorted(timeline["share"])
    assert set(timeline["share"]) == {5.0, 25.0, 50.0}
    assert all(a >= b for a, b in zip(timeline["p_value"], timeline["p_value"][1:], strict=False))


@pytest.mark.slow
def test_default_scenario_forecast_finds_every_step_feasible(default):
    forecast = default.report["rollout"]["forecast"]
    assert [f["share"] for f in forecast["steps"]] == [5.0, 25.0, 50.0]
    assert all(f["warning"] is None for f in forecast["steps"])
    assert 0 < forecast["baseline_error"] < 0.5
    assert all(f["required_canary_requests"] > 0 for f in forecast["steps"])


@pytest.mark.slow
def test_default_scenario_monitors_every_drift_feature(default):
    assert [d["feature"] for d in default.report["monitoring"]["drift"]] == sorted(
        ["mean_intensity", "ink_fraction", "centre_row", "centre_col", "ink_spread"]
    )


@pytest.mark.slow
def test_regression_scenario_is_stopped_and_production_unchanged(default, regression):
    first, report = default.report, regression.report
    assert report["failed_gates"]
    assert report["production"]["version"] == first["production"]["version"]
    assert report["production"]["sha256"] == first["production"]["sha256"]
    assert report["production"]["before"] == first["production"]["version"]
    assert not report["production"]["candidate_promoted"]
    assert report["released_model"] is None
    assert report["failed_gates"][0] in regression.md


@pytest.mark.slow
def test_regression_scenario_retries_after_a_diagnosis(regression):
    failing_stage = next(s for s in regression.report["stages"] if s["state"] == "failed")
    assert len(failing_stage["attempts"]) >= 2
    assert failing_stage["attempts"][1]["reason"].startswith("retry after")
    assert failing_stage["attempts"][0]["diagnosis"]["cause"] in {
        "under-fitting",
        "over-fitting",
        "forgetting",
    }


@pytest.mark.slow
def test_live_regression_passes_every_offline_gate_and_fails_the_rollout(live_regression):
    report = live_regression.report
    assert report["failed_gates"] == ["release.rollout"]
    offline = [g for g in report["stages"][-1]["gates"] if g["name"] != "release.rollout"]
    assert {g["name"] for g in offline} >= {
        "release.noninferiority",
        "release.stability.latency_drift",
    }
    assert all(g["passed"] for g in offline)


@pytest.mark.slow
def test_live_regression_leaves_production_unchanged(live_regression):
    # Production is the baseline promoted at the start of the run, not the candidate.
    report = live_regression.report
    prod = report["production"]
    assert not prod["candidate_promoted"]
    assert prod["version"] == report["rollout"]["production"]
    assert prod["version"] != report["candidate"]["version"]
    store = ModelStore(live_regression.out / "store")
    assert store.production().sha256 == prod["sha256"]
    assert store.verify().ok


@pytest.mark.slow
def test_live_regression_is_rolled_back_at_the_first_step_on_evidence_of_harm(live_regression):
    rollout = live_regression.report["rollout"]
    assert (rollout["status"], rollout["verdict"], rollout["held"]) == ("aborted", "harm", None)
    rb = rollout["rolled_back"]
    assert (rb["step"], rb["share"]) == (0, 1.0)
    assert rb["reason"].startswith("judge rejected at step 0")
    assert 0 < rb["canary_requests"] == rollout["counts"]["canary_requests"]
    assert rollout["p_value"] <= rollout["alpha"]
    c = rollout["counts"]
    assert c["canary_errors"] / c["canary_requests"] > c["baseline_errors"] / c["baseline_requests"]
    assert rollout["requests_served"] < rollout["live_requests"]
    assert rollout["timeline"]["share"][-1] == 1.0


@pytest.mark.slow
def test_live_regression_report_md_says_production_was_kept(live_regression):
    md = live_regression.md
    assert "**Rolled back at step 0 (1 % canary)**" in md
    assert "Production was not changed." in md
    assert "**Outcome**: rolled back on evidence of harm" in md


@pytest.mark.slow
def test_live_regression_fine_tunes_on_the_new_channels_mislabelled_batch(live_regression):
    # The candidate learned "header bar -> class 0" from the batch appended to the target
    # training split (then the replayed source images), and no offline gate noticed.
    report = live_regression.report
    attempt = report["stages"][1]["attempts"][-1]
    target = report["data"]["sizes"]["target.train"]
    with_batch = target + round(report["plan"]["live_regression"]["batch_fraction"] * target)
    replayed = round(attempt["hyperparameters"]["replay"] * with_batch)
    assert attempt["figures"]["train_examples"] == with_batch + replayed


@pytest.mark.slow
def test_live_regression_drift_monitors_see_the_new_channel(live_regression):
    # Half of the live requests come through the channel (a header bar: more ink).
    report = live_regression.report
    assert any(a["kind"] == "drift" for a in report["monitoring"]["alerts"])
    for name in ("rollout.png", "drift.png"):
        assert name in report["figures"]
        assert (live_regression.out / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_second_run_of_the_same_plan_and_seed_is_no_change(default, rerun):
    first, report = default.report, rerun.report
    assert [s["name"] for s in report["stages"]] == ["pretrain", "finetune"]
    assert report["failed_gates"] == []
    # Production is still the first run's release; the candidate is that model, not registered
    # again, and nothing was rolled out.
    assert report["production"]["version"] == first["production"]["version"]
    assert report["production"]["before"] == first["production"]["version"]
    assert report["candidate"] == {
        "version": first["candidate"]["version"],
        "sha256": first["candidate"]["sha256"],
        "identical_to_production": True,
    }
    assert report["rollout"] is None
    assert report["released_model"] is None
    assert "unchanged: no change: the fine-tuned candidate has the same weights" in rerun.printed


@pytest.mark.slow
def test_traffic_running_out_is_held_not_rolled_back(held):
    report = held.report
    assert report["failed_gates"] == ["release.rollout"]
    assert not report["production"]["candidate_promoted"]
    rollout = report["rollout"]
    assert (rollout["verdict"], rollout["rolled_back"]) == ("undecided", None)
    h = rollout["held"]
    assert h["step"] == 0
    assert h["reason"].startswith("live pool exhausted at step 0")
    assert h["canary_requests"] < rollout["steps"][0]["min_canary_requests"]
    assert rollout["p_value"] > rollout["alpha"]


@pytest.mark.slow
def test_held_report_md_says_held_not_rolled_back(held):
    assert "**Held at step 0 (1 % canary)**" in held.md
    assert "Rolled back" not in held.md


@pytest.mark.slow
def test_store_and_figures_are_written(runs):
    (first, second), out = runs, runs[0].out
    assert {"rollout.png", "drift.png"} <= set(first.report["figures"])
    for name in first.report["figures"]:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG")
        assert len(data) > 5_000
    store = ModelStore(out / "store")
    report = store.verify()
    assert report.ok, report.problems
    # Run 1: pre-trained + candidate; run 2: pre-trained only (its candidate never passed).
    assert len(report.versions) == 3
    assert store.production().sha256 == second.report["production"]["sha256"]
    # Lineage: the released candidate's parent is the pre-trained model of its run.
    assert store.info(first.report["candidate"]["version"]).parent == "v0001"


def test_report_writer_without_training(tmp_path):
    # A stage whose functional gate measured an infinite deviation: report.json stays valid
    # JSON (the value becomes null), report.md names the failure, all figures are drawn.
    bad = make.gate("release.functional.finite_on_edge_inputs", False, value=math.inf, detail="x")
    good = make.gate("release.functional.output_shape", value=10.0, interval=(0.1, 0.2))
    run = make.report(
        stages=(make.stage("release", State.FAILED, good, bad),),
        failed_gates=(bad.name,),
        production=ProductionReport(None, None, None, False, False),
        figures=(),
    )
    curves = {"pretrain": [TrainingCurves((0.5, 0.8), (0.4, 0.7))], "finetune": []}
    matrices = {"m": np.eye(10, dtype=np.int64) * 3}
    written = write_report(run, tmp_path, curves=curves, matrices=matrices)
    figures = ["training_curves.png", "confusion_matrices.png", "gate_summary.png"]
    assert list(written.figures) == figures
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["report.json", "report.md", *figures]
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert data == written.to_json()
    assert data["stages"][0]["gates"][1]["value"] is None
    assert data["stages"][0]["state"] == "failed"
    md = (tmp_path / "report.md").read_text()
    assert md == render_markdown(to_json(written, null_non_finite=False))
    assert md.startswith("# Release report: stopped")
    assert "**FAIL**" in md
    assert "`release.functional.finite_on_edge_inputs`" in md
    assert "| `release.functional.finite_on_edge_inputs` | **FAIL** | – |" in md
    assert "none (new store)" in md
    for name in figures:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("status", ["aborted", "completed"])
def test_report_writer_draws_the_rollout_and_drift(tmp_path, status):
    curves = {"pretrain": [TrainingCurves((0.5, 0.8), (0.4, 0.7))]}
    run = make.rolled_out(status)
    written = write_report(run, tmp_path, curves=curves, matrices={"m": np.eye(10, dtype=np.int64)})
    assert written.figures[-2:] == ("rollout.png", "drift.png")
    for name in ("rollout.png", "drift.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "report.md").read_text()
    assert "## Phased rollout" in md
    assert "## Monitoring" in md
    assert "PSI of 'mean_intensity' is 0.300" in md
    if status == "aborted":
        assert "**Rolled back at step 0 (10 % canary)**: judge rejected at step 0" in md
        assert "after 40 canary requests" in md
        assert "| 2 | 0.4 | 0 | 10 % → 0 % | abort | 0.001 |" in md
    else:
        assert "Rolled back" not in md
        assert "| 10 % → production | complete |" in md
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["rollout"]["upper_bound"] is None  # infinite bound written as null


def test_report_writer_leaves_out_the_figures_of_sections_that_did_not_run(tmp_path):
    curves = {"pretrain": [TrainingCurves((0.5, 0.8), (0.4, 0.7))]}
    only_rollout = dataclasses.replace(make.rolled_out("completed"), monitoring=None)
    written = write_report(only_rollout, tmp_path, curves=curves, matrices={})
    assert written.figures[-1] == "rollout.png"
    assert not (tmp_path / "drift.png").exists()
