"""The two training stages' attempts, and the data each scenario changes.

`Trainer` trains and judges one attempt of pre-training
(`Trainer.pretrain`) or fine-tuning (`Trainer.finetune`, from the
pre-trained model it is given) for `release_spec.strategy.stages.run_stage`,
and keeps every attempt's curves for the training-curves figure.

The scenarios' data, each built to hold on every seed (see
`release_spec.workbench.sweep`): ``default``; ``regression``, where the
fine-tuning data has one class's labels replaced by the next class (a
corrupted labelling batch): the candidate still beats the pre-trained model
on average, but cannot read that class, which the fine-tuning macro-F1 gate
stops whatever the sample; ``live-regression``, where a new intake channel
(a header bar above the digit, `release_spec.workbench.data.from_new_channel`)
contributes a mislabelled batch (every image class ``batch_label``) to the
fine-tuning data (`fine_tuning_split`). The offline validation set has no
channel image and the test set only ``test_share`` (1 %,
`live_regression_dataset`), too few for any gate to notice; ``live_share``
(half) of the live traffic comes through it (`live_pool`), where the
candidate errs nine times in ten and production as anywhere else: the phased
rollout must take it back, on evidence of harm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from release_spec.metrics import accuracy
from release_spec.strategy.gates import (
    GateResult,
    accuracy_gate,
    forgetting_gate,
    improvement_gate,
    macro_f1_gate,
)
from release_spec.strategy.plan import Plan
from release_spec.strategy.stages import AttemptOutcome, Hyperparameters, TrainingCurves
from release_spec.workbench.data import (
    Dataset,
    FloatArray,
    IntArray,
    LivePool,
    Split,
    from_new_channel,
    make_live_pool,
)
from release_spec.workbench.model import build_model, fine_tune_copy

__all__ = [
    "Echo",
    "Trainer",
    "fine_tuning_split",
    "live_pool",
    "live_regression_dataset",
    "predicted_labels",
    "predictor",
]

#: Receives the run's status lines (``print`` by default).
Echo = Callable[[str], None]


def predictor(model: Any) -> Callable[[FloatArray], FloatArray]:
    """A NumPy-in, NumPy-out inference function for a Keras model.

    A direct call in inference mode, not ``model.predict``: ``predict`` adds
    tens of milliseconds of per-call set-up that would swamp the soak's
    per-batch latencies.
    """

    def predict(x: FloatArray) -> FloatArray:
        return np.asarray(model(np.asarray(x, np.float32), training=False), np.float32)

    return predict


def predicted_labels(model: Any, x: FloatArray) -> IntArray:
    """The class ``model`` predicts for each row of ``x``."""
    out: IntArray = np.argmax(predictor(model)(x), axis=1).astype(np.int64)
    return out


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

    ``test_share`` of the target test images (3 of 251 by default) come
    through the new channel (`release_spec.workbench.data.from_new_channel`). The
    validation set predates the channel and has none: it also steers early
    stopping, and a few channel images there make the validation loss resist
    what the mislabelled batch teaches, which stops fine-tuning early (on seed
    2 the candidate then lost five source images and the forgetting gate
    stopped it). Everything else is the default scenario's data; the
    fine-tuning batch and the live traffic are `fine_tuning_split` and
    `live_pool`.
    """
    share, test = plan.live_regression.test_share, ds.target.test
    through = _through_new_channel(test.x, share, seed=ds.seed, stream=6)
    return replace(ds, target=replace(ds.target, test=replace(test, x=through)))


def live_pool(plan: Plan, ds: Dataset, scenario: str) -> LivePool:
    """The live requests; for ``live-regression``, ``live_share`` of them via the new channel."""
    pool = make_live_pool(ds, n=plan.phased_rollout.live_requests)
    if scenario != "live-regression":
        return pool
    share = plan.live_regression.live_share
    return replace(pool, x=_through_new_channel(pool.x, share, seed=ds.seed, stream=4))


def fine_tuning_split(plan: Plan, ds: Dataset, scenario: str) -> Split:
    """The target training split fine-tuning reads, with the scenario's mislabelled rows.

    ``regression``: every image of class ``corrupt_class`` relabelled as the
    next class, in place. ``live-regression``: the new channel's first batch,
    seeded copies of ``batch_fraction`` of the images with the header bar,
    every one labelled ``batch_label`` by the broken tool, appended. Any other
    scenario: the split as it is.
    """
    train = ds.target.train
    if scenario == "regression":
        k = plan.regression.corrupt_class
        rows, label, appended = np.flatnonzero(train.labels == k), (k + 1) % 10, False
    elif scenario == "live-regression":
        lr = plan.live_regression
        rows = np.random.default_rng([plan.seed, 3]).choice(
            len(train), round(lr.batch_fraction * len(train)), replace=False
        )
        label, appended = lr.batch_label, True
    else:
        return train
    x = from_new_channel(train.x[rows]) if appended else train.x[rows]
    y = np.zeros((rows.size, 10), np.float32)
    y[:, label] = 1.0
    if appended:
        return replace(train, x=np.concatenate([train.x, x]), y=np.concatenate([train.y, y]))
    relabelled = train.y.copy()
    relabelled[rows] = y
    return replace(train, y=relabelled)


class Trainer:
    """Training attempts for the two training stages, remembering every attempt's curves.

    Args:
        plan: the release plan.
        ds: the data set (the scenario's, see `live_regression_dataset`).
        scenario: one of ``release_spec.strategy.plan.SCENARIOS``.
        echo: receives a line per epoch.
    """

    def __init__(self, plan: Plan, ds: Dataset, scenario: str, echo: Echo) -> None:
        self.plan, self.ds, self.echo = plan, ds, echo
        #: Every attempt's curves, per stage, in order (the training-curves figure).
        self.curves: dict[str, list[TrainingCurves]] = {"pretrain": [], "finetune": []}
        self.target_train = fine_tuning_split(plan, ds, scenario)
        self._replay_rng = np.random.default_rng([plan.seed, 2])

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
            tuple(map(float, hist["accuracy"])), tuple(map(float, hist["val_accuracy"]))
        )
        self.curves[stage].append(curves)
        return curves

    def _macro_f1_gate(self, name: str, val: Split, pred: IntArray, min_lower: float) -> GateResult:
        """A stage's macro-F1 gate on its validation split, bootstrapped with the plan's seed."""
        return macro_f1_gate(
            name, val.labels, pred, min_lower=min_lower, seed=self.plan.seed, split=val.name
        )

    def pretrain(self, hp: Hyperparameters) -> AttemptOutcome[Any]:
        """One pre-training attempt on the source domain, judged on source validation."""
        src, pp = self.ds.source, self.plan.pretrain
        model = build_model(hp.learning_rate, hp.l2)
        curves = self._fit("pretrain", model, hp, src.train, src.val)
        pred = predicted_labels(model, src.val.x)
        gates = (
            accuracy_gate(
                "pretrain.accuracy",
                src.val.labels,
                pred,
                min_lower=pp.min_accuracy_lower,
                split=src.val.name,
            ),
            self._macro_f1_gate("pretrain.macro_f1", src.val, pred, pp.min_macro_f1_lower),
        )
        figures = {
            "train_accuracy": curves.train_accuracy[-1],
            "val_accuracy": curves.val_accuracy[-1],
            "epochs_run": float(len(curves.train_accuracy)),
        }
        return AttemptOutcome(model, gates, curves, figures)

    def finetune(self, pretrained: Any) -> Callable[[Hyperparameters], AttemptOutcome[Any]]:
        """Fine-tuning attempts from ``pretrained``, judged against it on validation."""
        src, tgt, fp = self.ds.source, self.ds.target, self.plan.finetune
        pre_target_val = predicted_labels(pretrained, tgt.val.x)
        pre_source_val = predicted_labels(pretrained, src.val.x)

        def attempt(hp: Hyperparameters) -> AttemptOutcome[Any]:
            train = self.target_train
            n_replay = round(hp.replay * len(train))
            if n_replay:
                pick = self._replay_rng.choice(
                    len(src.train), n_replay, replace=n_replay > len(src.train)
                )
                train = Split(
                    np.concatenate([train.x, src.train.x[pick]]),
                    np.concatenate([train.y, src.train.y[pick]]),
                )
            model = fine_tune_copy(pretrained, hp.learning_rate, hp.l2)
            curves = self._fit("finetune", model, hp, train, tgt.val)
            cand_val = predicted_labels(model, tgt.val.x)
            # Source validation, not test: this gate's failure drives a retry (run_stage
            # refuses a test split), and the test split is read once, by the release stage.
            cand_src = predicted_labels(model, src.val.x)
            gates = (
                improvement_gate(
                    "finetune.improvement",
                    tgt.val.labels,
                    cand_val,
                    pre_target_val,
                    alpha=fp.improvement_alpha,
                    split=tgt.val.name,
                ),
                self._macro_f1_gate("finetune.macro_f1", tgt.val, cand_val, fp.min_macro_f1_lower),
                forgetting_gate(
                    "finetune.no_forgetting",
                    src.val.labels,
                    cand_src,
                    pre_source_val,
                    margin=fp.forgetting_margin,
                    alpha=fp.forgetting_alpha,
                    split=src.val.name,
                ),
            )
            figures = {
                "target_val_accuracy": accuracy(tgt.val.labels, cand_val),
                "pretrained_target_val_accuracy": accuracy(tgt.val.labels, pre_target_val),
                "source_val_accuracy": accuracy(src.val.labels, cand_src),
                "pretrained_source_val_accuracy": accuracy(src.val.labels, pre_source_val),
                "train_examples": float(len(train)),
            }
            return AttemptOutcome(model, gates, curves, figures)

        return attempt
