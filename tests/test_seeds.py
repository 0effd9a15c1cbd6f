"""The seed sweep (``nox -s seeds``): the committed docs/data/seeds.json and the claims it backs.

The fast tests read the committed file and check every documented claim on
it, recomputing what can be recomputed (the Wilson intervals, the tally)
rather than trusting the file's own summary. The slow test re-runs two seeds
in this process and checks that they reproduce the file's rows exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from release_spec.statistics import wilson_interval
from release_spec.workbench.report_schema import RunOutcome
from release_spec.workbench.sweep import (
    ACCURACY_CLAIM,
    EXPECTED,
    OVERRIDES,
    SweepRow,
    _results,
    check_claims,
    parse_seeds,
    plan_with,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS_JSON = ROOT / "docs" / "data" / "seeds.json"
sys.path.insert(0, str(ROOT / "docs" / "site_tools"))

import macros  # noqa: E402


@pytest.fixture(scope="module")
def committed():
    return json.loads(SEEDS_JSON.read_text(encoding="utf-8"))


def _rows(data, scenario):
    return [r for r in data["runs"] if r["scenario"] == scenario]


def test_committed_rows_read_back_as_sweep_rows_and_write_again_as_they_are(committed):
    rows = [SweepRow.from_json(r) for r in committed["runs"]]
    assert [r.to_json() for r in rows] == committed["runs"]
    assert json.dumps([r.to_json() for r in rows], indent=1) == json.dumps(
        committed["runs"], indent=1
    )


def test_the_sweep_writes_the_committed_layout(committed):
    # The committed rows through the writer give the committed file, key for key and in
    # order, but for the command line, the hand-written note and the sweep's own seconds.
    rows = [SweepRow.from_json(r) for r in committed["runs"]]
    written = _results(committed["seeds"], rows, OVERRIDES, t0=0.0).to_json()
    want = {k: v for k, v in committed.items() if k not in ("generated", "note")}
    written["seconds"] = want["seconds"]
    assert json.dumps(written, indent=1) == json.dumps(want, indent=1)


def test_committed_sweep_covers_seeds_0_to_19_and_every_scenario(committed):
    assert committed["seeds"] == list(range(20))
    for scenario in EXPECTED:
        assert [r["seed"] for r in _rows(committed, scenario)] == list(range(20))
    assert committed["plan"]["overrides"] == {k: dict(v) for k, v in OVERRIDES.items()}
    assert committed["generated"] == "python -m release_spec.workbench.sweep --seeds 0-19 --out DIR"


def test_committed_sweep_meets_every_claim(committed):
    rows = committed["runs"]
    assert check_claims([SweepRow.from_json(r) for r in rows]) == []
    assert committed["problems"] == []
    for scenario, want in EXPECTED.items():
        assert [r["outcome"] for r in _rows(committed, scenario)] == [want.value] * 20
        assert committed["summary"][scenario] == 20
    assert {r["exit_code"] for r in _rows(committed, "default")} == {0}
    assert {r["exit_code"] for r in rows if r["scenario"] != "default"} == {3}


def test_committed_default_runs_release_models_above_the_claim(committed):
    assert all(r["accuracy"] >= ACCURACY_CLAIM for r in _rows(committed, "default"))


def test_committed_accuracies_and_intervals_are_consistent(committed):
    accuracies = []
    for r in _rows(committed, "default"):
        if r["outcome"] != "released":
            assert r["accuracy"] is None
            continue
        assert r["candidate_promoted"]
        hits = round(r["accuracy"] * r["n"])
        assert hits / r["n"] == pytest.approx(r["accuracy"])
        assert r["interval"] == pytest.approx(list(wilson_interval(hits, r["n"])))
        assert r["exposure"]["step"] == 4  # completed: the last step, 100 %
        accuracies.append(r["accuracy"])
    assert committed["min_default_accuracy"] == min(accuracies)


def test_committed_harmful_candidates_never_reach_production(committed):
    releases = {r["seed"]: r["production_after"] for r in _rows(committed, "default")}
    for r in _rows(committed, "regression"):
        # Run into the default run's --out: production before and after is its release.
        assert r["production_before"] == r["production_after"] == releases[r["seed"]]
        assert not r["candidate_promoted"]
        assert r["failed_gates"]
        assert r["exposure"] is None  # stopped before any live traffic
    for r in _rows(committed, "live-regression"):
        assert not r["candidate_promoted"]
        if r["outcome"] == "rolled_back":
            assert r["offline_gates_passed"]
            assert r["failed_gates"] == ["release.rollout"]
            assert r["exposure"]["step"] == 0
            assert 0 < r["exposure"]["canary_requests"] < 300  # before the step could promote


def test_check_claims_names_each_broken_claim():
    row = SweepRow(
        seed=3,
        scenario="live-regression",
        outcome=RunOutcome.HELD,
        exit_code=4,
        accuracy=None,
        interval=None,
        n=None,
        failed_gates=("release.rollout",),
        offline_gates_passed=False,
        production_before="v0001",
        production_after="v0001",
        candidate_promoted=False,
        exposure=None,
        seconds=60.0,
    )
    assert check_claims([row]) == [
        "seed 3 live-regression: outcome held, expected rolled_back",
        "seed 3 live-regression: exit code 4",
        "seed 3 live-regression: an offline gate failed",
    ]


def test_parse_seeds_and_plan_overrides():
    assert parse_seeds("0-2, 7") == [0, 1, 2, 7]
    with pytest.raises(ValueError, match="seeds: not a seed or a range: 'x'"):
        parse_seeds("x")
    assert plan_with(OVERRIDES).release.soak_seconds == 10.0
    with pytest.raises(ValueError, match=r"release\.soak_minutes: unknown key"):
        plan_with({"release": {"soak_minutes": 1}})


def test_page_renders_the_committed_table(committed):
    text = macros.seeds_table("seeds.json")
    for scenario, want in EXPECTED.items():
        n = committed["summary"][scenario]
        assert f"`{scenario}` ended `{want.value}` on **{n} of 20** seeds" in text
    assert f"**{committed['min_default_accuracy']:.3f}**" in text
    assert "`release.soak_seconds = 10.0`" in text
    assert text.count("\n| ") == 1 + 60  # the header row and one row per run
    assert ("Every run met the claim." in text) == (not committed["problems"])


def test_page_says_how_to_produce_a_missing_file(tmp_path):
    assert "nox -s seeds" in macros.seeds_table("seeds.json", tmp_path)
    page = (ROOT / "docs" / "release" / "reference-release.md").read_text(encoding="utf-8")
    assert page.count('{{ seeds_table("seeds.json") }}') == 1


@pytest.mark.slow
def test_rerun_reproduces_the_committed_rows(committed, tmp_path):
    # A fresh interpreter, as nox -s seeds runs it: TensorFlow's CPU kernels are chosen at its
    # import (run_pipeline turns oneDNN off first), and other tests may have imported it here.
    seeds = [5, 7]
    out = tmp_path / "fresh.json"
    command = [sys.executable, "-m", "release_spec.workbench.sweep", "--seeds", "5,7"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "runs"), "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fresh = json.loads(out.read_text(encoding="utf-8"))
    keys = (
        "seed",
        "scenario",
        "outcome",
        "exit_code",
        "accuracy",
        "interval",
        "failed_gates",
        "offline_gates_passed",
        "candidate_promoted",
        "exposure",
    )
    want = [r for r in committed["runs"] if r["seed"] in seeds]
    assert [{k: r[k] for k in keys} for r in fresh["runs"]] == [
        {k: r[k] for k in keys} for r in want
    ]
