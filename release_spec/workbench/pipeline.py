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

Outcomes (`Outcome`): ``released``; ``unchanged`` when the fine-tuned
candidate has production's weights (the same plan and seed run again into the
same ``--out``: nothing is registered or rolled out); ``stopped`` by an
offline gate; ``rolled_back`` when the rollout's judge found harm; ``held``
when the rollout ended without evidence either way (`rollout_verdict`).

The release stage's steps (`release_steps`) are functional,
performance, stability and the phased rollout
(`release_spec.strategy.rollout`): production serves the baseline share of the
embedded live pool, the candidate the canary share, an error is a
misclassification (the label is known in simulation), and the anytime-valid
judge may roll the canary back after any batch. Promotion to production
happens only when every step passed. Monitoring (`release_spec.strategy.monitoring`)
then compares the live pool with the training data and tracks the serving
model's per-class recall.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from release_spec import __version__
from release_spec.metrics import accuracy, confusion_matrix
from release_spec.statistics import wilson_interval
from release_spec.store.registry import ModelStore, VersionInfo
from release_spec.strategy.gates import (
    GateResult,
    SoakSummary,
    accuracy_gate,
    forgetting_gate,
    functional_gates,
    improvement_gate,
    macro_f1_gate,
    noninferiority_gate,
    soak,
    stability_gates,
    summarise_soak,
)
from release_spec.strategy.monitoring import MonitoringReport, monitor
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
    AttemptOutcome,
    Hyperparameters,
    ReleaseStep,
    StageRecord,
    State,
    TrainingCurves,
    run_release,
    run_stage,
    transition,
)
from release_spec.workbench.data import (
    Dataset,
    LivePool,
    Split,
    from_new_channel,
    load_dataset,
    make_live_pool,
)
from release_spec.workbench.model import build_model, fine_tune_copy

__all__ = [
    "ReleaseContext",
    "RunResult",
    "live_regression_dataset",
    "predictor",
    "release_steps",
    "run_pipeline",
]

#: What a run ended with (see `run_pipeline`); the CLI maps it to an exit code.
Outcome = Literal["released", "unchanged", "stopped", "held", "rolled_back"]
Echo = Callable[[str], None]
FloatArray = npt.NDArray[np.float32]
#: Size of the functional gate's probe batch (target validation images).
FUNCTIONAL_PROBE = 256
#: Version of the report.json layout (see the reference-release page).
REPORT_SCHEMA_VERSION = 1


def predictor(model: Any) -> Callable[[FloatArray], npt.NDArray[np.float32]]:
    """A NumPy-in, NumPy-out inference function for a Keras model.

    A direct call in inference mode, not ``model.predict``: ``predict`` adds
    tens of milliseconds of per-call set-up that would swamp the soak's
    per-batch latencies.
    """

    def predict(x: FloatArray) -> npt.NDArray[np.float32]:
        return np.asarray(model(np.asarray(x, np.float32), training=False), np.float32)

    return predict


def _labels_of(model: Any, x: FloatArray) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = np.argmax(predictor(model)(x), axis=1).astype(np.int64)
    return out


@dataclass
class ReleaseContext:
    """What the release steps work on (mutable: steps record what they measured)."""

    plan: Plan
    data: Dataset
    store: ModelStore
    candidate: Any
    candidate_info: VersionInfo
    production: Any
    production_info: VersionInfo
    echo: Echo
    progress: bool
    measurements: dict[str, Any] = field(default_factory=dict)
    scenario: str = "default"


@dataclass(frozen=True)
class RunResult:
    """The outcome of `run_pipeline` and the report dict written to report.json."""

    outcome: Outcome
    stages: tuple[StageRecord, ...]
    report: dict[str, Any]
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


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _functional_step(ctx: ReleaseContext) -> tuple[GateResult, ...]:
    # Validation inputs: the test split is read once, by the performance gate.
    probe = ctx.data.target.val.x[:FUNCTIONAL_PROBE]
    return functional_gates(predictor(ctx.candidate), probe, atol=ctx.plan.release.functional_atol)


def _performance_step(ctx: ReleaseContext) -> tuple[GateResult, ...]:
    test = ctx.data.target.test
    cand = _labels_of(ctx.candidate, test.x)
    prod = _labels_of(ctx.production, test.x)
    ctx.measurements["candidate_test_pred"] = cand
    ctx.measurements["production_test_pred"] = prod
    rp = ctx.plan.release
    return (
        noninferiority_gate(
            "release.noninferiority",
            test.labels,
            cand,
            prod,
            margin=rp.noninferiority_margin,
            alpha=rp.noninferiority_alpha,
            reference=f"production {ctx.production_info.version}",
            split=test.name,
        ),
    )


def _stability_step(ctx: ReleaseContext) -> tuple[GateResult, ...]:
    """Soak the candidate from ``soak_callers`` threads; judge errors, NaNs and trends.

    The reference workload each caller times after every candidate call is
    production's model on the same batch: the same runtime and serving path,
    already released, and called in the same windows, so machine load moves
    both (see `release_spec.strategy.gates.stability_gates`). Inputs are target
    validation images (the test split is read once, by the performance gate).
    """
    from tqdm import tqdm

    rp = ctx.plan.release
    with tqdm(desc="  soak", unit="pred", disable=not ctx.progress, leave=False) as bar:
        result = soak(
            predictor(ctx.candidate),
            ctx.data.target.val.x,
            seconds=rp.soak_seconds,
            max_predictions=rp.soak_max_predictions,
            batch_size=rp.soak_batch_size,
            callers=rp.soak_callers,
            reference=predictor(ctx.production),
            rss_mb=_rss_mb,
            on_batch=bar.update,
        )
    summary = summarise_soak(result, windows=rp.soak_windows)
    ctx.measurements["soak"] = summary
    return stability_gates(
        summary,
        max_rss_slope_mb_per_min=rp.max_rss_slope_mb_per_min,
        max_latency_drift=rp.max_latency_drift,
    )


def _live_pool(ctx: ReleaseContext) -> LivePool:
    """The live requests; for ``live-regression``, ``live_share`` of them via the new channel."""
    rp, ds = ctx.plan.phased_rollout, ctx.data
    pool = make_live_pool(ds, n=rp.live_requests)
    if ctx.scenario != "live-regression":
        return pool
    share = ctx.plan.live_regression.live_share
    return replace(pool, x=_through_new_channel(pool.x, share, seed=ds.seed, stream=4))


def _through_new_channel(x: FloatArray, share: float, *, seed: int, stream: int) -> FloatArray:
    """``x`` with a seeded ``share`` of its rows (rounded) arriving through the new channel."""
    rows = np.random.default_rng([seed, stream]).choice(
        len(x), round(share * len(x)), replace=False
    )
    out = x.copy()
    out[rows] = from_new_channel(x[rows])
    return out


def live_regression_dataset(ds: Dataset, plan: Plan) -> Dataset:
    """The data of ``--scenario live-regression``: a test set refreshed during the pilot.

    ``test_share`` of the target test images (2 of 233 by default) come
    through the new channel (`release_spec.workbench.data.from_new_channel`). The
    validation set predates the channel and has none: it also steers early
    stopping, and a few channel images there make the validation loss resist
    what the mislabelled batch teaches, which stops fine-tuning early (on seed
    2 the candidate then lost five source images and the forgetting gate
    stopped it). Everything else is the default scenario's data; the
    fine-tuning batch and the live traffic are added by the trainer and the
    rollout step.
    """
    share, test = plan.live_regression.test_share, ds.target.test
    through = _through_new_channel(test.x, share, seed=ds.seed, stream=6)
    return replace(ds, target=replace(ds.target, test=replace(test, x=through)))


def _serve(
    models: Sequence[Any], x: FloatArray, batch_size: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
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


RolloutVerdict = Literal["completed", "harm", "undecided"]


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


def _rollout_step(ctx: ReleaseContext) -> tuple[GateResult, ...]:
    rp = ctx.plan.phased_rollout
    plan = rp.rollout_plan()
    # The planner: can each step's bake reach the fixed-horizon sample size for a
    # regression of one margin above production's error on target validation?
    val = ctx.data.target.val
    p0 = float(np.mean(_labels_of(ctx.production, val.x) != val.labels))
    p0 = min(max(p0, 1e-3), 0.5)
    forecast = forecast_steps(plan, baseline_error=p0, regression=plan.margin)
    for f in forecast:
        ctx.echo(
            f"  rollout plan step {f.step} ({f.share_pct:g} %): about "
            f"{f.expected_canary_requests:.0f} canary requests in the bake, "
            f"{f.required_canary_requests} to detect {p0:.3f} -> {p0 + plan.margin:.3f}"
            + (f"; WARNING {f.warning}" if f.warning else "")
        )
    pool = _live_pool(ctx)
    (cand, cand_ms), (prod, prod_ms) = _serve(
        (ctx.candidate, ctx.production), pool.x, rp.batch_size
    )
    requests = [
        LiveRequest(str(i), bool(c != y), bool(p != y), float(cl), float(pl))
        for i, c, p, y, cl, pl in zip(
            pool.ids, cand, prod, pool.labels, cand_ms, prod_ms, strict=True
        )
    ]
    ctl = RolloutController(plan, production=ctx.production_info.version)
    ctl.start(ctx.candidate_info.version)
    state = replay(ctl, requests, batch_size=rp.batch_size)
    if not state.status.terminal:
        state = ctl.abort(
            f"live pool exhausted at step {state.step} ({state.canary_share_pct:g} %) after "
            f"{state.counts.requests} requests, before the rollout completed "
            f"(status {state.status})"
        )
    for e in state.events:
        ctx.echo(f"  rollout {e.kind} (look {e.look}): {e.reason}")
    done = state.status == "completed"
    serving, serving_model, served = (
        (ctx.candidate, ctx.candidate_info, cand)
        if done
        else (ctx.production, ctx.production_info, prod)
    )
    ref_summaries, live_summaries = (
        _image_summaries(ctx.data.target.train.x),
        _image_summaries(pool.x),
    )
    report = monitor(
        reference_summaries=ref_summaries,
        live_summaries=live_summaries,
        y_true=pool.labels.tolist(),
        y_pred=served.tolist(),
        reference_true=val.labels.tolist(),
        reference_pred=_labels_of(serving, val.x).tolist(),
        num_classes=10,
        thresholds=ctx.plan.monitoring.thresholds(),
    )
    for a in report.alerts:
        ctx.echo(f"  monitoring {a.severity}: {a.message}")
    ctx.measurements.update(
        rollout=state,
        rollout_forecast=(p0, forecast),
        rollout_pool=pool,
        monitoring=report,
        monitoring_model=serving_model.version,
        monitoring_reference=ref_summaries,
        monitoring_live=live_summaries,
    )
    last = state.events[-1]
    c = state.counts
    verdict = rollout_verdict(state, plan.alpha)
    ctx.measurements["rollout_verdict"] = verdict
    where = {
        "completed": "completed every step ("
        + " -> ".join(f"{s.share_pct:g} %" for s in rp.steps)
        + ")",
        "harm": f"rolled back at step {last.step} ({last.share_pct_before:g} % canary) on evidence "
        "of harm",
        "undecided": f"held at step {last.step} ({last.share_pct_before:g} % canary), then taken "
        "back: no evidence of harm, but non-inferiority was not shown either",
    }[verdict]
    detail = (
        f"{where}: {last.reason}; canary {c.canary_errors}/{c.canary_requests} errors, "
        f"baseline {c.baseline_errors}/{c.baseline_requests}"
    )
    return (
        GateResult(
            "release.rollout",
            done,
            state.p_value,
            plan.alpha,
            None,
            detail,
        ),
    )


def release_steps(ctx: ReleaseContext) -> list[ReleaseStep]:
    """The release stage's steps, in order: offline gates, then the phased rollout."""
    return [
        ReleaseStep("functional", lambda: _functional_step(ctx)),
        ReleaseStep("performance", lambda: _performance_step(ctx)),
        ReleaseStep("stability", lambda: _stability_step(ctx)),
        ReleaseStep("rollout", lambda: _rollout_step(ctx), on_failure=State.ROLLED_BACK),
    ]


class _Trainer:
    """Training attempts for the two training stages, remembering every attempt's curves."""

    def __init__(self, plan: Plan, ds: Dataset, scenario: str, echo: Echo) -> None:
        self.plan, self.ds, self.echo = plan, ds, echo
        self.curves: dict[str, list[TrainingCurves]] = {"pretrain": [], "finetune": []}
        self.rng = np.random.default_rng([plan.seed, 2])
        self.target_train = ds.target.train
        if scenario == "regression":
            k = plan.regression.corrupt_class
            y = self.target_train.y.copy()
            y[self.target_train.labels == k] = np.eye(10, dtype=np.float32)[(k + 1) % 10]
            self.target_train = Split(self.target_train.x, y)
        elif scenario == "live-regression":
            # The new channel's first batch: copies of target training images with the header
            # bar, every one labelled batch_label by the broken tool.
            lr, tr = plan.live_regression, self.target_train
            rows = np.random.default_rng([plan.seed, 3]).choice(
                len(tr), round(lr.batch_fraction * len(tr)), replace=False
            )
            wrong = np.zeros((rows.size, 10), np.float32)
            wrong[:, lr.batch_label] = 1.0
            self.target_train = replace(
                tr,
                x=np.concatenate([tr.x, from_new_channel(tr.x[rows])]),
                y=np.concatenate([tr.y, wrong]),
            )
        self.pretrained: Any = None
        self.pre_target_val: npt.NDArray[np.int64] | None = None
        self.pre_source_val: npt.NDArray[np.int64] | None = None

    def _fit(
        self, stage: str, model: Any, hp: Hyperparameters, train: Split, val: Split
    ) -> TrainingCurves:
        import keras

        echo, attempt = self.echo, len(self.curves[stage]) + 1

        class Progress(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                logs = logs or {}
                echo(
                    f"  {stage} attempt {attempt} epoch {epoch + 1:>2}/{hp.epochs}: "
                    f"loss {logs.get('loss', float('nan')):.4f} "
                    f"accuracy {logs.get('accuracy', float('nan')):.4f} "
                    f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f}"
                )

        callbacks: list[Any] = [Progress()]
        if hp.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=2, restore_best_weights=True
                )
            )
        hist = model.fit(
            train.x,
            train.y,
            epochs=hp.epochs,
            batch_size=hp.batch_size,
            validation_data=(val.x, val.y),
            callbacks=callbacks,
            verbose=0,
        ).history
        curves = TrainingCurves(
            tuple(map(float, hist["accuracy"])),
            tuple(map(float, hist["val_accuracy"])),
            tuple(map(float, hist["loss"])),
            tuple(map(float, hist["val_loss"])),
        )
        self.curves[stage].append(curves)
        return curves

    def pretrain(self, hp: Hyperparameters) -> AttemptOutcome[Any]:
        src, pp = self.ds.source, self.plan.pretrain
        model = build_model(hp.learning_rate, hp.l2)
        curves = self._fit("pretrain", model, hp, src.train, src.val)
        pred = _labels_of(model, src.val.x)
        gates = (
            accuracy_gate(
                "pretrain.accuracy",
                src.val.labels,
                pred,
                min_lower=pp.min_accuracy_lower,
                split=src.val.name,
            ),
            macro_f1_gate(
                "pretrain.macro_f1",
                src.val.labels,
                pred,
                min_lower=pp.min_macro_f1_lower,
                seed=self.plan.seed,
                split=src.val.name,
            ),
        )
        figures = {
            "train_accuracy": curves.train_accuracy[-1],
            "val_accuracy": curves.val_accuracy[-1],
            "epochs_run": float(len(curves.train_accuracy)),
        }
        return AttemptOutcome(model, gates, curves, figures)

    def finetune(self, hp: Hyperparameters) -> AttemptOutcome[Any]:
        src, tgt, fp = self.ds.source, self.ds.target, self.plan.finetune
        if self.pre_target_val is None or self.pre_source_val is None:
            self.pre_target_val = _labels_of(self.pretrained, tgt.val.x)
            self.pre_source_val = _labels_of(self.pretrained, src.val.x)
        train = self.target_train
        n_replay = round(hp.replay * len(train))
        if n_replay:
            pick = self.rng.choice(len(src.train), n_replay, replace=n_replay > len(src.train))
            train = Split(
                np.concatenate([train.x, src.train.x[pick]]),
                np.concatenate([train.y, src.train.y[pick]]),
            )
        model = fine_tune_copy(self.pretrained, hp.learning_rate, hp.l2)
        curves = self._fit("finetune", model, hp, train, tgt.val)
        cand_val = _labels_of(model, tgt.val.x)
        # Source validation, not test: this gate's failure drives a retry (run_stage refuses a
        # test split), and the test split is read once, by the release stage's final gate.
        cand_src = _labels_of(model, src.val.x)
        gates = (
            improvement_gate(
                "finetune.improvement",
                tgt.val.labels,
                cand_val,
                self.pre_target_val,
                alpha=fp.improvement_alpha,
                split=tgt.val.name,
            ),
            macro_f1_gate(
                "finetune.macro_f1",
                tgt.val.labels,
                cand_val,
                min_lower=fp.min_macro_f1_lower,
                seed=self.plan.seed,
                split=tgt.val.name,
            ),
            forgetting_gate(
                "finetune.no_forgetting",
                src.val.labels,
                cand_src,
                self.pre_source_val,
                margin=fp.forgetting_margin,
                alpha=fp.forgetting_alpha,
                split=src.val.name,
            ),
        )
        figures = {
            "target_val_accuracy": accuracy(tgt.val.labels, cand_val),
            "pretrained_target_val_accuracy": accuracy(tgt.val.labels, self.pre_target_val),
            "source_val_accuracy": accuracy(src.val.labels, cand_src),
            "pretrained_source_val_accuracy": accuracy(src.val.labels, self.pre_source_val),
            "train_examples": float(len(train)),
        }
        return AttemptOutcome(model, gates, curves, figures)


def _echo_attempt(echo: Echo, stage: str) -> Callable[[Attempt], None]:
    def show(a: Attempt) -> None:
        if a.number > 1:
            echo(f"  {stage}: {a.reason}")
        for g in a.gates:
            echo(f"  {'PASS' if g.passed else 'FAIL'} {g.name}: {g.detail}")

    return show


def _echo_step(echo: Echo) -> Callable[[str, Sequence[GateResult]], None]:
    def show(step: str, gates: Sequence[GateResult]) -> None:
        for g in gates:
            echo(f"  {'PASS' if g.passed else 'FAIL'} {g.name}: {g.detail}")

    return show


def _hp(section: Any) -> Hyperparameters:
    return Hyperparameters(
        learning_rate=section.learning_rate,
        epochs=section.epochs,
        batch_size=section.batch_size,
        replay=getattr(section, "replay", 0.0),
        early_stopping=getattr(section, "early_stopping", False),
    )


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
        A `RunResult`; ``outcome`` is ``released``, ``stopped`` or ``rolled_back``.

    Raises:
        ValueError: unknown scenario.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN kernels reorder float sums, so results would differ between CPUs; the tiny
    # network loses nothing measurable without them. A value set by the user wins.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    echo(f"[setup] scenario {scenario}, seed {plan.seed}, output {out}")
    import keras

    keras.utils.set_random_seed(plan.seed)
    store = ModelStore(out / "store", create=True)
    ds = load_dataset(plan.seed, plan.data.max_rotation, plan.data.target_train_copies)
    if scenario == "live-regression":
        ds = live_regression_dataset(ds, plan)
    hashes = ds.hashes()
    echo(
        f"[data] source train {len(ds.source.train)}, target train {len(ds.target.train)}, "
        f"target test {len(ds.target.test)} (keras {keras.__version__})"
    )
    trainer = _Trainer(plan, ds, scenario, echo)
    stages: list[StageRecord] = []
    production_before = store.production()
    candidate_info: VersionInfo | None = None
    unchanged: VersionInfo | None = None
    release_ctx: ReleaseContext | None = None

    echo("[pretrain] running: classic network on the clean source domain")
    pre_rec, pretrained = run_stage(
        "pretrain",
        _hp(plan.pretrain),
        trainer.pretrain,
        max_attempts=plan.pretrain.max_attempts,
        overfit_gap=plan.optimise.overfit_gap,
        max_epochs=plan.optimise.max_epochs,
        on_attempt=_echo_attempt(echo, "pretrain"),
    )
    stages.append(pre_rec)
    echo(f"[pretrain] {pre_rec.state.value} after {len(pre_rec.attempts)} attempt(s)")

    if pre_rec.state is State.PASSED:
        trainer.pretrained = pretrained
        pre_info = store.save_model(
            pretrained,
            metrics={f"pretrain.{g.name.split('.')[-1]}": g.value for g in pre_rec.gates},
            data_hashes=hashes,
        )
        echo(f"[store] registered pre-trained model as {pre_info.version}")
        if production_before is None:
            store.promote(pre_info.version)
            echo(f"[store] no production yet: {pre_info.version} promoted as the baseline")
        echo("[finetune] running: from the pre-trained weights on the target domain")
        ft_rec, candidate = run_stage(
            "finetune",
            _hp(plan.finetune),
            trainer.finetune,
            max_attempts=plan.finetune.max_attempts,
            overfit_gap=plan.optimise.overfit_gap,
            max_epochs=plan.optimise.max_epochs,
            on_attempt=_echo_attempt(echo, "finetune"),
        )
        stages.append(ft_rec)
        echo(f"[finetune] {ft_rec.state.value} after {len(ft_rec.attempts)} attempt(s)")
        if ft_rec.state is State.PASSED:
            production_info = store.production()
            assert production_info is not None
            production = store.load_model(production_info.version)
            if same_weights(candidate, production):
                # The same plan and seed run again into the same --out: nothing to release.
                unchanged = production_info
                echo(
                    f"[release] no change: the fine-tuned candidate has the same weights as "
                    f"production {production_info.version}; nothing registered, nothing rolled out"
                )
            else:
                candidate_info = store.save_model(
                    candidate,
                    metrics={f"finetune.{g.name.split('.')[-1]}": g.value for g in ft_rec.gates},
                    data_hashes=hashes,
                    parent=pre_info.version,
                )
                echo(
                    f"[release] running: candidate {candidate_info.version} "
                    f"vs production {production_info.version}"
                )
                release_ctx = ReleaseContext(
                    plan=plan,
                    data=ds,
                    store=store,
                    candidate=store.load_model(candidate_info.version),
                    candidate_info=candidate_info,
                    production=production,
                    production_info=production_info,
                    echo=echo,
                    progress=progress,
                    scenario=scenario,
                )
                rel_rec = run_release(release_steps(release_ctx), on_step=_echo_step(echo))
                if rel_rec.state is State.PASSED:
                    store.promote(candidate_info.version)
                    rel_rec = transition(rel_rec, State.RELEASED)
                    rel_rec = replace(
                        rel_rec, notes=(f"promoted {candidate_info.version} to production",)
                    )
                stages.append(rel_rec)
                echo(f"[release] {rel_rec.state.value}")

    outcome: Outcome
    last = stages[-1].state
    if unchanged is not None:
        outcome = "unchanged"
    elif last is State.RELEASED:
        outcome = "released"
    elif last is State.ROLLED_BACK:
        harm = release_ctx is None or release_ctx.measurements.get("rollout_verdict") != "undecided"
        outcome = "rolled_back" if harm else "held"
    else:
        outcome = "stopped"

    report = _report_dict(
        plan=plan,
        scenario=scenario,
        started=started,
        seconds=time.perf_counter() - t_start,
        outcome=outcome,
        stages=stages,
        ds=ds,
        hashes=hashes,
        store=store,
        production_before=production_before,
        candidate_info=candidate_info,
        unchanged=unchanged,
        ctx=release_ctx,
    )
    from release_spec.workbench.report import write_report

    matrices = _confusion_matrices(ds, trainer, release_ctx)
    write_report(report, out, curves=trainer.curves, matrices=matrices)
    echo(f"[report] {out / 'report.md'}, {out / 'report.json'}")
    return RunResult(outcome, tuple(stages), report, out)


def _confusion_matrices(
    ds: Dataset, trainer: _Trainer, ctx: ReleaseContext | None
) -> dict[str, npt.NDArray[np.int64]]:
    test = ds.target.test
    out: dict[str, npt.NDArray[np.int64]] = {}
    if ctx is not None and "candidate_test_pred" in ctx.measurements:
        out[f"production {ctx.production_info.version}"] = confusion_matrix(
            test.labels, ctx.measurements["production_test_pred"], num_classes=10
        )
        out[f"candidate {ctx.candidate_info.version}"] = confusion_matrix(
            test.labels, ctx.measurements["candidate_test_pred"], num_classes=10
        )
    elif trainer.pretrained is not None:
        out["pre-trained"] = confusion_matrix(
            test.labels, _labels_of(trainer.pretrained, test.x), num_classes=10
        )
    return out


def _report_dict(
    *,
    plan: Plan,
    scenario: str,
    started: str,
    seconds: float,
    outcome: Outcome,
    stages: list[StageRecord],
    ds: Dataset,
    hashes: dict[str, str],
    store: ModelStore,
    production_before: VersionInfo | None,
    candidate_info: VersionInfo | None,
    unchanged: VersionInfo | None,
    ctx: ReleaseContext | None,
) -> dict[str, Any]:
    import keras

    production = store.production()
    test = ds.target.test
    released: dict[str, Any] | None = None
    if outcome == "released" and ctx is not None:
        pred = ctx.measurements["candidate_test_pred"]
        hits = int(np.sum(pred == test.labels))
        conf = plan.release.confidence
        lo, hi = wilson_interval(hits, len(test), confidence=conf)
        released = {
            "version": ctx.candidate_info.version,
            "target_test_accuracy": hits / len(test),
            "interval": [lo, hi],
            "confidence": conf,
            "n": len(test),
        }
    soak = ctx.measurements.get("soak") if ctx is not None else None
    soak_info = soak.to_dict() if isinstance(soak, SoakSummary) else None
    # An unchanged candidate is not registered again: it is production's model, weight for
    # weight, so the report names production's version.
    registered = candidate_info or unchanged
    candidate = (
        {
            "version": registered.version,
            "sha256": registered.sha256,
            "identical_to_production": unchanged is not None,
        }
        if registered
        else None
    )
    failed = [g.name for st in stages for g in st.failed_gates]
    rollout = _rollout_report(ctx)
    monitoring = _monitoring_report(ctx)
    figures = ["training_curves.png", "confusion_matrices.png", "gate_summary.png"]
    figures += ["rollout.png"] if rollout else []
    figures += ["drift.png"] if monitoring else []
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "outcome": outcome,
        "scenario": scenario,
        "seed": plan.seed,
        "started": started,
        "seconds": round(seconds, 2),
        "versions": {"release_spec": __version__, "keras": keras.__version__},
        "stages": [st.to_dict() for st in stages],
        "failed_gates": failed,
        "production": {
            "version": production.version if production else None,
            "sha256": production.sha256 if production else None,
            "before": production_before.version if production_before else None,
            "baseline_promoted": production_before is None,
            "candidate_promoted": candidate_info is not None
            and production is not None
            and production.version == candidate_info.version,
        },
        "candidate": candidate,
        "released_model": released,
        "soak": soak_info,
        "data": {
            "hashes": hashes,
            "sizes": {
                f"{d.name}.{part}": len(getattr(d, part))
                for d in (ds.source, ds.target)
                for part in ("train", "val", "test")
            },
        },
        "plan": plan.to_dict(),
        "rollout": rollout,
        "monitoring": monitoring,
        "figures": figures,
    }


def _counts_dict(c: Any) -> dict[str, int]:
    return {
        "canary_requests": c.canary_requests,
        "canary_errors": c.canary_errors,
        "baseline_requests": c.baseline_requests,
        "baseline_errors": c.baseline_errors,
    }


def _rollout_report(ctx: ReleaseContext | None) -> dict[str, Any] | None:
    """The rollout's plan, timeline (share and p-value per look), events and evidence."""
    if ctx is None or not isinstance(ctx.measurements.get("rollout"), RolloutState):
        return None
    state: RolloutState = ctx.measurements["rollout"]
    pool: LivePool = ctx.measurements["rollout_pool"]
    rp = ctx.plan.phased_rollout
    minutes = {r.look: r.minutes for r in state.history}
    events = [
        {
            "kind": e.kind,
            "look": e.look,
            "minutes": minutes.get(e.look, 0.0),
            "step": e.step,
            "share_before": e.share_pct_before,
            "share_after": e.share_pct_after,
            "reason": e.reason,
            "p_value": e.p_value,
            "upper_bound": e.upper_bound,
            "counts": _counts_dict(e.counts),
        }
        for e in state.events
    ]
    abort = next((e for e in state.events if e.kind == "abort"), None)
    verdict = ctx.measurements["rollout_verdict"]
    # Where the canary stood when it was taken back, and how much live traffic it had served.
    end = (
        {
            "step": abort.step,
            "share": abort.share_pct_before,
            "reason": abort.reason,
            "canary_requests": abort.counts.canary_requests,
        }
        if abort
        else None
    )
    p0, forecast = ctx.measurements["rollout_forecast"]
    return {
        "status": state.status,
        "candidate": ctx.candidate_info.version,
        "production": ctx.production_info.version,
        "alpha": rp.alpha,
        "margin": rp.margin,
        "steps": [
            {
                "share": s.share_pct,
                "min_canary_requests": s.min_canary_requests,
                "max_bake_minutes": s.max_bake_minutes,
            }
            for s in rp.steps
        ],
        "forecast": {
            "baseline_error": p0,
            "regression": rp.margin,
            "steps": [dataclasses.asdict(f) for f in forecast],
        },
        "live_requests": len(pool),
        "live_class_counts": np.bincount(pool.labels, minlength=10).tolist(),
        "requests_served": state.counts.requests,
        "counts": _counts_dict(state.counts),
        "p_value": state.p_value,
        "upper_bound": state.upper_bound,
        "verdict": verdict,
        "rolled_back": end if verdict == "harm" else None,
        "held": end if verdict == "undecided" else None,
        "events": events,
        "timeline": {
            "look": [r.look for r in state.history],
            "minutes": [r.minutes for r in state.history],
            "share": [r.share_pct for r in state.history],
            "p_value": [r.p_value for r in state.history],
            "upper_bound": [r.upper_bound for r in state.history],
        },
    }


def _monitoring_report(ctx: ReleaseContext | None) -> dict[str, Any] | None:
    """Drift per summary (with histograms for the figure), recall windows and alerts."""
    if ctx is None or not isinstance(ctx.measurements.get("monitoring"), MonitoringReport):
        return None
    m: MonitoringReport = ctx.measurements["monitoring"]
    ref, live = ctx.measurements["monitoring_reference"], ctx.measurements["monitoring_live"]
    drift = []
    for d in m.drift:
        r, lv = np.asarray(ref[d.feature]), np.asarray(live[d.feature])
        edges = np.linspace(min(r.min(), lv.min()), max(r.max(), lv.max()), 31)
        drift.append(
            {
                "feature": d.feature,
                "psi": d.psi,
                "ks_statistic": d.ks_statistic,
                "ks_p_value": d.ks_p_value,
                "ks_p_adjusted": d.ks_p_adjusted,
                "histogram": {
                    "edges": edges.tolist(),
                    "reference": (np.histogram(r, edges)[0] / r.size).tolist(),
                    "live": (np.histogram(lv, edges)[0] / lv.size).tolist(),
                },
            }
        )
    return {
        "model": ctx.measurements["monitoring_model"],
        "reference": "target-domain training inputs; recall reference: target validation",
        "thresholds": dataclasses.asdict(ctx.plan.monitoring),
        "drift": drift,
        "recall": [dataclasses.asdict(r) for r in m.recall],
        "alerts": [dataclasses.asdict(a) for a in m.alerts],
    }
