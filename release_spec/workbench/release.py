"""The release stage: functional, performance and stability gates, the phased rollout, monitoring.

`ReleaseStage` runs over a registered candidate and the production model
it would replace (`release_spec.workbench.pipeline.ReleaseRun` builds it
once the candidate is registered). Its steps (`ReleaseStage.steps`, run by
`release_spec.strategy.stages.run_release`) are functional, performance,
stability and the phased rollout (`release_spec.strategy.rollout`):
production serves the baseline share of the embedded live pool, the
candidate the canary share, an error is a misclassification (the label is
known in simulation), and the anytime-valid judge may roll the canary back
after any batch. `ReleaseStage.monitor`, run once the rollout has run,
compares the live pool with the training data and tracks the serving model's
per-class recall (`release_spec.strategy.monitoring`). Each step records what
it measured in `evidence` (`release_spec.workbench.evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from release_spec.store.registry import VersionInfo
from release_spec.strategy.gates import (
    GateResult,
    functional_gates,
    noninferiority_gate,
    soak,
    stability_gates,
    summarise_soak,
)
from release_spec.strategy.monitoring import monitor
from release_spec.strategy.plan import Plan
from release_spec.strategy.rollout import (
    LiveRequest,
    RolloutController,
    RolloutState,
    forecast_steps,
    replay,
)
from release_spec.strategy.stages import ReleaseStep, State
from release_spec.workbench.data import Dataset
from release_spec.workbench.evidence import (
    Evidence,
    MonitoringEvidence,
    RolloutEvidence,
    TestPredictions,
)
from release_spec.workbench.report_schema import RolloutVerdict
from release_spec.workbench.serving import image_summaries, rss_mb, serve
from release_spec.workbench.training import Echo, live_pool, predicted_labels, predictor

__all__ = ["FUNCTIONAL_PROBE", "ReleaseStage", "Version", "rollout_verdict"]

#: Size of the functional gate's probe batch (target validation images).
FUNCTIONAL_PROBE = 256


@dataclass(frozen=True)
class Version:
    """A model held in memory and the store's record of it."""

    model: Any
    info: VersionInfo


def rollout_verdict(state: RolloutState, alpha: float) -> RolloutVerdict:
    """Why a finished rollout ended: the candidate became production, harm was shown, or neither.

    ``harm`` is evidence against the candidate: the anytime-valid judge
    rejected "no regression" (its always-valid p-value, over errors and slow
    requests, reached ``alpha``). ``undecided`` is the absence of evidence
    either way: the rollout stopped before the canary was shown non-inferior
    (the live traffic ran out, or a bake ended inconclusive under
    ``on_inconclusive = "rollback"``). The run reports the first as
    ``rolled_back`` and the second as ``held``: the fix differs (repair the
    candidate, or give the rollout more traffic).

    Examples:
        >>> from release_spec.strategy.rollout import RolloutController, service_rollout_plan
        >>> ctl = RolloutController(service_rollout_plan(), production="v1")
        >>> _ = ctl.start("v2")
        >>> rollout_verdict(ctl.abort("live pool exhausted"), alpha=0.05)
        'undecided'
    """
    if state.status == "completed":
        return "completed"
    return "harm" if state.p_value <= alpha else "undecided"


@dataclass
class ReleaseStage:
    """The release stage's steps over ``candidate`` and ``production``, filling ``evidence``."""

    plan: Plan
    ds: Dataset
    scenario: str
    candidate: Version
    production: Version
    echo: Echo
    progress: bool
    evidence: Evidence = field(default_factory=Evidence)

    def steps(self) -> list[ReleaseStep]:
        """The release stage's steps, in order: offline gates, then the phased rollout."""
        return [
            ReleaseStep("functional", self.functional),
            ReleaseStep("performance", self.performance),
            ReleaseStep("stability", self.stability),
            ReleaseStep("rollout", self.rollout, on_failure=State.ROLLED_BACK),
        ]

    def functional(self) -> tuple[GateResult, ...]:
        """Shapes, probabilities and edge inputs on a probe of target validation images."""
        # Validation inputs: the test split is read once, by the performance gate.
        probe = self.ds.target.val.x[:FUNCTIONAL_PROBE]
        cand = self.candidate
        return functional_gates(
            predictor(cand.model), probe, atol=self.plan.release.functional_atol
        )

    def performance(self) -> tuple[GateResult, ...]:
        """Non-inferiority to production on the target test split (its only reading)."""
        cand, prod = self.candidate, self.production
        test, rel = self.ds.target.test, self.plan.release
        pred = TestPredictions(
            predicted_labels(cand.model, test.x), predicted_labels(prod.model, test.x)
        )
        self.evidence.test_predictions = pred
        gate = noninferiority_gate(
            "release.noninferiority",
            test.labels,
            pred.candidate,
            pred.production,
            margin=rel.noninferiority_margin,
            alpha=rel.noninferiority_alpha,
            reference=f"production {prod.info.version}",
            split=test.name,
        )
        return (gate,)

    def stability(self) -> tuple[GateResult, ...]:
        """Soak the candidate from ``soak_callers`` threads; judge errors, NaNs and trends.

        The reference workload each caller times after every candidate call is
        production's model on the same batch: the same runtime and serving path,
        already released, and called in the same windows, so machine load moves
        both (see `release_spec.strategy.gates.stability_gates`). Inputs are target
        validation images (the test split is read once, by the performance gate).
        """
        from tqdm import tqdm

        cand, prod = self.candidate, self.production
        rel = self.plan.release
        with tqdm(desc="  soak", unit="pred", disable=not self.progress, leave=False) as bar:
            result = soak(
                predictor(cand.model),
                self.ds.target.val.x,
                seconds=rel.soak_seconds,
                max_predictions=rel.soak_max_predictions,
                batch_size=rel.soak_batch_size,
                callers=rel.soak_callers,
                reference=predictor(prod.model),
                rss_mb=rss_mb,
                on_batch=bar.update,
            )
        summary = summarise_soak(result, windows=rel.soak_windows)
        self.evidence.soak = summary
        return stability_gates(
            summary,
            max_rss_slope_mb_per_min=rel.max_rss_slope_mb_per_min,
            max_latency_drift=rel.max_latency_drift,
        )

    def rollout(self) -> tuple[GateResult, ...]:
        """Replay the live pool through the phased rollout; pass only if it completed."""
        cand, prod = self.candidate, self.production
        phased = self.plan.phased_rollout
        rollout_plan = phased.rollout_plan()
        # The planner: can each step's bake reach the fixed-horizon sample size for a
        # regression of one margin above production's error on target validation?
        val = self.ds.target.val
        p0 = float(np.mean(predicted_labels(prod.model, val.x) != val.labels))
        p0 = min(max(p0, 1e-3), 0.5)
        margin = rollout_plan.margin
        forecast = forecast_steps(rollout_plan, baseline_error=p0, regression=margin)
        for f in forecast:
            self.echo(
                f"  rollout plan step {f.step} ({f.share_pct:g} %): about "
                f"{f.expected_canary_requests:.0f} canary requests in the bake, "
                f"{f.required_canary_requests} to detect {p0:.3f} -> {p0 + margin:.3f}"
                + (f"; WARNING {f.warning}" if f.warning else "")
            )
        pool = live_pool(self.plan, self.ds, self.scenario)
        (cand_pred, cand_ms), (prod_pred, prod_ms) = serve(
            (cand.model, prod.model), pool.x, phased.batch_size
        )
        requests = [
            LiveRequest(str(i), bool(c != y), bool(p != y), float(cl), float(pl))
            for i, c, p, y, cl, pl in zip(
                pool.ids, cand_pred, prod_pred, pool.labels, cand_ms, prod_ms, strict=True
            )
        ]
        ctl = RolloutController(rollout_plan, production=prod.info.version)
        ctl.start(cand.info.version)
        state = replay(ctl, requests, batch_size=phased.batch_size)
        if not state.status.terminal:
            state = ctl.abort(
                f"live pool exhausted at step {state.step} ({state.canary_share_pct:g} %) after "
                f"{state.counts.requests} requests, before the rollout completed "
                f"(status {state.status})"
            )
        for e in state.events:
            self.echo(f"  rollout {e.kind} (look {e.look}): {e.reason}")
        verdict = rollout_verdict(state, rollout_plan.alpha)
        self.evidence.rollout = RolloutEvidence(
            cand.info.version,
            prod.info.version,
            state,
            verdict,
            p0,
            tuple(forecast),
            pool,
            cand_pred,
            prod_pred,
        )
        shares = tuple(step.share_pct for step in phased.steps)
        return (self.evidence.rollout.gate(rollout_plan.alpha, shares),)

    def monitor(self) -> MonitoringEvidence:
        """Monitor the model serving after the rollout on its live traffic: input drift
        against the training inputs, per-class recall against target validation."""
        assert self.evidence.rollout is not None
        rollout = self.evidence.rollout
        cand, prod = self.candidate, self.production
        done = rollout.verdict == "completed"
        serving = cand if done else prod
        served = rollout.candidate_labels if done else rollout.production_labels
        val = self.ds.target.val
        reference = image_summaries(self.ds.target.train.x)
        live = image_summaries(rollout.pool.x)
        found = monitor(
            reference_summaries=reference,
            live_summaries=live,
            y_true=rollout.pool.labels.tolist(),
            y_pred=served.tolist(),
            reference_true=val.labels.tolist(),
            reference_pred=predicted_labels(serving.model, val.x).tolist(),
            num_classes=10,
            thresholds=self.plan.monitoring.thresholds(),
        )
        for a in found.alerts:
            self.echo(f"  monitoring {a.severity}: {a.message}")
        self.evidence.monitoring = MonitoringEvidence(serving.info.version, found, reference, live)
        return self.evidence.monitoring
