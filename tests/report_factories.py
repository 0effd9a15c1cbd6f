"""Factories for report data: small, complete `Report` values built from the schema's dataclasses.

Each factory gives a valid section with plain defaults; a test passes only
the values it is about (keyword arguments, or `dataclasses.replace`). The
JSON a test needs is ``report.to_json()`` (what report.json holds) or
``to_json(report, null_non_finite=False)`` (what report.md and the figures
read).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jsonschema
import numpy as np

from release_spec.statistics import Interval
from release_spec.strategy.gates import GateResult
from release_spec.strategy.monitoring import Alert
from release_spec.strategy.plan import MonitoringPlan, Plan
from release_spec.strategy.stages import State, TrainingCurves
from release_spec.strategy.suites import PromptCase, PromptSuite, make_checker, score_suite
from release_spec.workbench.language.plan import LanguagePlan
from release_spec.workbench.language.report import (
    LANGUAGE_REPORT_SCHEMA,
    AudienceEvent,
    AudienceRolloutReport,
    AudienceServed,
    AudienceStep,
    LanguageDataReport,
    LanguageProduction,
    LanguageReport,
    PerplexityReport,
    RungCurves,
    RungReport,
    Samples,
    SuiteScoreReport,
)
from release_spec.workbench.report_schema import (
    REPORT_SCHEMA_VERSION,
    ArmCounts,
    AttemptReport,
    DataReport,
    DriftReport,
    ForecastReport,
    ForecastStepReport,
    Histogram,
    MonitoringSection,
    ProductionReport,
    Report,
    RolloutEnd,
    RolloutEventReport,
    RolloutReport,
    RolloutStepReport,
    RolloutVerdict,
    RunOutcome,
    StageReport,
    Timeline,
    Versions,
    json_schema,
)

#: Validates report.json objects against the schema generated from the dataclasses.
VALIDATOR = jsonschema.Draft202012Validator(json_schema(Report))
BASE_FIGURES = ("training_curves.png", "confusion_matrices.png", "gate_summary.png")


def gate(name: str = "pretrain.accuracy", passed: bool = True, **changes: Any) -> GateResult:
    """A gate result: value 0.9 against threshold 0.8, no interval, unless changed."""
    return dataclasses.replace(GateResult(name, passed, 0.9, 0.8, None, "rule"), **changes)


def stage(name: str, state: State, *gates: GateResult) -> StageReport:
    """A stage that ran once with ``gates`` and ended in ``state``."""
    attempt = AttemptReport(1, "steps", None, all(g.passed for g in gates), gates, {}, None, 0.1)
    return StageReport(
        name, state, (State.PLANNED, State.RUNNING, state), gates, (attempt,), (), ()
    )


def report(**changes: Any) -> Report:
    """A run stopped before anything ran, production ``v0001`` unchanged; fields replaced."""
    base = Report(
        schema_version=REPORT_SCHEMA_VERSION,
        outcome=RunOutcome.STOPPED,
        scenario="default",
        seed=0,
        started="2026-01-01T00:00:00+00:00",
        seconds=1.0,
        versions=Versions("0.1.0", "3.11.3"),
        stages=(),
        failed_gates=(),
        production=ProductionReport("v0001", "0" * 64, "v0001", False, False),
        candidate=None,
        released_model=None,
        soak=None,
        data=DataReport({"target.test.x": "1" * 64}, {"target.test": 251}),
        plan=Plan(),
        rollout=None,
        monitoring=None,
        figures=BASE_FIGURES,
    )
    return dataclasses.replace(base, **changes)


def rollout_end(**changes: Any) -> RolloutEnd:
    """Where a canary was taken back: step 0 at 10 % after 40 canary requests."""
    end = RolloutEnd(0, 10.0, "judge rejected at step 0 (10 %): p = 0.001", 40)
    return dataclasses.replace(end, **changes)


def rollout(status: str = "completed", **changes: Any) -> RolloutReport:
    """A rollout of ``v2`` against ``v1`` in two steps, 10 % then 100 %.

    ``completed``: the canary became production. ``aborted``: the judge
    found harm at step 0 (``verdict`` ``harm``, ``rolled_back`` set); the
    final upper bound is infinite either way (written as null).
    """
    aborted = status == "aborted"
    end = rollout_end() if aborted else None
    last = RolloutEventReport(
        kind="abort" if aborted else "complete",
        look=2,
        minutes=0.4,
        step=0 if aborted else 1,
        share_before=10.0,
        share_after=0.0,
        reason=end.reason if end else "candidate 'v2' is production",
        p_value=0.001 if aborted else 0.8,
        upper_bound=0.2 if aborted else -0.01,
        counts=ArmCounts(40, 12 if aborted else 1, 360, 10),
    )
    first = RolloutEventReport(
        "start",
        0,
        0.0,
        0,
        0.0,
        10.0,
        "candidate 'v2' starts at 10 %",
        1.0,
        1.0,
        ArmCounts(0, 0, 0, 0),
    )
    section = RolloutReport(
        status=status,
        candidate="v2",
        production="v1",
        alpha=0.05,
        margin=0.03,
        steps=(RolloutStepReport(10.0, 10, 1.0), RolloutStepReport(100.0, 0, 1.0)),
        forecast=ForecastReport(0.05, 0.03, (ForecastStepReport(0, 10.0, 20.0, 10, 10, None),)),
        live_requests=1000,
        live_class_counts=(100,) * 10,
        requests_served=400,
        counts=last.counts,
        p_value=last.p_value,
        upper_bound=float("inf"),
        verdict="harm" if aborted else "completed",
        rolled_back=end,
        held=None,
        events=(first, last),
        timeline=Timeline((1, 2), (0.2, 0.4), (10.0, 10.0), (0.3, last.p_value), (0.5, 0.2)),
    )
    return dataclasses.replace(section, **changes)


def monitoring(psi: tuple[float, ...] = (0.3, 0.05), seed: int = 0) -> MonitoringSection:
    """Monitoring of ``v1``: one drift row per PSI (``mean_intensity``, ``ink_fraction``, ...),
    random histograms, and an alert for the first when its PSI is at least 0.25."""
    rng = np.random.default_rng(seed)
    names = ("mean_intensity", "ink_fraction", "centre_row", "centre_col", "ink_spread")
    edges = tuple(np.linspace(0, 1, 11).tolist())
    drift = tuple(
        DriftReport(
            name,
            p,
            0.2,
            1e-5,
            2e-5,
            Histogram(
                edges,
                tuple(rng.dirichlet(np.ones(10)).tolist()),
                tuple(rng.dirichlet(np.ones(10)).tolist()),
            ),
        )
        for name, p in zip(names, psi, strict=False)
    )
    alerts = tuple(
        Alert(
            "drift",
            "alert",
            d.feature,
            d.psi,
            0.25,
            f"PSI of {d.feature!r} is {d.psi:.3f} (>= 0.25)",
        )
        for d in drift[:1]
        if d.psi >= 0.25
    )
    return MonitoringSection("v1", "training inputs", MonitoringPlan(), drift, (), alerts)


def rolled_out(status: str = "completed") -> Report:
    """A run that reached the rollout: ``released`` when it completed, else ``rolled_back``."""
    aborted = status == "aborted"
    return report(
        outcome=RunOutcome.ROLLED_BACK if aborted else RunOutcome.RELEASED,
        scenario="live-regression",
        failed_gates=("release.rollout",) if aborted else (),
        production=ProductionReport("v1", "0" * 64, "v1", False, not aborted),
        rollout=rollout(status),
        monitoring=monitoring(),
        figures=(*BASE_FIGURES, "rollout.png", "drift.png"),
    )


def check_report_json(data: Mapping[str, Any]) -> Report:
    """Assert that a report.json object is valid: it matches the JSON Schema, reads back as a
    `Report`, and that report writes it again key for key; return the `Report`."""
    VALIDATOR.validate(data)
    report = Report.from_json(data)
    assert report.to_json() == data
    return report


# ----------------------------------------------------------------------------- language model


#: Validates the language-model run's report.json objects against its schema.
LANGUAGE_VALIDATOR = jsonschema.Draft202012Validator(json_schema(LanguageReport))


def suite_score(passes: tuple[bool, ...] = (True, True, False)) -> SuiteScoreReport:
    """The score of a capability suite ``add`` of one case per pass, answered once each."""
    check = make_checker({"exact": "5"})
    cases = tuple(PromptCase(f"add-{i}", "what is 2+3?", check) for i in range(len(passes)))
    suite = PromptSuite("add", "1", "capability", cases)
    answers = {c.id: ["5" if ok else "6"] for c, ok in zip(cases, passes, strict=True)}
    return SuiteScoreReport.of(score_suite(suite, answers, temperatures=[0.0]))


def audience_rollout(verdict: RolloutVerdict = "completed") -> AudienceRolloutReport:
    """A rollout over two audiences: ``completed`` reached everyone; ``harm`` was rolled back
    at the first with an infinite upper bound (written as null)."""
    harm = verdict == "harm"
    return AudienceRolloutReport(
        audiences=(
            AudienceServed("internal", 400, 0.0, 0.05, 3, 4),
            AudienceServed("everyone", 700, 0.5, 0.1, 200 if harm else 5, 6),
        ),
        steps=(AudienceStep("internal", 50.0, 80), AudienceStep("everyone", 75.0, 150)),
        alpha=0.05,
        margin=0.15,
        status="aborted" if harm else "completed",
        verdict=verdict,
        last_step=0 if harm else 2,
        audience_reached="internal" if harm else "everyone",
        p_value=0.001 if harm else 0.6,
        upper_bound=math.inf if harm else 0.02,
        counts=ArmCounts(200, 90 if harm else 3, 200, 4),
        events=(AudienceEvent("start", 0, 0, "candidate 'v0003' starts at 50 %"),),
    )


def language_rung(name: str = "small", **changes: Any) -> RungReport:
    """A rung pre-trained (``v0001``), fine-tuned and released (``v0002`` over ``v0001``)."""
    curves = TrainingCurves((0.5, 0.6), (0.5, 0.55), (1.2, 0.9), (1.3, 1.0))
    samples = Samples(
        ("what is 3+4?", "reverse abc"),
        0.0,
        {"candidate v0002": ("7", "cba"), "production v0001": ("7", "abc")},
    )
    base = RungReport(
        rung=name,
        size=LanguagePlan().sizes["small"],
        curves=RungCurves((curves,), (curves,)),
        pretrained="v0001",
        candidate="v0002",
        production="v0001",
        samples=samples,
        suites={"add": suite_score()},
        rollout=audience_rollout(),
    )
    return dataclasses.replace(base, **changes)


def language_report(**changes: Any) -> LanguageReport:
    """A run of the default scenario that released one rung; fields replaced."""
    gates = (gate("finetune.instructions", interval=(0.7, 0.9)), gate("finetune.no_forgetting"))
    base = LanguageReport(
        schema_version=LANGUAGE_REPORT_SCHEMA,
        example="language-model",
        outcome=RunOutcome.RELEASED,
        scenario="default",
        seed=0,
        started="2026-01-01T00:00:00+00:00",
        seconds=90.5,
        versions=Versions("0.1.0", "3.11.3"),
        stages=(stage("finetune.small", State.PASSED, *gates),),
        failed_gates=(),
        production=LanguageProduction(
            "v0002", "0" * 64, None, PerplexityReport(3.1, Interval(2.9, 3.3), 300)
        ),
        ladder=(language_rung(),),
        data=LanguageDataReport(
            {"pretrain.train": "1" * 64}, {"pretrain.train": 2000}, "generated at run time"
        ),
        plan=LanguagePlan(),
    )
    return dataclasses.replace(base, **changes)


def check_language_report_json(data: Mapping[str, Any]) -> LanguageReport:
    """Assert that a language-model report.json object matches its JSON Schema, reads back as a
    `LanguageReport` and is written again key for key; return the `LanguageReport`."""
    LANGUAGE_VALIDATOR.validate(data)
    report = LanguageReport.from_json(data)
    assert report.to_json() == data
    return report
