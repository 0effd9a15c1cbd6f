"""The report.json schema: the dataclasses, their JSON and the JSON Schema published on the site.

The reference run's own report.json is validated in tests/test_pipeline.py
(every scenario) and tests/test_reference_run.py (the site's run, made as the build makes it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import pytest
import report_factories as make

from release_spec.strategy.stages import State
from release_spec.workbench.report_schema import (
    Report,
    RunOutcome,
    json_schema,
    to_json,
)

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "docs" / "release" / "report-schema.json"
REGENERATE = "python -m release_spec.workbench.report_schema > docs/release/report-schema.json"
VALIDATOR = make.VALIDATOR

FACTORIES = {
    "stopped at once": make.report(),
    "stopped by a gate": make.report(
        stages=(
            make.stage("pretrain", State.FAILED, make.gate(passed=False, interval=(0.7, 0.9))),
        ),
        failed_gates=("pretrain.accuracy",),
    ),
    "released": make.rolled_out("completed"),
    "rolled back": make.rolled_out("aborted"),
}


def test_published_schema_is_the_dataclasses_schema():
    published = json.loads(PUBLISHED.read_text("utf-8"))
    assert published == json_schema(Report), f"stale: regenerate with {REGENERATE}"
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_write_valid_report_json(name):
    data = json.loads(json.dumps(FACTORIES[name].to_json(), allow_nan=False))
    VALIDATOR.validate(data)


@pytest.mark.parametrize("name", ["stopped at once", "stopped by a gate"])
def test_report_reads_back_as_written(name):
    # Finite values only: a non-finite float is written as null and read back as NaN.
    report = FACTORIES[name]
    assert Report.from_json(report.to_json()) == report


def test_non_finite_floats_are_written_as_null_and_read_back_as_nan():
    report = make.rolled_out("aborted")
    assert report.rollout is not None
    assert math.isinf(report.rollout.upper_bound)
    data = report.to_json()
    assert data["rollout"]["upper_bound"] is None
    back = Report.from_json(data)
    assert back.rollout is not None
    assert math.isnan(back.rollout.upper_bound)
    assert to_json(report, null_non_finite=False)["rollout"]["upper_bound"] == math.inf


def test_every_key_is_always_written():
    data = make.report().to_json()
    assert list(data) == [f.name for f in dataclasses.fields(Report)]
    assert (data["rollout"], data["monitoring"], data["soak"]) == (None, None, None)
    assert data["outcome"] == "stopped"
    assert data["stages"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("outcome"), r"report: missing keys \['outcome'\]"),
        (lambda d: d.update(extra=1), r"report: missing keys \[\], unknown keys \['extra'\]"),
        (lambda d: d.update(outcome="shipped"), r"report.outcome: expected one of \["),
        (lambda d: d["production"].update(candidate_promoted=1), r"production.candidate_promoted"),
        (lambda d: d.update(seed="0"), r"report.seed: expected an integer, got '0'"),
        (lambda d: d.update(figures="a.png"), r"report.figures: expected an array"),
    ],
)
def test_from_json_and_the_schema_refuse_a_bad_report(change, message):
    data = make.rolled_out("aborted").to_json()
    change(data)
    with pytest.raises(ValueError, match=message):
        Report.from_json(data)
    assert not VALIDATOR.is_valid(data)


def test_from_json_names_the_path_of_a_nested_value():
    data = make.rolled_out("aborted").to_json()
    data["rollout"]["events"][1]["counts"]["canary_errors"] = 1.5
    with pytest.raises(ValueError, match=r"report.rollout.events\[1\].counts.canary_errors"):
        Report.from_json(data)


def test_outcomes_are_the_run_outcomes():
    assert [o.value for o in RunOutcome] == [
        "released",
        "unchanged",
        "stopped",
        "held",
        "rolled_back",
    ]
