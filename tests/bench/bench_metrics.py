"""Benchmark of release_spec.metrics at N = 10^7 int64 labels, K = 10.

Targets (issue 2), all with the input validation included:

* confusion matrix + macro precision/recall/F1 (``ConfusionMatrix.update``
  then ``precision``, ``recall``, ``f1_score``): <= 3x one read pass over both
  label arrays (``np.add.reduce`` on each); >= 25x faster than scikit-learn's
  ``precision_recall_fscore_support(labels=range(K), average="macro")``;
  >= 30x faster than ``keras.metrics.F1Score(average="macro")``.
* ``accuracy``: <= 2x the read pass.

How the peers are fed. scikit-learn gets the same int64 label vectors. Keras
gets what a Keras user has: one-hot truth and one-hot predictions, float32,
N x K, built before the clock starts (so the peer's time excludes the
conversion), passed to ``update_state`` in batches of 2^16 rows followed by one
``result()``, as an evaluation loop does. Batches are also the faster way to
call it here: one ``update_state`` over all 10^7 rows took ~1.5x longer.

Repeats. The cheap cases (read pass, ours) take tens of milliseconds, so they
run at least 7 times, interleaved with each other so that load from other
processes hits both sides of a ratio alike. The scikit-learn and Keras peers
take seconds per call; they run ``min(repeats, 3)`` times after one warm-up.
Each comparison also records that both sides computed the same value.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from _timing import Comparison, interleaved_medians, median_seconds

from release_spec.metrics import ConfusionMatrix, accuracy

N = 10**7
K = 10
SEED = 0
KERAS_BATCH = 1 << 16
MIN_FAST_REPEATS = 7
MAX_SLOW_REPEATS = 3


def _ours_prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    cm = ConfusionMatrix(num_classes=K)
    cm.update(y_true, y_pred)
    return cm.precision(), cm.recall(), cm.f1_score()


def _keras_f1(y_true: np.ndarray, y_pred: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds of keras F1Score over one-hot batches, and its result."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    eye = np.eye(K, dtype=np.float32)
    true_onehot, pred_onehot = eye[y_true], eye[y_pred]

    def keras_f1() -> float:
        metric = keras.metrics.F1Score(average="macro", threshold=None)
        for start in range(0, N, KERAS_BATCH):
            stop = start + KERAS_BATCH
            metric.update_state(true_onehot[start:stop], pred_onehot[start:stop])
        return float(metric.result())

    return median_seconds(keras_f1, repeats), keras_f1()


def run(repeats: int) -> list[Comparison]:
    """Time the metric targets; ``repeats`` is the number of timed runs per case."""
    rng = np.random.default_rng(SEED)
    y_true = rng.integers(0, K, N)
    y_pred = np.where(rng.random(N) < 0.7, y_true, rng.integers(0, K, N))

    def read_pass() -> None:
        np.add.reduce(y_true)
        np.add.reduce(y_pred)

    fast = interleaved_medians(
        {
            "read": read_pass,
            "prf": lambda: _ours_prf(y_true, y_pred),
            "accuracy": lambda: accuracy(y_true, y_pred),
        },
        max(repeats, MIN_FAST_REPEATS),
    )
    ours_p, ours_r, ours_f = _ours_prf(y_true, y_pred)
    ours_acc = accuracy(y_true, y_pred)
    common = {"n": N, "k": K, "fast_repeats": max(repeats, MIN_FAST_REPEATS)}
    slow_repeats = max(1, min(repeats, MAX_SLOW_REPEATS))

    from sklearn.metrics import precision_recall_fscore_support

    def sklearn_prf() -> tuple[Any, ...]:
        return precision_recall_fscore_support(
            y_true, y_pred, labels=list(range(K)), average="macro", zero_division=0.0
        )

    sk_s = median_seconds(sklearn_prf, slow_repeats)
    sk_p, sk_r, sk_f, _ = sklearn_prf()
    sk_agree = (sk_p, sk_r, sk_f) == (ours_p, ours_r, ours_f)

    keras_s, keras_f = _keras_f1(y_true, y_pred, slow_repeats)
    keras_diff = abs(keras_f - ours_f)

    subject = "metrics: confusion matrix + macro P/R/F1"
    return [
        Comparison(
            subject,
            "read pass (np.add.reduce x2)",
            "at_most",
            3.0,
            fast["prf"],
            fast["read"],
            {**common},
        ),
        Comparison(
            subject,
            "sklearn precision_recall_fscore_support",
            "faster_by",
            25.0,
            fast["prf"],
            sk_s,
            {**common, "peer_repeats": slow_repeats, "values_equal": sk_agree},
        ),
        Comparison(
            subject,
            "keras.metrics.F1Score (one-hot)",
            "faster_by",
            30.0,
            fast["prf"],
            keras_s,
            {
                **common,
                "peer_repeats": slow_repeats,
                "keras_batch_rows": KERAS_BATCH,
                "f1_abs_diff": keras_diff,
            },
        ),
        Comparison(
            "metrics: accuracy",
            "read pass (np.add.reduce x2)",
            "at_most",
            2.0,
            fast["accuracy"],
            fast["read"],
            {**common, "accuracy": ours_acc},
        ),
    ]
