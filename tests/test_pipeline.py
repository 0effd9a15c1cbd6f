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

import numpy as np
import pytest
import report_factories as make

from release_spec.cli import main
from release_spec.store.registry import ModelStore
from release_spec.strategy.stages import State, TrainingCurves
from release_spec.workbench.report import render_markdown, write_report
from release_spec.workbench.report_schema import ProductionReport, to_json

SMALL_PLAN = """\
[data]
target_train_copies = 2
[pretrain]
epochs = 8
max_attempts = 2
[finetune]
epochs = 4
max_attempts = 3
[release]
soak_seconds = 1.0
soak_windows = 2
# A 1-s soak cannot tell a leak from a one-off allocation (1 MB in it reads as 60 MB/min);
# leaks are tested on the soak itself (tests/test_gates.py, virtual clock).
max_rss_slope_mb_per_min = 1000.0
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

# Full training (the offline gates must pass with room to spare); a short soak and live pool.
LIVE_REGRESSION_PLAN = """\
[release]
soak_seconds = 1.0
soak_windows = 2
# A 1-s soak cannot tell a leak from a one-off allocation (1 MB in it reads as 60 MB/min);
# leaks are tested on the soak itself (tests/test_gates.py, virtual clock).
max_rss_slope_mb_per_min = 1000.0
[phased_rollout]
live_requests = 20000
"""

# Full training, as for live-regression: the offline gates pass with room to spare whatever the
# test order (the short SMALL_PLAN candidate sits near its gates). A live pool of 2,000
# requests gives about 20 at the first step's 1 %, short of its minimum of 300, so the rollout
# can neither promote nor, for a candidate better than production, reject. Its soak is 3 s
# with a latency-drift bound of 3: the test is about the rollout, and a 1-s soak on a loaded
# machine has stopped it on too few calls in a window or on a drift of 1.8.
HELD_PLAN = LIVE_REGRESSION_PLAN.replace("live_requests = 20000", "live_requests = 2000").replace(
    "soak_seconds = 1.0", "soak_seconds = 3.0\nmax_latency_drift = 3.0"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    plan = root / "plan.toml"
    plan.write_text(SMALL_PLAN)
    out = root / "out"
    args = ["run", "--plan", str(plan), "--out", str(out), "--no-progress"]
    code_default = main(args)
    first = json.loads((out / "report.json").read_text())
    code_regression = main([*args, "--scenario", "regression"])
    second = json.loads((out / "report.json").read_text())
    return out, (code_default, first), (code_regression, second)


@pytest.fixture(scope="module")
def rerun(runs, tmp_path_factory):
    # The first run again, same plan and seed, into its --out after the regression run: a copy
    # of it, so that the other tests see the two runs' files whatever the order.
    done, (_, first), _ = runs
    plan = done.parent / "plan.toml"
    out = tmp_path_factory.mktemp("rerun") / "out"
    shutil.copytree(done, out)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", "--plan", str(plan), "--out", str(out), "--no-progress"])
    return code, json.loads((out / "report.json").read_text()), first, printed.getvalue()


def _check_schema(data):
    # report.json is exactly the published schema, and reads back as the dataclasses.
    make.check_report_json(data)
    assert len(data["production"]["sha256"]) == 64
    assert set(data["data"]["hashes"]) >= {"target.test.x", "source.train.y"}


def _gates(report):
    return {g["name"]: g for s in report["stages"] for g in s["gates"]}


@pytest.mark.slow
def test_default_scenario_releases_the_candidate(runs):
    _, (code, report), _ = runs
    assert code == 0
    _check_schema(report)
    assert report["outcome"] == "released"
    assert [s["name"] for s in report["stages"]] == ["pretrain", "finetune", "release"]
    assert [s["state"] for s in report["stages"]] == ["passed", "passed", "released"]


@pytest.mark.slow
def test_default_scenario_reports_every_gate_with_its_interval(runs):
    _, (_, report), _ = runs
    gates = _gates(report)
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
def test_default_scenario_promotes_the_baseline_then_the_candidate(runs):
    _, (_, report), _ = runs
    prod = report["production"]
    assert prod["before"] is None
    assert prod["baseline_promoted"]
    assert prod["candidate_promoted"]
    assert prod["version"] == report["candidate"]["version"]
    released = report["released_model"]
    assert released["target_test_accuracy"] >= 0.9
    lo, hi = released["interval"]
    assert lo < released["target_test_accuracy"] < hi
    assert (report["soak"]["callers"], report["soak"]["errors"]) == (4, 0)


@pytest.mark.slow
def test_default_scenario_rollout_promotes_step_by_step_and_completes(runs):
    _, (_, report), _ = runs
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
    timeline = rollout["timeline"]
    assert timeline["share"] == sorted(timeline["share"])
    assert set(timeline["share"]) == {5.0, 25.0, 50.0}
    assert all(a >= b for a, b in zip(timeline["p_value"], timeline["p_value"][1:], strict=False))
    assert rollout["counts"]["canary_requests"] >= 500 + 1000 + 1000
    assert {"rollout.png", "drift.png"} <= set(report["figures"])


@pytest.mark.slow
def test_default_scenario_forecast_finds_every_step_feasible(runs):
    _, (_, report), _ = runs
    forecast = report["rollout"]["forecast"]
    assert [f["share"] for f in forecast["steps"]] == [5.0, 25.0, 50.0]
    assert all(f["warning"] is None for f in forecast["steps"])
    assert 0 < forecast["baseline_error"] < 0.5
    assert all(f["required_canary_requests"] > 0 for f in forecast["steps"])


@pytest.mark.slow
def test_default_scenario_monitors_every_drift_feature(runs):
    _, (_, report), _ = runs
    assert [d["feature"] for d in report["monitoring"]["drift"]] == sorted(
        ["mean_intensity", "ink_fraction", "centre_row", "centre_col", "ink_spread"]
    )


@pytest.mark.slow
def test_regression_scenario_is_stopped_and_production_unchanged(runs):
    out, (_, first), (code, report) = runs
    assert code == 3
    _check_schema(report)
    assert report["outcome"] == "stopped"
    assert report["failed_gates"]
    assert report["production"]["version"] == first["production"]["version"]
    assert report["production"]["sha256"] == first["production"]["sha256"]
    assert report["production"]["before"] == first["production"]["version"]
    assert not report["production"]["candidate_promoted"]
    assert report["released_model"] is None
    failing_stage = next(s for s in report["stages"] if s["state"] == "failed")
    assert len(failing_stage["attempts"]) >= 2
    retry = failing_stage["attempts"][1]
    assert retry["reason"].startswith("retry after")
    assert failing_stage["attempts"][0]["diagnosis"]["cause"] in {
        "under-fitting",
        "over-fitting",
        "forgetting",
    }
    md = (out / "report.md").read_text()
    assert "# Release report: stopped" in md
    assert report["failed_gates"][0] in md


@pytest.fixture(scope="module")
def live_regression(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-regression")
    plan = root / "plan.toml"
    plan.write_text(LIVE_REGRESSION_PLAN)
    out = root / "out"
    args = ["run", "--plan", str(plan), "--out", str(out), "--no-progress"]
    code = main([*args, "--scenario", "live-regression"])
    return out, code, json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_live_regression_passes_offline_gates_and_is_rolled_back(live_regression):
    out, code, report = live_regression
    assert code == 3
    _check_schema(report)
    assert report["outcome"] == "rolled_back"
    assert report["failed_gates"] == ["release.rollout"]
    release = report["stages"][-1]
    assert release["state"] == "rolled_back"
    offline = [g for g in release["gates"] if g["name"] != "release.rollout"]
    assert offline
    assert all(g["passed"] for g in offline)
    assert all(s["state"] == "passed" for s in report["stages"][:-1])
    # Production unchanged: the baseline promoted at the start of the run, not the candidate.
    prod = report["production"]
    assert not prod["candidate_promoted"]
    assert prod["version"] == report["rollout"]["production"]
    assert prod["version"] != report["candidate"]["version"]
    store = ModelStore(out / "store")
    assert store.production().sha256 == prod["sha256"]
    assert store.verify().ok
    # The step and the evidence, in the report.
    rollout = report["rollout"]
    assert rollout["status"] == "aborted"
    assert rollout["verdict"] == "harm"
    assert rollout["held"] is None
    rb = rollout["rolled_back"]
    assert rb["step"] == 0
    assert rb["share"] == 1.0
    assert rb["reason"].startswith("judge rejected at step 0")
    assert 0 < rb["canary_requests"] == rollout["counts"]["canary_requests"]
    assert rollout["p_value"] <= rollout["alpha"]
    c = rollout["counts"]
    assert c["canary_errors"] / c["canary_requests"] > c["baseline_errors"] / c["baseline_requests"]
    assert rollout["requests_served"] < rollout["live_requests"]
    assert rollout["timeline"]["share"][-1] == 1.0
    md = (out / "report.md").read_text()
    assert "# Release report: rolled_back" in md
    assert "**Rolled back at step 0 (1 % canary)**" in md
    assert "Production was not changed." in md
    assert "**Outcome**: rolled back on evidence of harm" in md
    # The candidate learned "header bar -> class 0" from the new channel's mislabelled batch:
    # it took the two test images from the channel as class 0, and no gate noticed.
    fine_tune = report["stages"][1]
    assert fine_tune["attempts"][-1]["figures"]["train_examples"] > 0
    # 30 % of the live requests come through the channel (a header bar: more ink), and the
    # drift monitors saw it.
    assert any(a["kind"] == "drift" for a in report["monitoring"]["alerts"])
    for name in ("rollout.png", "drift.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_second_run_of_the_same_plan_and_seed_is_no_change(rerun):
    code, report, first, printed = rerun
    assert code == 0
    _check_schema(report)
    assert report["outcome"] == "unchanged"
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
    assert f"outcome: unchanged; production {first['production']['version']}" in printed
    assert "unchanged: no change: the fine-tuned candidate has the same weights" in printed


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    root = tmp_path_factory.mktemp("held")
    plan = root / "plan.toml"
    plan.write_text(HELD_PLAN)
    out = root / "out"
    code = main(["run", "--plan", str(plan), "--out", str(out), "--no-progress"])
    return out, code, json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_traffic_running_out_is_held_not_rolled_back(held):
    out, code, report = held
    assert code == 4
    _check_schema(report)
    assert report["outcome"] == "held"
    assert report["failed_gates"] == ["release.rollout"]
    rollout = report["rollout"]
    assert rollout["verdict"] == "undecided"
    assert rollout["rolled_back"] is None
    h = rollout["held"]
    assert h["step"] == 0
    assert h["reason"].startswith("live pool exhausted at step 0")
    assert h["canary_requests"] < rollout["steps"][0]["min_canary_requests"]
    assert rollout["p_value"] > rollout["alpha"]
    assert not report["production"]["candidate_promoted"]
    md = (out / "report.md").read_text()
    assert "# Release report: held" in md
    assert "**Held at step 0 (1 % canary)**" in md
    assert "Rolled back" not in md


@pytest.mark.slow
def test_store_and_figures_are_written(runs):
    out, (_, first), (_, second) = runs
    for name in first["figures"]:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG")
        assert len(data) > 5_000
    store = ModelStore(out / "store")
    report = store.verify()
    assert report.ok, report.problems
    # Run 1: pre-trained + candidate; run 2: pre-trained only (its candidate never passed).
    assert len(report.versions) == 3
    assert store.production().sha256 == second["production"]["sha256"]
    # Lineage: the released candidate's parent is the pre-trained model of its run.
    assert store.info(first["candidate"]["version"]).parent == "v0001"


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
