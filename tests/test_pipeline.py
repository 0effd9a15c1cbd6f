"""End to end: the reference release on a small plan, both scenarios, on one store.

The default scenario runs on a new store (the pre-trained model becomes the
baseline production, the fine-tuned candidate replaces it); the regression
scenario then runs on the same store, so "production unchanged" means the
good release of the first run stays in production.
"""

from __future__ import annotations

import json

import pytest

from release_spec.cli import main
from release_spec.registry import ModelStore

pytestmark = pytest.mark.slow

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
soak_predictions = 1000
"""

GATE_KEYS = {"name", "passed", "value", "threshold", "interval", "detail"}


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


def _check_schema(report):
    assert report["schema_version"] == 1
    assert report["outcome"] in {"released", "stopped", "rolled_back"}
    for stage in report["stages"]:
        assert {"name", "state", "history", "gates", "attempts", "skipped", "notes"} <= set(stage)
        for attempt in stage["attempts"]:
            assert {"number", "reason", "hyperparameters", "passed", "gates", "figures"} <= set(
                attempt
            )
        for gate in stage["gates"]:
            assert set(gate) == GATE_KEYS
            assert isinstance(gate["passed"], bool)
            assert isinstance(gate["value"], float | int)
            assert gate["interval"] is None or len(gate["interval"]) == 2
    prod = report["production"]
    assert len(prod["sha256"]) == 64
    assert set(report["data"]["hashes"]) >= {"target.test.x", "source.train.y"}


def test_default_scenario_releases_the_candidate(runs):
    _, (code, report), _ = runs
    assert code == 0
    _check_schema(report)
    assert report["outcome"] == "released"
    assert [s["name"] for s in report["stages"]] == ["pretrain", "finetune", "release"]
    assert [s["state"] for s in report["stages"]] == ["passed", "passed", "released"]
    gates = {g["name"]: g for s in report["stages"] for g in s["gates"]}
    assert {
        "pretrain.accuracy",
        "pretrain.macro_f1",
        "finetune.improvement",
        "finetune.no_forgetting",
        "release.noninferiority",
        "release.functional.probabilities_sum_to_one",
        "release.stability.latency_p99_ms",
    } <= set(gates)
    acc = gates["pretrain.accuracy"]
    assert acc["interval"][0] <= acc["value"] <= acc["interval"][1]
    prod = report["production"]
    assert prod["before"] is None
    assert prod["baseline_promoted"]
    assert prod["candidate_promoted"]
    assert prod["version"] == report["candidate"]["version"]
    released = report["released_model"]
    assert released["target_test_accuracy"] >= 0.9
    lo, hi = released["interval"]
    assert lo < released["target_test_accuracy"] < hi
    assert report["soak"]["predictions"] == 1000


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
