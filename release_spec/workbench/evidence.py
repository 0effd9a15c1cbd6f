"""What the release steps measured, as typed values, and the report sections they become.

`release_spec.workbench.pipeline.ReleaseRun` fills one `Evidence` as its
steps run: the performance step the test-set predictions, the stability
step the soak summary, the rollout step the controller's final state with
the traffic it replayed, the monitoring step what it found on that traffic.
Each kind of evidence turns itself into its section of report.json
(`release_spec.workbench.report_schema`); a step that did not run leaves
its field None and its section null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from release_spec.metrics import confusion_matrix
from release_spec.statistics import wilson_interval
from release_spec.strategy.gates import GateResult, SoakSummary
from release_spec.strategy.monitoring import MonitoringReport
from release_spec.strategy.plan import MonitoringPlan, PhasedRolloutPlan
from release_spec.strategy.rollout import RolloutState, StepForecast
from release_spec.workbench.data import IntArray, LivePool
from release_spec.workbench.report_schema import (
    ArmCounts,
    DriftReport,
    ForecastReport,
    ForecastStepReport,
    Histogram,
    MonitoringSection,
    ReleasedModel,
    RolloutEnd,
    RolloutEventReport,
    RolloutReport,
    RolloutStepReport,
    RolloutVerdict,
    Timeline,
)

__all__ = [
    "Evidence",
    "MonitoringEvidence",
    "RolloutEvidence",
    "TestPredictions",
]

#: Where the reference of the drift and recall monitors comes from (the report says it).
MONITORING_REFERENCE = "target-domain training inputs; recall reference: target validation"
#: Bins of the drift figure's histograms.
HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class TestPredictions:
    """Labels the candidate and production predicted on the target test split (read once)."""

    __test__ = False  # not a pytest test class, whatever its name

    candidate: IntArray
    production: IntArray

    def released_model(self, version: str, labels: IntArray, confidence: float) -> ReleasedModel:
        """The report's ``released_model``: the candidate's test accuracy, Wilson interval."""
        hits, n = int(np.sum(self.candidate == labels)), len(labels)
        interval = wilson_interval(hits, n, confidence=confidence)
        return ReleasedModel(version, hits / n, interval, confidence, n)

    def confusion_matrices(
        self, labels: IntArray, candidate: str, production: str
    ) -> dict[str, IntArray]:
        """Production's and the candidate's confusion matrices, named by their versions."""
        return {
            f"production {production}": confusion_matrix(labels, self.production, num_classes=10),
            f"candidate {candidate}": confusion_matrix(labels, self.candidate, num_classes=10),
        }


@dataclass(frozen=True)
class RolloutEvidence:
    """The phased rollout: the planner's forecast, the live traffic, and how the judge ended it.

    Attributes:
        candidate: the candidate's version.
        production: production's version when the rollout started (the
            controller's own ``production`` moves to the candidate on completion).
        state: the controller's final state (``completed`` or ``aborted``).
        verdict: ``completed``, ``harm`` or ``undecided`` (see
            `release_spec.workbench.release.rollout_verdict`).
        baseline_error: production's error on target validation, the
            planner's starting point.
        forecast: the planner's view of each analysed step.
        pool: the live requests replayed.
        candidate_labels: the candidate's prediction for every request.
        production_labels: production's prediction for every request.
    """

    candidate: str
    production: str
    state: RolloutState
    verdict: RolloutVerdict
    baseline_error: float
    forecast: tuple[StepForecast, ...]
    pool: LivePool
    candidate_labels: IntArray
    production_labels: IntArray

    def gate(self, alpha: float, shares: tuple[float, ...]) -> GateResult:
        """The release stage's ``release.rollout`` gate: passed when the rollout completed;
        its value is the judge's final always-valid p-value, against ``alpha``."""
        state = self.state
        last, c = state.events[-1], state.counts
        where = {
            "completed": "completed every step (" + " -> ".join(f"{x:g} %" for x in shares) + ")",
            "harm": f"rolled back at step {last.step} ({last.share_pct_before:g} % canary) on "
            "evidence of harm",
            "undecided": f"held at step {last.step} ({last.share_pct_before:g} % canary), then "
            "taken back: no evidence of harm, but non-inferiority was not shown either",
        }[self.verdict]
        detail = (
            f"{where}: {last.reason}; canary {c.canary_errors}/{c.canary_requests} errors, "
            f"baseline {c.baseline_errors}/{c.baseline_requests}"
        )
        passed = self.verdict == "completed"
        return GateResult("release.rollout", passed, state.p_value, alpha, None, detail)

    def section(self, rp: PhasedRolloutPlan) -> RolloutReport:
        """The report's ``rollout``: plan, timeline (share and p-value per look), events."""
        state = self.state
        minutes = {r.look: r.minutes for r in state.history}
        events = tuple(
            RolloutEventReport(
                kind=e.kind,
                look=e.look,
                minutes=minutes.get(e.look, 0.0),
                step=e.step,
                share_before=e.share_pct_before,
                share_after=e.share_pct_after,
                reason=e.reason,
                p_value=e.p_value,
                upper_bound=e.upper_bound,
                counts=ArmCounts.of(e.counts),
            )
            for e in state.events
        )
        abort = next((e for e in state.events if e.kind == "abort"), None)
        end = (
            RolloutEnd(
                abort.step, abort.share_pct_before, abort.reason, abort.counts.canary_requests
            )
            if abort
            else None
        )
        h = state.history
        return RolloutReport(
            status=state.status,
            candidate=self.candidate,
            production=self.production,
            alpha=rp.alpha,
            margin=rp.margin,
            steps=tuple(
                RolloutStepReport(s.share_pct, s.min_canary_requests, s.max_bake_minutes)
                for s in rp.steps
            ),
            forecast=ForecastReport(
                self.baseline_error,
                rp.margin,
                tuple(
                    ForecastStepReport(
                        f.step,
                        f.share_pct,
                        f.expected_canary_requests,
                        f.required_canary_requests,
                        f.min_canary_requests,
                        f.warning,
                    )
                    for f in self.forecast
                ),
            ),
            live_requests=len(self.pool),
            live_class_counts=tuple(np.bincount(self.pool.labels, minlength=10).tolist()),
            requests_served=state.counts.requests,
            counts=ArmCounts.of(state.counts),
            p_value=state.p_value,
            upper_bound=state.upper_bound,
            verdict=self.verdict,
            rolled_back=end if self.verdict == "harm" else None,
            held=end if self.verdict == "undecided" else None,
            events=events,
            timeline=Timeline(
                look=tuple(r.look for r in h),
                minutes=tuple(r.minutes for r in h),
                share=tuple(r.share_pct for r in h),
                p_value=tuple(r.p_value for r in h),
                upper_bound=tuple(r.upper_bound for r in h),
            ),
        )


@dataclass(frozen=True)
class MonitoringEvidence:
    """What monitoring found on the live pool, and the feature summaries it compared.

    Attributes:
        model: the version monitored (the one serving after the rollout).
        report: drift, recall windows and alerts.
        reference: per feature summary, its values on the reference inputs.
        live: per feature summary, its values on the live pool.
    """

    model: str
    report: MonitoringReport
    reference: Mapping[str, Sequence[float]]
    live: Mapping[str, Sequence[float]]

    def section(self, thresholds: MonitoringPlan) -> MonitoringSection:
        """The report's ``monitoring``: drift per summary with histograms, recall, alerts."""
        drift = []
        for d in self.report.drift:
            r, lv = np.asarray(self.reference[d.feature]), np.asarray(self.live[d.feature])
            edges = np.linspace(min(r.min(), lv.min()), max(r.max(), lv.max()), HISTOGRAM_BINS + 1)
            histogram = Histogram(
                edges=tuple(edges.tolist()),
                reference=tuple((np.histogram(r, edges)[0] / r.size).tolist()),
                live=tuple((np.histogram(lv, edges)[0] / lv.size).tolist()),
            )
            drift.append(
                DriftReport(
                    d.feature, d.psi, d.ks_statistic, d.ks_p_value, d.ks_p_adjusted, histogram
                )
            )
        return MonitoringSection(
            model=self.model,
            reference=MONITORING_REFERENCE,
            thresholds=thresholds,
            drift=tuple(drift),
            recall=self.report.recall,
            alerts=self.report.alerts,
        )


@dataclass
class Evidence:
    """Everything the release steps measured; a step that did not run leaves None."""

    test_predictions: TestPredictions | None = None
    soak: SoakSummary | None = None
    rollout: RolloutEvidence | None = None
    monitoring: MonitoringEvidence | None = None
