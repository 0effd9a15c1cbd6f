"""The language-model run's report.json as dataclasses: `LanguageReport` and its sections.

`release_spec.workbench.language.run.run_language_model` builds a
`LanguageReport` and writes it as ``report.json`` (`LanguageReport.to_json`)
and ``report.md`` (`render_language_report`); a reader gets it back, checked
field by field, with `LanguageReport.from_json`. The JSON Schema published
with the site (``docs/release/language-report-schema.json``) is
`release_spec.workbench.report_schema.json_schema` of `LanguageReport`.

The classic report's pieces are used as they are: the run outcome
(`RunOutcome`), package versions, the stages with their gates and attempts
(`StageReport`), the rollout's arm counts (`ArmCounts`) and verdict; the
plan is the run's `LanguagePlan`. Values are written as in the classic
report: every key always present (a section that did not happen is null), a
non-finite float as null, a tuple or an interval as an array.

Examples:
    >>> from release_spec.workbench.report_schema import from_json, to_json
    >>> p = PerplexityReport(3.1, Interval(2.9, 3.3), 300)
    >>> to_json(p)
    {'estimate': 3.1, 'interval': [2.9, 3.3], 'n': 300}
    >>> from_json(PerplexityReport, to_json(p)) == p
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from release_spec.statistics import Interval
from release_spec.strategy.stages import TrainingCurves
from release_spec.strategy.suites import SuiteKind, SuiteScore
from release_spec.workbench.language.plan import LANGUAGE_SCENARIOS, LanguagePlan, SizeSection
from release_spec.workbench.report_schema import (
    ArmCounts,
    DataReport,
    JsonDocument,
    RolloutVerdict,
    RunOutcome,
    StageReport,
    Versions,
    json_schema,
)

__all__ = [
    "EXPECTED_OUTCOMES",
    "LANGUAGE_REPORT_SCHEMA",
    "OUTCOME_TEXT",
    "SCHEMA_TITLE",
    "AudienceEvent",
    "AudienceRolloutReport",
    "AudienceServed",
    "AudienceStep",
    "LanguageDataReport",
    "LanguageProduction",
    "LanguageReport",
    "PerplexityReport",
    "RungCurves",
    "RungReport",
    "Samples",
    "SeedRun",
    "SeedSweep",
    "SuiteScoreReport",
    "render_language_report",
    "seeds_table",
]

#: Version of the language-model report.json layout.
LANGUAGE_REPORT_SCHEMA = 1

#: The title of the published JSON Schema (docs/release/language-report-schema.json).
SCHEMA_TITLE = "release-spec language-model report.json"
#: One line per outcome, for report.md and the command line.
OUTCOME_TEXT = {
    RunOutcome.RELEASED: "every rung of the ladder released",
    RunOutcome.UNCHANGED: "nothing to release: the candidate is production's model",
    RunOutcome.STOPPED: "stopped by an offline gate before any live traffic reached the rung",
    RunOutcome.ROLLED_BACK: "rolled back during the audience rollout on evidence of harm",
    RunOutcome.HELD: "held: the audience rollout ran out of live prompts without a verdict",
}


@dataclass(frozen=True)
class PerplexityReport:
    """A perplexity with its 95 % interval over ``n`` sentences (eq-perplexity-interval)."""

    estimate: float
    interval: Interval
    n: int


@dataclass(frozen=True)
class LanguageProduction:
    """Production after the run, the version before it (null on a new store), test perplexity."""

    version: str
    sha256: str
    before: str | None
    pretrain_test_perplexity: PerplexityReport


@dataclass(frozen=True)
class RungCurves:
    """The training curves of every pre-training and fine-tuning attempt of a rung."""

    pretrain: tuple[TrainingCurves, ...]
    finetune: tuple[TrainingCurves, ...]


@dataclass(frozen=True)
class Samples:
    """Greedy answers to the sample prompts, per model (``"candidate v0003"``: one per prompt)."""

    prompts: tuple[str, ...]
    temperature: float
    answers: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class SuiteScoreReport:
    """A model's score on one suite, with the per-case passes (see `SuiteScore`)."""

    suite: str
    version: str
    kind: SuiteKind
    sha256: str
    cases: int
    cases_passed: int
    pass_rate: float
    interval: Interval
    confidence: float
    samples_per_case: tuple[int, ...]
    seeds: tuple[int, ...]
    temperatures: tuple[float, ...]
    failed_cases: tuple[str, ...]
    passes: dict[str, tuple[bool, ...]]

    @classmethod
    def of(cls, s: SuiteScore) -> SuiteScoreReport:
        """The report's view of a `SuiteScore` (the per-case passes keyed by case id)."""
        return cls(
            s.suite,
            s.version,
            s.kind,
            s.sha256,
            s.cases,
            s.cases_passed,
            s.pass_rate,
            s.interval,
            s.confidence,
            s.samples_per_case,
            s.seeds,
            s.temperatures,
            s.failed_cases,
            dict(zip(s.case_ids, s.passes, strict=True)),
        )


@dataclass(frozen=True)
class AudienceServed:
    """One audience's live prompts, and how many each model would answer wrongly if it took all."""

    audience: str
    requests: int
    polite_share: float
    harmful_share: float
    candidate_errors_if_all: int
    production_errors_if_all: int


@dataclass(frozen=True)
class AudienceStep:
    """One rollout step: the audience, the canary's share (percent) and its minimum requests."""

    audience: str
    share: float
    min_canary_requests: int


@dataclass(frozen=True)
class AudienceEvent:
    """A decision of the rollout controller."""

    kind: str
    look: int
    step: int
    reason: str


@dataclass(frozen=True)
class AudienceRolloutReport:
    """The rollout by audience: plan, how far it went, the judge's final evidence, events."""

    audiences: tuple[AudienceServed, ...]
    steps: tuple[AudienceStep, ...]
    alpha: float
    margin: float
    status: str
    verdict: RolloutVerdict
    last_step: int
    audience_reached: str
    p_value: float
    upper_bound: float
    counts: ArmCounts
    events: tuple[AudienceEvent, ...]


@dataclass(frozen=True)
class RungReport:
    """One rung of the ladder: its size, curves, versions, sample answers, suites, rollout.

    A key whose step the run did not reach is null (``pretrained`` when
    pre-training failed; ``candidate``, ``production``, ``suites`` and
    ``rollout`` when the rung stopped before the release stage or its
    candidate was production's model).
    """

    rung: str
    size: SizeSection
    curves: RungCurves
    pretrained: str | None = None
    candidate: str | None = None
    production: str | None = None
    samples: Samples | None = None
    suites: dict[str, SuiteScoreReport] | None = None
    rollout: AudienceRolloutReport | None = None


@dataclass(frozen=True)
class LanguageDataReport(DataReport):
    """The classic data section (hashes, sizes) and the generated data's licence."""

    licence: str


@dataclass(frozen=True)
class LanguageReport(JsonDocument):
    """Everything the language-model run's report.json holds."""

    schema_version: int
    example: Literal["language-model"]
    outcome: RunOutcome
    scenario: str
    seed: int
    started: str
    seconds: float
    versions: Versions
    stages: tuple[StageReport, ...]
    failed_gates: tuple[str, ...]
    production: LanguageProduction | None
    ladder: tuple[RungReport, ...]
    data: LanguageDataReport
    plan: LanguagePlan


def _cell(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else ""


def render_language_report(report: LanguageReport) -> str:
    """The readable report: outcome, per rung the gates, suites, rollout and generations."""
    outcome = report.outcome.value
    lines = [
        f"# Language-model release report: {outcome}",
        "",
        f"**Outcome**: {OUTCOME_TEXT[report.outcome]}.",
        "",
        f"Scenario `{report.scenario}`, seed {report.seed}, started {report.started}, "
        f"{report.seconds:.1f} s.",
        "",
    ]
    prod = report.production
    if prod:
        p = prod.pretrain_test_perplexity
        lines += [
            f"Production after the run: `{prod.version}` (sha256 `{prod.sha256[:12]}…`); "
            f"pre-training test perplexity {p.estimate:.3f} "
            f"[{p.interval.low:.3f}, {p.interval.high:.3f}] over {p.n} sentences.",
            "",
        ]
    lines += [
        "## Stages",
        "",
        "| stage | state | gate | passed | value | interval |",
        "|---|---|---|---|---|---|",
    ]
    for st in report.stages:
        state = st.state.value
        if not st.gates:
            lines.append(f"| {st.name} | {state} |  |  |  |  |")
        for g in st.gates:
            iv = f"[{g.interval[0]:.3f}, {g.interval[1]:.3f}]" if g.interval else ""
            lines.append(
                f"| {st.name} | {state} | {g.name} | {g.passed} | {_cell(g.value)} | {iv} |"
            )
    for rung in report.ladder:
        lines += ["", f"## Rung `{rung.rung}`", ""]
        ro = rung.rollout
        if ro:
            c = ro.counts
            lines += [
                f"Audience rollout: {ro.status} ({ro.verdict}), reached "
                f"{ro.audience_reached}; canary {c.canary_errors}/{c.canary_requests} "
                f"bad answers, production {c.baseline_errors}/{c.baseline_requests}.",
                "",
            ]
        samples = rung.samples
        if samples:
            who = list(samples.answers)
            lines += ["| prompt | " + " | ".join(who) + " |", "|---" * (len(who) + 1) + "|"]
            for i, prompt in enumerate(samples.prompts):
                cells = [f"`{samples.answers[w][i]}`" for w in who]
                lines.append(f"| `{prompt}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


EXPECTED_OUTCOMES = {
    "default": RunOutcome.RELEASED,
    "forgetting": RunOutcome.STOPPED,
    "jailbreak-regression": RunOutcome.STOPPED,
    "live-prompt-regression": RunOutcome.ROLLED_BACK,
}
"""What each scenario must end with: the claims of the language-model page."""


@dataclass(frozen=True)
class SeedRun:
    """One run of the seed sweep: its outcome, exit code, failed gates and wall time."""

    seed: int
    scenario: str
    outcome: RunOutcome
    exit_code: int
    failed_gates: tuple[str, ...]
    seconds: float
    load_average: float

    @property
    def as_expected(self) -> bool:
        """True when the run ended as its scenario claims (`EXPECTED_OUTCOMES`)."""
        return self.outcome is EXPECTED_OUTCOMES[self.scenario]


@dataclass(frozen=True)
class SeedSweep(JsonDocument):
    """The seed sweep's JSON file (``docs/data/language-model-seeds.json``)."""

    plan: str
    machine: str
    runs: tuple[SeedRun, ...]


def seeds_table(sweep: SeedSweep) -> str:
    """The sweep as a Markdown table: one row per seed, one column per scenario.

    Examples:
        >>> run = SeedRun(0, "default", RunOutcome.RELEASED, 0, (), 50.0, 2.0)
        >>> print(seeds_table(SeedSweep("quick", "x86_64, 2 CPUs", (run,))).splitlines()[2])
        | 0 | **released** | not run | not run | not run | 50 s (load 2.0) |
    """
    by = {(r.seed, r.scenario): r for r in sweep.runs}
    seeds = sorted({r.seed for r in sweep.runs})
    # Plain headers (a hyphenated name may wrap) and no gate names: the table fits a column.
    head = "| seed | " + " | ".join(LANGUAGE_SCENARIOS) + " | slowest run |"
    lines = [head, "|---" * (len(LANGUAGE_SCENARIOS) + 2) + "|"]
    for seed in seeds:
        cells = []
        for sc in LANGUAGE_SCENARIOS:
            r = by.get((seed, sc))
            if r is None:
                cells.append("not run")
                continue
            outcome = r.outcome.value
            cells.append(f"**{outcome}**" if r.as_expected else f"{outcome} ✗")
        mine = [by[(seed, sc)] for sc in LANGUAGE_SCENARIOS if (seed, sc) in by]
        slow = max(mine, key=lambda r: r.seconds)
        cells.append(f"{slow.seconds:.0f} s (load {slow.load_average:.1f})")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    met = sum(1 for r in sweep.runs if r.as_expected)
    lines += [
        "",
        f"Plan `{sweep.plan}`; {met} of {len(sweep.runs)} runs ended as the scenario "
        "expects (bold); ✗ marks one that did not (the gates each run failed are in the "
        "JSON). Seconds are wall time on a shared 2-core machine, with the 1-minute load "
        "average when the run started.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - writes docs/release/language-report-schema.json
    import json
    import sys

    schema = json_schema(LanguageReport, title=SCHEMA_TITLE)
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")
