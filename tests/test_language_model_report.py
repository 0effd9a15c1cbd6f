"""The language-model run's report.json: dataclasses, JSON, the published schema, report.md.

A real quick-plan run's report.json is checked against the schema in
tests/test_language_model.py (slow tier, every scenario).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import pytest
import report_factories as make

from release_spec.strategy.gates import GateResult
from release_spec.strategy.stages import Attempt, Hyperparameters, StageRecord, State
from release_spec.strategy.suites import PromptCase, PromptSuite, make_checker, score_suite
from release_spec.workbench.language.report import (
    SCHEMA_TITLE,
    LanguageReport,
    RungReport,
    SeedRun,
    SeedSweep,
    SuiteScoreReport,
    render_language_report,
    seeds_table,
)
from release_spec.workbench.report_schema import RunOutcome, StageReport, json_schema, to_json

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "docs" / "release" / "language-report-schema.json"
REGENERATE = (
    "python -m release_spec.workbench.language.report > docs/release/language-report-schema.json"
)
SEEDS_JSON = ROOT / "docs" / "data" / "language-model-seeds.json"

FACTORIES = {
    "released": make.language_report(),
    "stopped at pre-training": make.language_report(
        outcome=RunOutcome.STOPPED,
        production=None,
        ladder=(
            make.language_rung(
                pretrained=None,
                candidate=None,
                production=None,
                samples=None,
                suites=None,
                rollout=None,
            ),
        ),
    ),
    "rolled back": make.language_report(
        outcome=RunOutcome.ROLLED_BACK,
        failed_gates=("release.audience_rollout",),
        ladder=(make.language_rung(rollout=make.audience_rollout("harm")),),
    ),
}


def test_published_schema_is_the_dataclasses_schema() -> None:
    published = json.loads(PUBLISHED.read_text("utf-8"))
    assert published == json_schema(LanguageReport, title=SCHEMA_TITLE), (
        f"stale: regenerate with {REGENERATE}"
    )
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_reports_validate_and_read_back(name: str) -> None:
    data = json.loads(json.dumps(FACTORIES[name].to_json(), allow_nan=False))
    back = make.check_language_report_json(data)
    if name != "rolled back":  # its infinite upper bound reads back as NaN
        assert back == FACTORIES[name]


def test_an_infinite_upper_bound_is_written_as_null() -> None:
    data = FACTORIES["rolled back"].to_json()
    assert data["ladder"][0]["rollout"]["upper_bound"] is None
    back = LanguageReport.from_json(data)
    rollout = back.ladder[0].rollout
    assert rollout is not None
    assert math.isnan(rollout.upper_bound)


def test_a_step_not_reached_is_written_as_null() -> None:
    data = FACTORIES["stopped at pre-training"].to_json()
    rung = data["ladder"][0]
    assert list(rung) == [f.name for f in dataclasses.fields(RungReport)]
    assert [k for k, v in rung.items() if v is None] == [
        "pretrained",
        "candidate",
        "production",
        "samples",
        "suites",
        "rollout",
    ]
    assert data["production"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(example="classic"), r"report.example: expected one of"),
        (
            lambda d: d["ladder"][0].pop("rollout"),
            r"report.ladder\[0\]: missing keys \['rollout'\]",
        ),
        (
            lambda d: d["ladder"][0]["rollout"]["counts"].update(canary_errors=1.5),
            r"report.ladder\[0\].rollout.counts.canary_errors: expected an integer",
        ),
        (
            lambda d: d["ladder"][0]["suites"]["add"].update(kind="style"),
            r"report.ladder\[0\].suites.add.kind: expected one of",
        ),
        (lambda d: d["plan"].update(seed=-1), r"^seed: expected an integer in \[0, 4294967295\]"),
    ],
)
def test_from_json_and_the_schema_refuse_a_bad_report(change, message) -> None:
    data = make.language_report().to_json()
    change(data)
    with pytest.raises(ValueError, match=message):
        LanguageReport.from_json(data)
    if "seed" not in message:  # a range is the plan's own check, not the schema's
        assert not make.LANGUAGE_VALIDATOR.is_valid(data)


def test_suite_scores_are_written_as_the_suite_score_writes_itself() -> None:
    # The report's section and SuiteScore.to_dict (what report.json held before) agree.
    check = make_checker({"exact": "5"})
    cases = tuple(PromptCase(f"add-{i}", "what is 2+3?", check) for i in range(3))
    suite = PromptSuite("add", "1", "capability", cases)
    answers = {"add-0": ["5", "5"], "add-1": ["5", "6"], "add-2": ["5", "5"]}
    score = score_suite(suite, answers, seeds=[7, 8], temperatures=[0.5, 0.5])
    report = SuiteScoreReport.of(score)
    assert report.failed_cases == ("add-1",)
    assert report.passes == {"add-0": (True, True), "add-1": (True, False), "add-2": (True, True)}
    assert to_json(report) == json.loads(json.dumps(score.to_dict()))


def test_stages_are_written_as_the_stage_record_writes_itself() -> None:
    gate = GateResult("finetune.no_forgetting", False, math.inf, 3.0, (2.5, math.inf), "rule", "v")
    attempt = Attempt(1, "first", Hyperparameters(1e-3, 6, 128), (gate,), {"x": 1.0}, None, 0.12345)
    record = StageRecord("finetune.small", State.FAILED, (State.PLANNED, State.FAILED), (attempt,))
    want = json.loads(json.dumps(record.to_dict()).replace("Infinity", "null"))
    assert to_json(StageReport.of(record)) == want


def test_report_md_shows_every_gate_rung_rollout_and_sample() -> None:
    bad = make.gate("pretrain.perplexity", passed=False, value=math.inf, interval=(2.0, math.inf))
    report = make.language_report(
        stages=(
            make.stage("pretrain.small", State.FAILED, bad),
            make.stage("release.small", State.PASSED),
        ),
    )
    lines = render_language_report(report).splitlines()
    assert lines[0] == "# Language-model release report: released"
    assert lines[2] == "**Outcome**: every rung of the ladder released."
    assert lines[4] == "Scenario `default`, seed 0, started 2026-01-01T00:00:00+00:00, 90.5 s."
    assert lines[6] == (
        "Production after the run: `v0002` (sha256 `000000000000…`); pre-training test "
        "perplexity 3.100 [2.900, 3.300] over 300 sentences."
    )
    # A non-finite value is left blank; a stage without gates still gets its row.
    assert "| pretrain.small | failed | pretrain.perplexity | False |  | [2.000, inf] |" in lines
    assert "| release.small | passed |  |  |  |  |" in lines
    assert (
        "Audience rollout: completed (completed), reached everyone; canary 3/200 bad answers, "
        "production 4/200." in lines
    )
    assert "| prompt | candidate v0002 | production v0001 |" in lines
    assert "| `reverse abc` | `cba` | `abc` |" in lines


def test_committed_seed_sweep_reads_back_byte_for_byte() -> None:
    text = SEEDS_JSON.read_text(encoding="utf-8")
    sweep = SeedSweep.from_json(json.loads(text))
    assert sweep.runs  # how many: test_language_model.SWEPT
    assert json.dumps(sweep.to_json(), indent=1) + "\n" == text


def test_seeds_table_marks_the_runs_that_miss_their_claim() -> None:
    runs = (
        SeedRun(0, "default", RunOutcome.RELEASED, 0, (), 50.0, 2.0),
        SeedRun(0, "forgetting", RunOutcome.RELEASED, 0, (), 70.4, 3.25),
        SeedRun(1, "live-prompt-regression", RunOutcome.HELD, 4, (), 40.0, 1.0),
    )
    lines = seeds_table(SeedSweep("quick", "x86_64, 2 CPUs", runs)).splitlines()
    assert lines[2] == "| 0 | **released** | released ✗ | not run | not run | 70 s (load 3.2) |"
    assert lines[3] == "| 1 | not run | not run | not run | held ✗ | 40 s (load 1.0) |"
    assert lines[5].startswith("Plan `quick`; 1 of 3 runs ended as the scenario expects")
