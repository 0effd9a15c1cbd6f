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

Scenarios (``default``, ``regression``, ``live-regression``) differ only in
their data, built by `release_spec.workbench.training`; each is built to hold
on every seed (see `release_spec.workbench.sweep`).

Outcomes (`release_spec.workbench.report_schema.RunOutcome`): ``released``;
``unchanged`` when the fine-tuned candidate has production's weights (the
same plan and seed run again into the same ``--out``: nothing is registered
or rolled out); ``stopped`` by an offline gate; ``rolled_back`` when the
rollout's judge found harm; ``held`` when the rollout ended without
evidence either way (`release_spec.workbench.release.rollout_verdict`).

The run (`ReleaseRun`) is a flat sequence of named steps over one object,
each returning whether the run goes on: pre-train (and register the model),
fine-tune (and register the candidate), release, monitor; then the report.
The release stage and monitoring are `release_spec.workbench.release.ReleaseStage`.
What the steps measure is typed evidence (`release_spec.workbench.evidence`);
the report is a `release_spec.workbench.report_schema.Report`.

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

from release_spec import __version__
from release_spec.metrics import confusion_matrix
from release_spec.store.registry import ModelStore, VersionInfo
from release_spec.strategy.gates import GateResult
from release_spec.strategy.plan import SCENARIOS, Plan
from release_spec.strategy.stages import (
    Attempt,
    Hyperparameters,
    StageRecord,
    State,
    run_release,
    run_stage,
    transition,
)
from release_spec.workbench.data import Dataset, IntArray, load_dataset
from release_spec.workbench.evidence import Evidence
from release_spec.workbench.model import same_weights
from release_spec.workbench.release import ReleaseStage, Version, rollout_verdict
from release_spec.workbench.report_schema import (
    REPORT_SCHEMA_VERSION,
    CandidateReport,
    DataReport,
    ProductionReport,
    Report,
    RunOutcome,
    StageReport,
    Versions,
)
from release_spec.workbench.training import (
    Echo,
    Trainer,
    live_regression_dataset,
    predicted_labels,
)

# rollout_verdict (release.py) and same_weights (model.py) are importable here too, where
# they always were.
__all__ = [
    "TENSORFLOW_ENVIRONMENT",
    "ReleaseRun",
    "RunResult",
    "rollout_verdict",
    "run_pipeline",
    "same_weights",
]

#: What a process that runs the workbench sets (unless already set) before it imports
#: TensorFlow: quiet C++ logs, and no oneDNN kernels, which reorder float sums so that
#: results would differ between CPUs (the tiny network loses nothing measurable without
#: them). `release_spec.cli` and the sweep's entry point apply it; a library function
#: cannot, because TensorFlow reads it once, at import.
TENSORFLOW_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


@dataclass(frozen=True)
class RunResult:
    """The outcome of `run_pipeline`, its stage records and the report written."""

    outcome: RunOutcome
    stages: tuple[StageRecord, ...]
    report: Report
    out_dir: Path


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
    #: The registered candidate against production, once fine-tuning has produced one.
    release_stage: ReleaseStage | None = None
    #: Production's record, when the fine-tuned candidate turned out to be its model again.
    unchanged: VersionInfo | None = None
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def candidate(self) -> Version | None:
        """The registered candidate, if any."""
        return self.release_stage.candidate if self.release_stage else None

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
        production = Version(self.store.load_model(info.version), info)
        if same_weights(model, production.model):
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
        candidate = Version(self.store.load_model(cand.version), cand)
        self.release_stage = ReleaseStage(
            self.plan,
            self.ds,
            self.scenario,
            candidate,
            production,
            self.echo,
            self.progress,
            self.evidence,
        )
        return True

    def release(self) -> bool:
        """The release stage's steps; promote the candidate if all passed. Go on (to
        monitoring) once the rollout has run, whatever it decided."""
        stage = self.release_stage
        assert stage is not None
        cand, prod = stage.candidate, stage.production
        self.echo(
            f"[release] running: candidate {cand.info.version} vs production {prod.info.version}"
        )
        rec = run_release(stage.steps(), on_step=lambda _, g: _show_gates(self.echo, g))
        if rec.state is State.PASSED:
            self.store.promote(cand.info.version)
            rec = transition(rec, State.RELEASED)
            rec = replace(rec, notes=(f"promoted {cand.info.version} to production",))
        self.stages.append(rec)
        self.echo(f"[release] {rec.state.value}")
        return self.evidence.rollout is not None

    def monitor(self) -> bool:
        """Monitor the model serving after the rollout (`ReleaseStage.monitor`)."""
        assert self.release_stage is not None
        self.release_stage.monitor()
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
        released = None
        if outcome is RunOutcome.RELEASED and ev.test_predictions is not None:
            assert self.candidate is not None
            released = ev.test_predictions.released_model(
                self.candidate.info.version, self.ds.target.test.labels, plan.release.confidence
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
            data=DataReport(hashes=self.hashes, sizes=self.ds.sizes()),
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
        if pred is not None and self.release_stage is not None:
            cand, prod = self.release_stage.candidate, self.release_stage.production
            return pred.confusion_matrices(test.labels, cand.info.version, prod.info.version)
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
