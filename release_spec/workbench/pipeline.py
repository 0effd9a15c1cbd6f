"""The reference release, end to end: pre-train → fine-tune → release, on the embedded data.

This is the workbench: it wires the data (`release_spec.workbench.data`), the
classic Keras model (`release_spec.workbench.model`), the gates and stages
(`release_spec.strategy.gates`, `release_spec.strategy.stages`), the plan
(`release_spec.strategy.plan`) and the model store (`release_spec.store.registry`)
together, and hands the result to `release_spec.workbench.report`. Keras is
imported inside the functions that train, so importing this module is cheap.

Where production comes from. On a first run the store is empty, so the
pre-trained model, once its gate has passed, is registered and promoted as
the baseline production version: the model that would be serving had the
deployment environment not changed. The fine-tuned candidate must then beat
it on the target domain, show no forgetting on the source domain, and be
non-inferior to it on the target test set before it replaces it. A later
run with the same ``--out`` finds that store and compares its candidate with
whatever is in production there (the pre-trained model of every run is still
registered, as the candidate's parent, but not promoted).

Scenarios, each built to hold on every seed (see `release_spec.workbench.sweep`):
``default``; ``regression``, where the fine-tuning data has one class's
labels replaced by the next class (a corrupted labelling batch): the
candidate still beats the pre-trained model on average, but cannot read that
class, which the fine-tuning macro-F1 gate stops whatever the sample;
``live-regression``, where a new intake channel (a header bar above the
digit, `release_spec.workbench.data.from_new_channel`) contributes a mislabelled batch
(every image class ``batch_label``) to the fine-tuning data. The offline
validation set has no channel image and the test set only ``test_share``
(1 %), too few for any gate to notice; ``live_share`` (half) of the live traffic
comes through it, where the candidate errs nine times in ten and production
as anywhere else: the phased rollout must take it back, on evidence of harm.

Outcomes (`release_spec.workbench.report_schema.RunOutcome`): ``released``;
``unchanged`` when the fine-tuned candidate has production's weights (the
same plan and seed run again into the same ``--out``: nothing is registered
or rolled out); ``stopped`` by an offline gate; ``rolled_back`` when the
rollout's judge found harm; ``held`` when the rollout ended without
evidence either way (`rollout_verdict`).

The run (`ReleaseRun`) is a flat sequence of named steps over one object,
each returning whether the run goes on: pre-train, register the pre-trained
model, fine-tune, register the candidate, release, monitor; then the report.
The release stage's steps (`ReleaseRun.release_steps`) are functional,
performance, stability and the phased rollout
(`release_spec.strategy.rollout`): production serves the baseline share of the
embedded live pool, the candidate the canary share, an error is a
misclassification (the label is known in simulation), and the anytime-valid
judge may roll the canary back after any batch. Promotion to production
happens only when every step passed. Monitoring (`release_spec.strategy.monitoring`),
a step of its own once the rollout has run, then compares the live pool with
the training data and tracks the serving model's per-class recall. What the
steps measure is typed evidence (`release_spec.workbench.evidence`); the
report is a `release_spec.workbench.report_schema.Report`.

The process environment is the caller's business: the command line sets
`TENSORFLOW_ENVIRONMENT` before TensorFlow is imported; this module sets
no environment variable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from release_spec import __version__
from release_spec.metrics import confusion_matrix
from release_spec.statistics import wilson_interval
from release_spec.store.registry import ModelStore, VersionInfo
from release_spec.strategy.gates import (
    GateResult,
    functional_gates,
    noninferiority_gate,
    soak,
    stability_gates,
    summarise_soak,
)
from release_spec.strategy.monitoring import monitor
from release_spec.strategy.plan import SCENARIOS, Plan
from release_spec.strategy.rollout import (
    LiveRequest,
    RolloutController,
    RolloutState,
    forecast_steps,
    replay,
)
from release_spec.strategy.stages import (
    Attempt,
    Hyperparameters,
    ReleaseStep,
    StageRecord,
    State,
    run_release,
    run_stage,
    transition,
)
from release_spec.workbench.data import Dataset, load_dataset
from release_spec.workbench.evidence import (
    Evidence,
    MonitoringEvidence,
    RolloutEvidence,
    TestPredictions,
)
from release_spec.workbench.report_schema import (
    REPORT_SCHEMA_VERSION,
    CandidateReport,
    DataReport,
    ProductionReport,
    ReleasedModel,
    Report,
    RolloutVerdict,
    RunOutcome,
    StageReport,
    Versions,
)
from release_spec.workbench.training import (
    Trainer,
    live_pool,
    live_regression_dataset,
    predicted_labels,
    predictor,
)

__all__ = [
    "TENSORFLOW_ENVIRONMENT",
    "ReleaseRun",
    "RunResult",
    "Version",
    "rollout_verdict",
    "run_pipeline",
    "same_weights",
]

Echo = Callable[[str], None]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
#: Size of the functional gate's probe batch (target validation images).
FUNCTIONAL_PROBE = 256
#: What a process that runs the workbench sets (unless already set) before it imports
#: TensorFlow: quiet C++ logs, and no oneDNN kernels, which reorder float sums so that
#: results would differ between CPUs (the tiny network loses nothing measurable without
#: them). `release_spec.cli` and the sweep's entry point apply it; a library function
#: cannot, because TensorFlow reads it once, at import.
TENSORFLOW_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


@dataclass(frozen=True)
class Version:
    """A model held in memory and the store's record of it."""

    model: Any
    info: VersionInfo


@dataclass(frozen=True)
class RunResult:
    """The outcome of `run_pipeline`, its stage records and the report written."""

    outcome: RunOutcome
    stages: tuple[StageRecord, ...]
    report: Report
    out_dir: Path


def same_weights(a: Any, b: Any) -> bool:
    """Whether two Keras models hold the same weights, array for array, bit for bit.

    How a run recognises a candidate that is production's model again (the
    same plan and seed run twice into one ``--out``): exact equality, not a
    tolerance, because a model that differs at all is a change to judge.

    >>> class M:
    ...     def __init__(self, *w):
    ...         self.w = [np.asarray(x, np.float32) for x in w]
    ...     def get_weights(self):
    ...         return self.w
    >>> same_weights(M([1, 2], [3]), M([1, 2], [3])), same_weights(M([1, 2]), M([1, 2.5]))
    (True, False)
    """
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb, strict=True)
    )


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

    >>> from release_spec.strategy.rollout import RolloutController, default_rollout_plan
    >>> ctl = RolloutController(default_rollout_plan(), production="v1")
    >>> _ = ctl.start("v2")
    >>> rollout_verdict(ctl.abort("live pool exhausted"), alpha=0.05)
    'undecided'
    """
    if state.status == "completed":
        return "completed"
    return "harm" if state.p_value <= alpha else "undecided"


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _serve(
    models: Sequence[Any], x: FloatArray, batch_size: int
) -> list[tuple[IntArray, npt.NDArray[np.float64]]]:
    """Per model: predicted labels and, per request, its batch's wall time / the batch size.

    The models take turns batch by batch, so a load on the machine slows them alike:
    the rollout judges the canary's slow requests against the baseline's.
    """
    predicts = [predictor(m) for m in models]
    out = [(np.empty(len(x), np.int64), np.empty(len(x), np.float64)) for _ in models]
    for start in range(0, len(x), batch_size):
        for predict, (labels, latency) in zip(predicts, out, strict=True):
            t0 = time.perf_counter()
            probs = predict(x[start : start + batch_size])
            n = len(probs)
            latency[start : start + n] = (time.perf_counter() - t0) * 1000.0 / n
            labels[start : start + n] = np.argmax(probs, axis=1)
    return out


def _image_summaries(x: FloatArray) -> dict[str, list[float]]:
    """Scalar summaries of 28 x 28 images, the features the drift monitors compare."""
    img = np.asarray(x, np.float64).reshape(-1, 28, 28)
    mass = img.sum(axis=(1, 2)) + 1e-9
    rows, cols = np.arange(28.0)[None, :, None], np.arange(28.0)[None, None, :]
    r = (img * rows).sum(axis=(1, 2)) / mass
    c = (img * cols).sum(axis=(1, 2)) / mass
    spread = np.sqrt(
        (img * ((rows - r[:, None, None]) ** 2 + (cols - c[:, None, None]) ** 2)).sum(axis=(1, 2))
        / mass
    )
    return {
        "mean_intensity": img.mean(axis=(1, 2)).tolist(),
        "ink_fraction": (img > 0.5).mean(axis=(1, 2)).tolist(),
        "centre_row": r.tolist(),
        "centre_col": c.tolist(),
        "ink_spread": spread.tolist(),
    }


def _show_gates(echo: Echo, gates: Sequence[GateResult]) -> None:
    for g in gates:
        echo(f"  {'PASS' if g.passed else 'FAIL'} {g.name}: {g.detail}")


def _echo_attempt(echo: Echo, stage: str) -> Callable[[Attempt], None]:
    def show(a: Attempt) -> None:
        if a.number > 1:
            echo(f"  {stage}: {a.reason}")
        _show_gates(echo, a.gates)

    return show


def _stage_metrics(rec: StageRecord) -> dict[str, float]:
    """A stage's final gate values, stored with the model (``pretrain.accuracy`` ...)."""
    return {f"{rec.name}.{g.name.split('.')[-1]}": g.value for g in rec.gates}


@dataclass
class ReleaseRun:
    """One run of the reference release: what set-up made, and what each step found.

    `execute` runs the steps in order; each returns whether the run goes on.
    Build one with `ReleaseRun.start`.
    """

    plan: Plan
    out: Path
    scenario: str
    echo: Echo
    progress: bool
    store: ModelStore
    ds: Dataset
    hashes: dict[str, str]
    trainer: Trainer
    started: str
    clock: float
    production_before: VersionInfo | None
    stages: list[StageRecord] = field(default_factory=list)
    #: The registered pre-trained model (the candidate's parent).
    pretrained: Version | None = None
    #: The registered candidate, and production when the release stage began.
    candidate: Version | None = None
    production: Version | None = None
    #: Production's record, when the fine-tuned candidate turned out to be its model again.
    unchanged: VersionInfo | None = None
    evidence: Evidence = field(default_factory=Evidence)

    @classmethod
    def start(
        cls, plan: Plan, out: Path, *, scenario: str, echo: Echo, progress: bool
    ) -> ReleaseRun:
        """Set up: seed Keras, open (or create) the store under ``out``, load the data."""
        clock = time.perf_counter()
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        out.mkdir(parents=True, exist_ok=True)
        echo(f"[setup] scenario {scenario}, seed {plan.seed}, output {out}")
        import keras

        keras.utils.set_random_seed(plan.seed)
        store = ModelStore(out / "store", create=True)
        ds = load_dataset(plan.seed, plan.data.max_rotation, plan.data.target_train_copies)
        if scenario == "live-regression":
            ds = live_regression_dataset(ds, plan)
        echo(
            f"[data] source train {len(ds.source.train)}, target train {len(ds.target.train)}, "
            f"target test {len(ds.target.test)} (keras {keras.__version__})"
        )
        trainer = Trainer(plan, ds, scenario, echo)
        production_before = store.production()
        return cls(
            plan,
            out,
            scenario,
            echo,
            progress,
            store,
            ds,
            ds.hashes(),
            trainer,
            started,
            clock,
            production_before,
        )

    def execute(self) -> RunResult:
        """Run the steps until one says stop, then write the report."""
        for step in (self.pretrain, self.finetune, self.release, self.monitor):
            if not step():
                break
        return self.write_report()

    def _stage(
        self, name: str, hp: Hyperparameters, attempt: Any, max_attempts: int
    ) -> tuple[StageRecord, Any]:
        rec, model = run_stage(
            name,
            hp,
            attempt,
            max_attempts=max_attempts,
            overfit_gap=self.plan.optimise.overfit_gap,
            max_epochs=self.plan.optimise.max_epochs,
            on_attempt=_echo_attempt(self.echo, name),
        )
        self.stages.append(rec)
        self.echo(f"[{name}] {rec.state.value} after {len(rec.attempts)} attempt(s)")
        return rec, model

    def pretrain(self) -> bool:
        """Pre-train on the clean source domain; once its gates pass, register the model and,
        on a new store, promote it as the baseline production."""
        self.echo("[pretrain] running: classic network on the clean source domain")
        pp = self.plan.pretrain
        hp = Hyperparameters(pp.learning_rate, pp.epochs, pp.batch_size)
        rec, model = self._stage("pretrain", hp, self.trainer.pretrain, pp.max_attempts)
        if rec.state is not State.PASSED:
            return False
        info = self.store.save_model(model, metrics=_stage_metrics(rec), data_hashes=self.hashes)
        self.pretrained = Version(model, info)
        self.echo(f"[store] registered pre-trained model as {info.version}")
        if self.production_before is None:
            self.store.promote(info.version)
            self.echo(f"[store] no production yet: {info.version} promoted as the baseline")
        return True

    def finetune(self) -> bool:
        """Fine-tune from the pre-trained weights; once its gates pass, register the candidate,
        unless it has production's weights (then the run is ``unchanged``)."""
        assert self.pretrained is not None
        self.echo("[finetune] running: from the pre-trained weights on the target domain")
        fp = self.plan.finetune
        hp = Hyperparameters(
            fp.learning_rate,
            fp.epochs,
            fp.batch_size,
            early_stopping=fp.early_stopping,
            replay=fp.replay,
        )
        attempt = self.trainer.finetune(self.pretrained.model)
        rec, model = self._stage("finetune", hp, attempt, fp.max_attempts)
        if rec.state is not State.PASSED:
            return False
        info = self.store.production()
        assert info is not None
        self.production = Version(self.store.load_model(info.version), info)
        if same_weights(model, self.production.model):
            # The same plan and seed run again into the same --out: nothing to release.
            self.unchanged = info
            self.echo(
                f"[release] no change: the fine-tuned candidate has the same weights as "
                f"production {info.version}; nothing registered, nothing rolled out"
            )
            return False
        cand = self.store.save_model(
            model,
            metrics=_stage_metrics(rec),
            data_hashes=self.hashes,
            parent=self.pretrained.info.version,
        )
        self.candidate = Version(self.store.load_model(cand.version), cand)
        return True

    def release(self) -> bool:
        """The release stage's steps; promote the candidate if all passed. Go on (to
        monitoring) once the rollout has run, whatever it decided."""
        cand, prod = self._pair()
        self.echo(
            f"[release] running: candidate {cand.info.version} vs production {prod.info.version}"
        )
        rec = run_release(self.release_steps(), on_step=lambda _, g: _show_gates(self.echo, g))
        if rec.state is State.PASSED:
            self.store.promote(cand.info.version)
            rec = transition(rec, State.RELEASED)
            rec = replace(rec, notes=(f"promoted {cand.info.version} to production",))
        self.stages.append(rec)
        self.echo(f"[release] {rec.state.value}")
        return self.evidence.rollout is not None

    def release_steps(self) -> list[ReleaseStep]:
        """The release stage's steps, in order: offline gates, then the phased rollout."""
        return [
            ReleaseStep("functional", self.functional),
            ReleaseStep("performance", self.performance),
            ReleaseStep("stability", self.stability),
            ReleaseStep("rollout", self.rollout, on_failure=State.ROLLED_BACK),
        ]

    def _pair(self) -> tuple[Version, Version]:
        assert self.candidate is not None
        assert self.production is not None
        return self.candidate, self.production

    def functional(self) -> tuple[GateResult, ...]:
        """Shapes, probabilities and edge inputs on a probe of target validation images."""
        # Validation inputs: the test split is read once, by the performance gate.
        probe = self.ds.target.val.x[:FUNCTIONAL_PROBE]
        cand, _ = self._pair()
        return functional_gates(
            predictor(cand.model), probe, atol=self.plan.release.functional_atol
        )

    def performance(self) -> tuple[GateResult, ...]:
        """Non-inferiority to production on the target test split (its only reading)."""
        cand, prod = self._pair()
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

        cand, prod = self._pair()
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
                rss_mb=_rss_mb,
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
        cand, prod = self._pair()
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
        (cand_pred, cand_ms), (prod_pred, prod_ms) = _serve(
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
        last, c = state.events[-1], state.counts
        where = {
            "completed": "completed every step ("
            + " -> ".join(f"{s.share_pct:g} %" for s in phased.steps)
            + ")",
            "harm": f"rolled back at step {last.step} ({last.share_pct_before:g} % canary) on "
            "evidence of harm",
            "undecided": f"held at step {last.step} ({last.share_pct_before:g} % canary), then "
            "taken back: no evidence of harm, but non-inferiority was not shown either",
        }[verdict]
        detail = (
            f"{where}: {last.reason}; canary {c.canary_errors}/{c.canary_requests} errors, "
            f"baseline {c.baseline_errors}/{c.baseline_requests}"
        )
        done = verdict == "completed"
        alpha = rollout_plan.alpha
        return (GateResult("release.rollout", done, state.p_value, alpha, None, detail),)

    def monitor(self) -> bool:
        """Monitor the model serving after the rollout on its live traffic: input drift
        against the training inputs, per-class recall against target validation."""
        assert self.evidence.rollout is not None
        rollout = self.evidence.rollout
        cand, prod = self._pair()
        done = rollout.verdict == "completed"
        serving = cand if done else prod
        served = rollout.candidate_labels if done else rollout.production_labels
        val = self.ds.target.val
        reference = _image_summaries(self.ds.target.train.x)
        live = _image_summaries(rollout.pool.x)
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
        return True

    def outcome(self) -> RunOutcome:
        """What the run ended with, from its last stage (and, after a rollback, the verdict)."""
        last = self.stages[-1].state
        if self.unchanged is not None:
            return RunOutcome.UNCHANGED
        if last is State.RELEASED:
            return RunOutcome.RELEASED
        if last is State.ROLLED_BACK:
            rollout = self.evidence.rollout
            harm = rollout is None or rollout.verdict != "undecided"
            return RunOutcome.ROLLED_BACK if harm else RunOutcome.HELD
        return RunOutcome.STOPPED

    def report(self) -> Report:
        """The report of the run so far (its figure list is `write_report`'s to fill)."""
        import keras

        outcome, ev, plan = self.outcome(), self.evidence, self.plan
        production = self.store.production()
        test = self.ds.target.test
        released = None
        if outcome is RunOutcome.RELEASED and ev.test_predictions is not None:
            assert self.candidate is not None
            hits = int(np.sum(ev.test_predictions.candidate == test.labels))
            conf = plan.release.confidence
            interval = wilson_interval(hits, len(test), confidence=conf)
            released = ReleasedModel(
                self.candidate.info.version, hits / len(test), interval, conf, len(test)
            )
        # An unchanged candidate is not registered again: it is production's model, weight for
        # weight, so the report names production's version.
        registered = self.candidate.info if self.candidate else self.unchanged
        candidate = (
            CandidateReport(registered.version, registered.sha256, self.unchanged is not None)
            if registered
            else None
        )
        before = self.production_before
        return Report(
            schema_version=REPORT_SCHEMA_VERSION,
            outcome=outcome,
            scenario=self.scenario,
            seed=plan.seed,
            started=self.started,
            seconds=round(time.perf_counter() - self.clock, 2),
            versions=Versions(__version__, keras.__version__),
            stages=tuple(StageReport.of(st) for st in self.stages),
            failed_gates=tuple(g.name for st in self.stages for g in st.failed_gates),
            production=ProductionReport(
                version=production.version if production else None,
                sha256=production.sha256 if production else None,
                before=before.version if before else None,
                baseline_promoted=before is None,
                candidate_promoted=self.candidate is not None
                and production is not None
                and production.version == self.candidate.info.version,
            ),
            candidate=candidate,
            released_model=released,
            soak=ev.soak,
            data=DataReport(
                hashes=self.hashes,
                sizes={
                    f"{d.name}.{part}": len(getattr(d, part))
                    for d in (self.ds.source, self.ds.target)
                    for part in ("train", "val", "test")
                },
            ),
            plan=plan,
            rollout=ev.rollout.section(plan.phased_rollout) if ev.rollout else None,
            monitoring=ev.monitoring.section(plan.monitoring) if ev.monitoring else None,
            figures=(),
        )

    def confusion_matrices(self) -> dict[str, IntArray]:
        """On the target test split: production's and the candidate's once the performance
        step has read it, else the pre-trained model's (if any)."""
        test = self.ds.target.test
        pred = self.evidence.test_predictions
        if pred is not None:
            cand, prod = self._pair()
            return {
                f"production {prod.info.version}": confusion_matrix(
                    test.labels, pred.production, num_classes=10
                ),
                f"candidate {cand.info.version}": confusion_matrix(
                    test.labels, pred.candidate, num_classes=10
                ),
            }
        if self.pretrained is None:
            return {}
        labels = predicted_labels(self.pretrained.model, test.x)
        return {"pre-trained": confusion_matrix(test.labels, labels, num_classes=10)}

    def write_report(self) -> RunResult:
        """Write report.json, report.md and the figures; the run's result."""
        from release_spec.workbench.report import write_report

        report = write_report(
            self.report(),
            self.out,
            curves=self.trainer.curves,
            matrices=self.confusion_matrices(),
        )
        self.echo(f"[report] {self.out / 'report.md'}, {self.out / 'report.json'}")
        return RunResult(report.outcome, tuple(self.stages), report, self.out)


def run_pipeline(
    plan: Plan,
    out_dir: Path | str,
    *,
    scenario: str = "default",
    echo: Echo = print,
    progress: bool = True,
) -> RunResult:
    """Run every stage, write the report, figures and store under ``out_dir``.

    Args:
        plan: the release plan (see `release_spec.strategy.plan`).
        out_dir: output directory (created); the store lives in ``out_dir/store``.
        scenario: one of ``release_spec.strategy.plan.SCENARIOS``.
        echo: receives the status lines.
        progress: show a progress bar during the soak.

    Returns:
        A `RunResult`; its ``outcome`` is a `release_spec.workbench.report_schema.RunOutcome`.

    Raises:
        ValueError: unknown scenario.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    run = ReleaseRun.start(plan, Path(out_dir), scenario=scenario, echo=echo, progress=progress)
    return run.execute()
