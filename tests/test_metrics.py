"""Spec tests for release_spec.metrics.

Three-way agreement: the NumPy reference == scikit-learn / Keras (and TF's
confusion matrix) == the formula written out with loops in this file.
scikit-learn works in float64 on the same counts, so it agrees to 1e-12
relative (in practice bit for bit). Keras works in float32 and F1Score adds
1e-7 to each denominator, so Keras comparisons use atol 1e-6.
"""

from __future__ import annotations

import itertools
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm

from release_spec import metrics
from release_spec.metrics import (
    ConfusionMatrix,
    accuracy,
    argmax_predictions,
    confusion_matrix,
    f1_score,
    precision,
    recall,
    threshold_predictions,
)

AVERAGES = [None, "micro", "macro", "weighted"]
ZERO_DIVISIONS = [0.0, 1.0, math.nan]
SCORES = {"precision": precision, "recall": recall, "f1": f1_score}
KERAS_ATOL = 1e-6
SK_RTOL = 1e-12
# Keras tests run eager TensorFlow ops per example: fewer examples keep the
# file well under two minutes with the ci profile.
KERAS_EXAMPLES = 25

# The 3-class example of the docs page and the docstrings.
T3 = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
P3 = [0, 1, 1, 1, 0, 2, 2, 2, 1, 0]


@st.composite
def labelled(draw: st.DrawFn, max_classes: int = 6, max_size: int = 40) -> tuple:
    """(y_true, y_pred, K): int64 label vectors in [0, K)."""
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, max_size))
    labels = st.integers(0, k - 1)
    t = draw(hnp.arrays(np.int64, n, elements=labels))
    p = draw(hnp.arrays(np.int64, n, elements=labels))
    return t, p, k


def close(a: object, b: object, *, rtol: float = SK_RTOL, atol: float = 0.0) -> None:
    np.testing.assert_allclose(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol
    )


# -- the formulas written out literally ---------------------------------------


def literal_confusion(t: list[int], p: list[int], k: int) -> list[list[int]]:
    c = [[0] * k for _ in range(k)]
    for a, b in zip(t, p, strict=True):
        c[a][b] += 1
    return c


def literal_scores(
    t: list[int], p: list[int], k: int, average: str | None, zd: float
) -> tuple[object, object, object]:
    """Precision, recall, F1 from TP/FP/FN counted one sample at a time."""
    tp = [sum(1 for a, b in zip(t, p, strict=True) if a == c and b == c) for c in range(k)]
    fp = [sum(1 for a, b in zip(t, p, strict=True) if a != c and b == c) for c in range(k)]
    fn = [sum(1 for a, b in zip(t, p, strict=True) if a == c and b != c) for c in range(k)]

    def ratio(num: int, den: int) -> float:
        return num / den if den else zd

    if average == "micro":
        TP, FP, FN = sum(tp), sum(fp), sum(fn)
        return ratio(TP, TP + FP), ratio(TP, TP + FN), ratio(2 * TP, 2 * TP + FP + FN)
    P = [ratio(tp[c], tp[c] + fp[c]) for c in range(k)]
    R = [ratio(tp[c], tp[c] + fn[c]) for c in range(k)]
    F = [ratio(2 * tp[c], 2 * tp[c] + fp[c] + fn[c]) for c in range(k)]
    if average is None:
        return P, R, F
    support = [tp[c] + fn[c] for c in range(k)]

    def avg(values: list[float]) -> float:
        kept = [(v, w) for v, w in zip(values, support, strict=True) if not math.isnan(v)]
        if not kept:
            return math.nan
        total = sum(w for _, w in kept)
        if average == "weighted" and total > 0:
            return sum(v * w for v, w in kept) / total
        return sum(v for v, _ in kept) / len(kept)

    return avg(P), avg(R), avg(F)


# -- eq-confusion-matrix -------------------------------------------------------


@pytest.mark.spec("eq-confusion-matrix", kind="parity")
@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")  # K = 1 is intended
@settings(max_examples=KERAS_EXAMPLES)
@given(labelled())
def test_confusion_matrix_parity(data: tuple) -> None:
    t, p, k = data
    ours = confusion_matrix(t, p, num_classes=k)
    assert ours.dtype == np.int64
    assert ours.shape == (k, k)
    np.testing.assert_array_equal(ours, skm.confusion_matrix(t, p, labels=list(range(k))))
    np.testing.assert_array_equal(ours, tf.math.confusion_matrix(t, p, num_classes=k).numpy())
    np.testing.assert_array_equal(ours, literal_confusion(t.tolist(), p.tolist(), k))


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled())
def test_confusion_matrix_sums_to_n(data: tuple) -> None:
    t, p, k = data
    c = confusion_matrix(t, p, num_classes=k)
    assert c.sum() == len(t)
    np.testing.assert_array_equal(c.sum(axis=1), np.bincount(t, minlength=k))
    np.testing.assert_array_equal(c.sum(axis=0), np.bincount(p, minlength=k))


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled(), st.randoms(use_true_random=False))
def test_confusion_matrix_permutation_invariant(data: tuple, rnd: object) -> None:
    t, p, k = data
    order = np.arange(len(t))
    rnd.shuffle(order)
    np.testing.assert_array_equal(
        confusion_matrix(t[order], p[order], num_classes=k), confusion_matrix(t, p, num_classes=k)
    )


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled())
def test_confusion_matrix_swap_transposes(data: tuple) -> None:
    t, p, k = data
    np.testing.assert_array_equal(
        confusion_matrix(p, t, num_classes=k), confusion_matrix(t, p, num_classes=k).T
    )


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled(), st.data())
def test_confusion_matrix_relabel_permutes_rows_and_columns(
    data: tuple, draw: st.DataObject
) -> None:
    t, p, k = data
    perm = np.array(draw.draw(st.permutations(range(k))))
    c = confusion_matrix(t, p, num_classes=k)
    relabelled = confusion_matrix(perm[t], perm[p], num_classes=k)
    inverse = np.argsort(perm)
    np.testing.assert_array_equal(relabelled[np.ix_(perm, perm)], c)
    np.testing.assert_array_equal(relabelled, c[np.ix_(inverse, inverse)])


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled(), st.sampled_from([np.int8, np.uint16, np.int32, np.float32, np.float64, ">i8"]))
def test_confusion_matrix_dtype_invariant(data: tuple, dtype: object) -> None:
    t, p, k = data
    expected = confusion_matrix(t, p, num_classes=k)
    np.testing.assert_array_equal(
        confusion_matrix(t.astype(dtype), p.astype(dtype), num_classes=k), expected
    )
    np.testing.assert_array_equal(confusion_matrix(t.tolist(), p.tolist(), num_classes=k), expected)


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled())
def test_confusion_matrix_inferred_num_classes(data: tuple) -> None:
    t, p, k = data
    c = confusion_matrix(t, p)
    top = int(max(t.max(), p.max()))
    assert c.shape == (top + 1, top + 1)
    np.testing.assert_array_equal(c, confusion_matrix(t, p, num_classes=k)[: top + 1, : top + 1])


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@settings(max_examples=10)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(metrics._BLOCK - 3, 3 * metrics._BLOCK + 5),
    st.integers(1, 12),
    st.booleans(),
)
def test_confusion_matrix_blocked_matches_one_bincount(
    seed: int, n: int, k: int, infer: bool
) -> None:
    # Inputs longer than one validation block: block edges must not lose or
    # double-count samples, and a large label first seen in a late block must
    # grow the inferred matrix without moving earlier counts.
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = rng.integers(0, k, n)
    first_block_classes = int(rng.integers(1, k + 1))
    t[: metrics._BLOCK] %= first_block_classes
    p[: metrics._BLOCK] %= first_block_classes
    t[-1] = k - 1
    expected = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    got = confusion_matrix(t, p, num_classes=None if infer else k)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        confusion_matrix(t.astype(np.float64), p, num_classes=k), expected
    )


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled(), st.lists(st.integers(0, 40), max_size=4), st.booleans())
def test_confusion_matrix_streaming_equals_one_pass(data: tuple, cuts: list, fixed: bool) -> None:
    t, p, k = data
    edges = [0, *sorted(min(c, len(t)) for c in cuts), len(t)]
    cm = ConfusionMatrix(num_classes=k if fixed else None)
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            cm.update(t[lo:hi], p[lo:hi])
    np.testing.assert_array_equal(
        cm.counts, confusion_matrix(t, p, num_classes=k if fixed else None)
    )
    assert cm.num_classes == cm.counts.shape[0]
    for average in AVERAGES:
        for name, fn in SCORES.items():
            method = getattr(cm, "f1_score" if name == "f1" else name)
            close(method(average=average), fn(t, p, num_classes=cm.num_classes, average=average))
    assert cm.accuracy() == accuracy(t, p)


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled(), st.integers(1, 40))
def test_confusion_matrix_streaming_grows_with_later_labels(data: tuple, cut: int) -> None:
    # Sorted by label, so later batches bring larger labels: the inferred
    # matrix must grow and keep the counts of the earlier batches.
    t, p, _ = data
    order = np.argsort(np.maximum(t, p), kind="stable")
    t, p = t[order], p[order]
    cut = min(cut, len(t))
    cm = ConfusionMatrix()
    cm.update(t[:cut], p[:cut])
    if cut < len(t):
        cm.update(t[cut:], p[cut:])
    np.testing.assert_array_equal(cm.counts, confusion_matrix(t, p))


# -- eq-accuracy ---------------------------------------------------------------


@pytest.mark.spec("eq-accuracy", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(labelled())
def test_accuracy_parity(data: tuple) -> None:
    t, p, k = data
    ours = accuracy(t, p)
    literal = sum(1 for a, b in zip(t.tolist(), p.tolist(), strict=True) if a == b) / len(t)
    assert ours == literal
    assert ours == skm.accuracy_score(t, p)
    m = keras.metrics.Accuracy()
    m.update_state(t, p)
    close(m.result(), ours, atol=KERAS_ATOL)
    eye = np.eye(k, dtype=np.float32)
    m = keras.metrics.CategoricalAccuracy()
    m.update_state(eye[t], eye[p])
    close(m.result(), ours, atol=KERAS_ATOL)


@pytest.mark.spec("eq-accuracy", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 30), st.integers(2, 5)),
        elements=st.floats(0.0625, 1.0, width=32),
        unique=True,
    ),
    st.data(),
)
def test_accuracy_of_argmax_parity(scores: np.ndarray, draw: st.DataObject) -> None:
    # Probability rows (no ties, as Keras and np.argmax break ties differently
    # from F1Score's threshold=None rule) against CategoricalAccuracy.
    rows = (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
    assume(all(len(set(r.tolist())) == r.size for r in rows))
    n, k = rows.shape
    t = np.array(draw.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    ours = accuracy(t, argmax_predictions(rows))
    literal = sum(1 for i in range(n) if max(range(k), key=lambda c: rows[i, c]) == t[i]) / n
    assert ours == literal
    m = keras.metrics.CategoricalAccuracy()
    m.update_state(np.eye(k, dtype=np.float32)[t], rows)
    close(m.result(), ours, atol=KERAS_ATOL)


@pytest.mark.spec("eq-accuracy", kind="property")
@given(labelled())
def test_accuracy_binary_form_equals_trace_form(data: tuple) -> None:
    t, p, _ = data
    positive = t.max()
    tt, pp = (t == positive), (p == positive)
    TP, TN = np.sum(tt & pp), np.sum(~tt & ~pp)
    FP, FN = np.sum(~tt & pp), np.sum(tt & ~pp)
    binary = (TP + TN) / (TP + TN + FP + FN)
    c = confusion_matrix(tt.astype(int), pp.astype(int), num_classes=2)
    assert accuracy(tt, pp) == binary == np.trace(c) / c.sum()
    multi = confusion_matrix(t, p)
    assert accuracy(t, p) == np.trace(multi) / multi.sum()


@pytest.mark.spec("eq-accuracy", kind="property")
@given(labelled(), st.randoms(use_true_random=False))
def test_accuracy_range_symmetry_and_permutation(data: tuple, rnd: object) -> None:
    t, p, _ = data
    a = accuracy(t, p)
    assert 0.0 <= a <= 1.0
    assert accuracy(p, t) == a
    assert accuracy(t, t) == 1.0
    order = np.arange(len(t))
    rnd.shuffle(order)
    assert accuracy(t[order], p[order]) == a


@pytest.mark.spec("eq-accuracy", kind="property")
@settings(max_examples=10)
@given(st.integers(0, 2**32 - 1), st.integers(metrics._BLOCK - 3, 3 * metrics._BLOCK + 5))
def test_accuracy_blocked_matches_one_pass(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    p = rng.integers(0, 3, n)
    assert accuracy(t, p) == np.count_nonzero(t == p) / n
    assert accuracy(t.astype(np.float32), p.astype(np.uint8)) == np.count_nonzero(t == p) / n


@pytest.mark.spec("eq-accuracy", kind="property")
def test_accuracy_worked_examples() -> None:
    assert accuracy([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0, 1]) == 0.75
    assert accuracy(T3, P3) == 0.6
    c = confusion_matrix(T3, P3)
    assert np.trace(c) / c.sum() == 0.6


# -- eq-precision, eq-recall, eq-f1 -------------------------------------------


@pytest.mark.spec("eq-precision", kind="parity")
@pytest.mark.spec("eq-recall", kind="parity")
@pytest.mark.spec("eq-f1", kind="parity")
@given(labelled(), st.sampled_from(AVERAGES), st.sampled_from(ZERO_DIVISIONS))
def test_precision_recall_f1_sklearn_and_literal_parity(
    data: tuple, average: str | None, zd: float
) -> None:
    t, p, k = data
    sk = skm.precision_recall_fscore_support(
        t, p, labels=list(range(k)), average=average, zero_division=zd
    )
    lit = literal_scores(t.tolist(), p.tolist(), k, average, zd)
    for i, fn in enumerate(SCORES.values()):
        ours = fn(t, p, num_classes=k, average=average, zero_division=zd)
        if average is None:
            assert isinstance(ours, np.ndarray)
            assert ours.shape == (k,)
        else:
            assert isinstance(ours, float)
        close(ours, sk[i])
        close(ours, lit[i])


@pytest.mark.spec("eq-f1", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(labelled(), st.sampled_from(AVERAGES))
def test_f1_score_keras_parity(data: tuple, average: str | None) -> None:
    # Fed as a Keras user would: one-hot truth, one-hot (argmax) predictions,
    # threshold=None. Keras has no zero_division: it matches zero_division=0.
    t, p, k = data
    eye = np.eye(k, dtype=np.float32)
    m = keras.metrics.F1Score(average=average, threshold=None)
    m.update_state(eye[t], eye[p])
    ours = f1_score(t, p, num_classes=k, average=average, zero_division=0.0)
    close(m.result(), ours, rtol=0, atol=KERAS_ATOL)
    close(literal_scores(t.tolist(), p.tolist(), k, average, 0.0)[2], ours)


@pytest.mark.spec("eq-precision", kind="parity")
@pytest.mark.spec("eq-recall", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(labelled(max_classes=4))
def test_precision_recall_keras_per_class_parity(data: tuple) -> None:
    # keras Precision/Recall(class_id=c) on one-hot rows: the per-class scores.
    t, p, k = data
    eye = np.eye(k, dtype=np.float32)
    ours_p = precision(t, p, num_classes=k, average=None)
    ours_r = recall(t, p, num_classes=k, average=None)
    for c in range(k):
        mp, mr = keras.metrics.Precision(class_id=c), keras.metrics.Recall(class_id=c)
        mp.update_state(eye[t], eye[p])
        mr.update_state(eye[t], eye[p])
        close(mp.result(), ours_p[c], rtol=0, atol=KERAS_ATOL)
        close(mr.result(), ours_r[c], rtol=0, atol=KERAS_ATOL)


@pytest.mark.spec("eq-precision", kind="parity")
@pytest.mark.spec("eq-recall", kind="parity")
@pytest.mark.spec("eq-threshold", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 40),
        elements=st.one_of(st.floats(0, 1, width=32), st.sampled_from([0.25, 0.5, 0.75])),
    ),
    st.data(),
    st.sampled_from([0.5, 0.25, 0.75]),
)
def test_binary_precision_recall_keras_parity(
    y_prob: np.ndarray, draw: st.DataObject, tau: float
) -> None:
    # Binary case from probabilities: Keras counts y_prob > threshold as positive.
    n = y_prob.shape[0]
    t = np.array(draw.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    labels = threshold_predictions(y_prob, threshold=tau)
    assert labels.tolist() == [1 if x > tau else 0 for x in y_prob.tolist()]
    for metric_cls, fn in ((keras.metrics.Precision, precision), (keras.metrics.Recall, recall)):
        m = metric_cls(thresholds=tau)
        m.update_state(t, y_prob)
        ours = fn(t, labels, num_classes=2, average=None, zero_division=0.0)[1]
        close(m.result(), ours, rtol=0, atol=KERAS_ATOL)
    b = keras.metrics.BinaryAccuracy(threshold=tau)
    b.update_state(labels, y_prob)
    assert float(b.result()) == 1.0


@pytest.mark.spec("eq-precision", kind="property")
@pytest.mark.spec("eq-recall", kind="property")
@pytest.mark.spec("eq-f1", kind="property")
@given(labelled(), st.sampled_from(AVERAGES), st.sampled_from([0.0, 1.0]))
def test_precision_recall_f1_range(data: tuple, average: str | None, zd: float) -> None:
    t, p, k = data
    for fn in SCORES.values():
        v = np.asarray(fn(t, p, num_classes=k, average=average, zero_division=zd))
        assert np.all((v >= 0) & (v <= 1))


@pytest.mark.spec("eq-precision", kind="property")
@pytest.mark.spec("eq-recall", kind="property")
@pytest.mark.spec("eq-f1", kind="property")
@given(labelled(), st.randoms(use_true_random=False), st.sampled_from(AVERAGES))
def test_precision_recall_f1_permutation_invariant(
    data: tuple, rnd: object, average: str | None
) -> None:
    t, p, k = data
    order = np.arange(len(t))
    rnd.shuffle(order)
    for fn in SCORES.values():
        close(
            fn(t[order], p[order], num_classes=k, average=average),
            fn(t, p, num_classes=k, average=average),
            rtol=0,
        )


@pytest.mark.spec("eq-precision", kind="property")
@pytest.mark.spec("eq-recall", kind="property")
@given(labelled(), st.sampled_from([None, "micro", "macro"]), st.sampled_from(ZERO_DIVISIONS))
def test_precision_swap_equals_recall(data: tuple, average: str | None, zd: float) -> None:
    # Swapping truth and prediction turns FP into FN: P(t, p) = R(p, t).
    # (Not for "weighted": the weights are the support of the first argument.)
    t, p, k = data
    close(
        precision(t, p, num_classes=k, average=average, zero_division=zd),
        recall(p, t, num_classes=k, average=average, zero_division=zd),
        rtol=0,
    )


@pytest.mark.spec("eq-f1", kind="property")
@given(labelled(), st.sampled_from([0.0, 1.0]))
def test_f1_score_between_precision_and_recall(data: tuple, zd: float) -> None:
    t, p, k = data
    P = precision(t, p, num_classes=k, average=None, zero_division=zd)
    R = recall(t, p, num_classes=k, average=None, zero_division=zd)
    F = f1_score(t, p, num_classes=k, average=None, zero_division=zd)
    assert np.all(np.minimum(P, R) - 1e-12 <= F)
    assert np.all(np.maximum(P, R) + 1e-12 >= F)


@pytest.mark.spec("eq-f1", kind="property")
@given(labelled())
def test_f1_score_is_harmonic_mean(data: tuple) -> None:
    t, p, k = data
    P = precision(t, p, num_classes=k, average=None)
    R = recall(t, p, num_classes=k, average=None)
    F = f1_score(t, p, num_classes=k, average=None)
    defined = P + R > 0
    harmonic = np.divide(2 * P * R, P + R, out=np.zeros_like(P), where=defined)
    np.testing.assert_allclose(F[defined], harmonic[defined], rtol=1e-12)
    assert np.all(F[~defined] == 0)


@pytest.mark.spec("eq-precision", kind="property")
@pytest.mark.spec("eq-recall", kind="property")
@pytest.mark.spec("eq-f1", kind="property")
@given(labelled())
def test_precision_recall_f1_micro_and_weighted_recall_equal_accuracy(data: tuple) -> None:
    t, p, k = data
    a = accuracy(t, p)
    for fn in SCORES.values():
        assert math.isclose(fn(t, p, num_classes=k, average="micro"), a, rel_tol=1e-12)
    assert math.isclose(recall(t, p, num_classes=k, average="weighted"), a, rel_tol=1e-12)


@pytest.mark.spec("eq-precision", kind="property")
@pytest.mark.spec("eq-recall", kind="property")
@pytest.mark.spec("eq-f1", kind="property")
@given(labelled(), st.sampled_from(ZERO_DIVISIONS))
def test_precision_recall_f1_zero_division(data: tuple, zd: float) -> None:
    # Add a class k that never occurs in y_true nor y_pred: every score of it
    # is undefined and takes the zero_division value; nan drops out of averages.
    t, p, k = data
    for fn in SCORES.values():
        per_class = fn(t, p, num_classes=k + 1, average=None, zero_division=zd)
        assert per_class[k] == zd or (math.isnan(zd) and math.isnan(per_class[k]))
        macro = fn(t, p, num_classes=k + 1, average="macro", zero_division=zd)
        rest = per_class[:k]
        if math.isnan(zd):
            expected = np.nan if np.isnan(rest).all() else np.nanmean(rest)
        else:
            expected = np.mean(per_class)
        close(macro, expected)


@pytest.mark.spec("eq-precision", kind="property")
@pytest.mark.spec("eq-recall", kind="property")
@pytest.mark.spec("eq-f1", kind="property")
def test_precision_recall_f1_worked_example() -> None:
    np.testing.assert_array_equal(confusion_matrix(T3, P3), [[1, 1, 0], [1, 2, 0], [1, 1, 3]])
    close(precision(T3, P3, average=None), [1 / 3, 1 / 2, 1])
    close(recall(T3, P3, average=None), [1 / 2, 2 / 3, 3 / 5])
    close(f1_score(T3, P3, average=None), [2 / 5, 4 / 7, 6 / 8])
    close(precision(T3, P3), (1 / 3 + 1 / 2 + 1) / 3)
    close(precision(T3, P3, average="weighted"), (2 / 3 + 3 / 2 + 5) / 10)
    close(recall(T3, P3), (1 / 2 + 2 / 3 + 3 / 5) / 3)
    close(f1_score(T3, P3), (2 / 5 + 4 / 7 + 6 / 8) / 3)
    close(f1_score(T3, P3, average="weighted"), (2 * 2 / 5 + 3 * 4 / 7 + 5 * 6 / 8) / 10)
    assert f1_score(T3, P3, average="micro") == 0.6
    assert round(f1_score(T3, P3), 6) == 0.57381
    assert round(f1_score(T3, P3, average="weighted"), 6) == 0.626429
    # The zero_division example of the page: class 3 never occurs.
    macro = {
        zd: [round(fn(T3, P3, num_classes=4, zero_division=zd), 6) for fn in SCORES.values()]
        for zd in (0.0, 1.0)
    }
    assert macro == {0.0: [0.458333, 0.441667, 0.430357], 1.0: [0.708333, 0.691667, 0.680357]}
    assert round(precision(T3, P3, num_classes=4, zero_division=math.nan), 6) == 0.611111
    assert round(f1_score(T3, P3, num_classes=4, zero_division=math.nan), 6) == 0.57381


# -- eq-threshold ----------------------------------------------------------------


@pytest.mark.spec("eq-threshold", kind="property")
@given(
    hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_threshold_predictions_strict_and_monotone(y_prob: np.ndarray, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    at_lo, at_hi = threshold_predictions(y_prob, lo), threshold_predictions(y_prob, hi)
    assert at_lo.dtype == np.int64
    assert np.all(at_hi <= at_lo)  # raising the threshold never adds positives
    assert threshold_predictions(np.array([lo]), lo)[0] == 0  # exactly at tau is negative
    assert threshold_predictions(y_prob, 1.0).sum() == 0
    np.testing.assert_array_equal(threshold_predictions(y_prob), (y_prob > 0.5).astype(int))


@pytest.mark.spec("eq-threshold", kind="property")
def test_threshold_predictions_worked_example() -> None:
    np.testing.assert_array_equal(threshold_predictions([0.2, 0.5, 0.51, 0.9]), [0, 0, 1, 1])
    np.testing.assert_array_equal(threshold_predictions([[0.3], [0.7]], 0.5), [[0], [1]])


# -- errors ----------------------------------------------------------------------

LABEL_FUNCS = [
    pytest.param(lambda t, p: confusion_matrix(t, p, num_classes=3), id="confusion_matrix"),
    pytest.param(accuracy, id="accuracy"),
    pytest.param(lambda t, p: precision(t, p, num_classes=3), id="precision"),
    pytest.param(lambda t, p: recall(t, p, num_classes=3), id="recall"),
    pytest.param(lambda t, p: f1_score(t, p, num_classes=3), id="f1_score"),
    pytest.param(lambda t, p: ConfusionMatrix(3).update(t, p), id="ConfusionMatrix.update"),
]

BAD_LABELS = [
    pytest.param(
        [0, np.nan, 1], [0, 1, 1], r"y_true contains nan \(NaN or infinity\) at index 1", id="nan"
    ),
    pytest.param(
        [0, 1, 1], [0, np.inf, 1], r"y_pred contains inf \(NaN or infinity\) at index 1", id="inf"
    ),
    pytest.param([], [], "y_true is empty", id="empty"),
    pytest.param(
        [0, 1], [0, 1, 1], "length mismatch: y_true has 2 labels, y_pred has 3", id="length"
    ),
    pytest.param(
        [0, -1, 1], [0, 1, 1], "y_true contains a negative label -1 at index 1", id="negative"
    ),
    pytest.param(
        [0, 1, 1],
        [0.0, 1.5, 1.0],
        "y_pred contains a non-integer label 1.5 at index 1",
        id="fraction",
    ),
    pytest.param([[0, 1]], [[0, 1]], r"y_true must be a 1-D vector .* shape \(1, 2\)", id="2-D"),
    pytest.param(
        ["a", "b"], ["a", "b"], "y_true must hold integer class labels; got dtype <U1", id="strings"
    ),
]


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
@pytest.mark.spec("eq-accuracy", kind="errors")
@pytest.mark.spec("eq-precision", kind="errors")
@pytest.mark.spec("eq-recall", kind="errors")
@pytest.mark.spec("eq-f1", kind="errors")
@pytest.mark.parametrize("fn", LABEL_FUNCS)
@pytest.mark.parametrize(("t", "p", "message"), BAD_LABELS)
def test_bad_labels_raise(fn: object, t: list, p: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn(t, p)


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda t, p: confusion_matrix(t, p, num_classes=3), id="function"),
        pytest.param(lambda t, p: ConfusionMatrix(3).update(t, p), id="streaming"),
    ],
)
@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.uint8, np.float64])
def test_label_at_or_above_num_classes_raises(fn: object, dtype: object) -> None:
    with pytest.raises(
        ValueError, match="y_pred contains label 3 at index 2, which is >= num_classes=3"
    ):
        fn(np.array([0, 1, 2], dtype=dtype), np.array([0, 1, 3], dtype=dtype))


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
def test_bad_label_in_a_late_block_names_its_index() -> None:
    n = 2 * metrics._BLOCK + 10
    t, p = np.zeros(n, np.int64), np.zeros(n, np.int64)
    t[n - 3] = -7
    with pytest.raises(ValueError, match=f"y_true contains a negative label -7 at index {n - 3}"):
        confusion_matrix(t, p, num_classes=2)
    with pytest.raises(ValueError, match=f"y_true contains a negative label -7 at index {n - 3}"):
        accuracy(t, p)
    t[n - 3] = 0
    p[metrics._BLOCK] = 2
    with pytest.raises(
        ValueError, match=f"label 2 at index {metrics._BLOCK}, which is >= num_classes=2"
    ):
        confusion_matrix(t, p, num_classes=2)


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_num_classes_raises(k: object) -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        confusion_matrix([0], [0], num_classes=k)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        ConfusionMatrix(k)


@pytest.mark.spec("eq-precision", kind="errors")
@pytest.mark.spec("eq-recall", kind="errors")
@pytest.mark.spec("eq-f1", kind="errors")
@pytest.mark.parametrize("name", ["precision", "recall", "f1_score"])
def test_unknown_average_and_zero_division_raise(name: str) -> None:
    fn = getattr(metrics, name)
    with pytest.raises(ValueError, match="unknown average 'binary'"):
        fn([0, 1], [0, 1], average="binary")
    with pytest.raises(ValueError, match="zero_division must be 0, 1 or nan; got 'warn'"):
        fn([0, 1], [0, 1], zero_division="warn")
    with pytest.raises(ValueError, match=re.escape("zero_division must be 0, 1 or nan; got 0.5")):
        fn([0, 1], [0, 1], zero_division=0.5)
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="ConfusionMatrix is empty"):
        getattr(cm, name)()
    cm.update([0, 1], [0, 1])
    with pytest.raises(ValueError, match="unknown average 'samples'"):
        getattr(cm, name)(average="samples")


@pytest.mark.spec("eq-accuracy", kind="errors")
def test_empty_confusion_matrix_accuracy_raises() -> None:
    with pytest.raises(ValueError, match="ConfusionMatrix is empty"):
        ConfusionMatrix().accuracy()


@pytest.mark.spec("eq-threshold", kind="errors")
@pytest.mark.parametrize(
    ("y_prob", "threshold", "message"),
    [
        pytest.param([0.2, 1.2], 0.5, r"outside \[0, 1\] \(min 0.2, max 1.2\)", id="above-one"),
        pytest.param([-0.1, 0.5], 0.5, r"outside \[0, 1\]", id="negative"),
        pytest.param([0.2, np.nan], 0.5, "y_prob contains NaN or infinity", id="nan"),
        pytest.param([], 0.5, "y_prob is empty", id="empty"),
        pytest.param([0.2], 1.5, r"threshold must be in \[0, 1\]; got 1.5", id="threshold"),
        pytest.param([0.2], float("nan"), r"threshold must be in \[0, 1\]", id="threshold-nan"),
    ],
)
def test_threshold_predictions_bad_input_raises(
    y_prob: list, threshold: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        threshold_predictions(y_prob, threshold)


@pytest.mark.spec("eq-accuracy", kind="errors")
@pytest.mark.parametrize(
    ("y_prob", "message"),
    [
        pytest.param([0.2, 0.8], r"must have shape \(N, K\); got shape \(2,\)", id="1-D"),
        pytest.param([[0.5, 0.6]], "rows must sum to 1; row 0 sums to 1.1", id="row-sum"),
        pytest.param([[2.0, -1.0]], r"outside \[0, 1\]", id="logits"),
        pytest.param([[0.5, np.nan]], "NaN or infinity", id="nan"),
        pytest.param(np.zeros((0, 3)), "y_prob is empty", id="empty"),
    ],
)
def test_argmax_predictions_bad_input_raises(y_prob: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        argmax_predictions(y_prob)


def test_argmax_predictions_ties_go_to_lowest_index() -> None:
    np.testing.assert_array_equal(argmax_predictions([[0.4, 0.4, 0.2], [0.25, 0.25, 0.5]]), [0, 2])


# ------------------------------------------- robustness: scalars, caps, atomic updates

NOT_A_REAL = [None, "0.5", b"1", [0.5], 1j, True, np.bool_(False), np.array([0.5, 0.5])]
NOT_A_REAL += [math.nan, math.inf, -math.inf, np.float32("nan"), 10**400]


@pytest.mark.spec("eq-threshold", kind="errors")
@given(value=st.sampled_from(NOT_A_REAL) | st.floats().filter(lambda x: not 0 <= x <= 1))
def test_a_bad_threshold_is_named(value: object) -> None:
    with pytest.raises(ValueError, match="threshold"):
        threshold_predictions([0.2, 0.7], value)  # type: ignore[arg-type]


@pytest.mark.spec("eq-precision", kind="errors")
@given(
    value=st.sampled_from(
        [v for v in NOT_A_REAL if not (isinstance(v, float | np.floating) and math.isnan(v))]
    )
    | st.floats(allow_nan=False).filter(lambda x: x not in (0.0, 1.0))
)
def test_a_bad_zero_division_is_named(value: object) -> None:
    with pytest.raises(ValueError, match="zero_division"):
        precision([0, 1], [0, 1], zero_division=value)  # type: ignore[arg-type]
    cm = ConfusionMatrix(2)
    cm.update([0, 1], [0, 1])
    with pytest.raises(ValueError, match="zero_division"):
        cm.f1_score(zero_division=value)  # type: ignore[arg-type]


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
@given(
    value=st.sampled_from([v for v in NOT_A_REAL if v is not None])
    | st.floats()
    | st.integers(max_value=0)
    | st.integers(min_value=metrics.MAX_CLASSES + 1)
)
def test_a_bad_num_classes_is_named(value: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0], [0], num_classes=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(value)  # type: ignore[arg-type]


@pytest.mark.spec("eq-precision", kind="property")
@given(labelled(), st.sampled_from([np.int64, np.int32, np.uint8]), st.floats(0.0, 1.0))
def test_numpy_scalars_give_the_python_scalars_results(
    data: tuple, int_type: type, tau: float
) -> None:
    t, p, k = data
    np.testing.assert_array_equal(
        confusion_matrix(t, p, num_classes=int_type(k)), confusion_matrix(t, p, num_classes=k)
    )
    for zd in (np.float32(1.0), np.float64(math.nan), np.int64(0)):
        np.testing.assert_array_equal(
            f1_score(t, p, num_classes=int_type(k), average=None, zero_division=zd),
            f1_score(t, p, num_classes=k, average=None, zero_division=float(zd)),
        )
    probs = np.linspace(0.0, 1.0, 11)
    for conv in (np.float32, np.float64, np.float16):
        np.testing.assert_array_equal(
            threshold_predictions(probs, conv(tau)), threshold_predictions(probs, float(conv(tau)))
        )
    cm, ref = ConfusionMatrix(int_type(k)), ConfusionMatrix(k)
    cm.update(t, p)
    ref.update(t, p)
    np.testing.assert_array_equal(cm.counts, ref.counts)


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda t, p: confusion_matrix(t, p), id="confusion_matrix"),
        pytest.param(lambda t, p: precision(t, p), id="precision"),
        pytest.param(lambda t, p: recall(t, p), id="recall"),
        pytest.param(lambda t, p: f1_score(t, p), id="f1_score"),
        pytest.param(lambda t, p: ConfusionMatrix().update(t, p), id="ConfusionMatrix.update"),
    ],
)
@pytest.mark.parametrize("label", [metrics.MAX_CLASSES, 10**9, 2**62, float(10**9)])
def test_a_label_past_max_classes_is_refused_by_name(call: object, label: int) -> None:
    # Before the cap, label 10**9 asked NumPy for a 10**18-cell matrix: a MemoryError.
    with pytest.raises(
        ValueError,
        match=f"y_pred contains label {int(label)} at index 1: a confusion matrix has at most "
        "MAX_CLASSES=4096 classes",
    ):
        call(np.array([0, 1], dtype=type(label)), np.array([0, label], dtype=type(label)))


@pytest.mark.spec("eq-confusion-matrix", kind="errors")
@pytest.mark.parametrize("k", [metrics.MAX_CLASSES + 1, 10**9, np.int64(10**12)])
def test_num_classes_past_max_classes_is_refused_by_name(k: int) -> None:
    message = f"num_classes must be at most MAX_CLASSES=4096; got {int(k)}"
    for call in (
        lambda: confusion_matrix([0], [0], num_classes=k),
        lambda: f1_score([0], [0], num_classes=k),
        lambda: ConfusionMatrix(k),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_accuracy_builds_no_matrix_so_large_labels_are_fine() -> None:
    assert accuracy([10**9, 5, 2**62], [10**9, 4, 2**62]) == pytest.approx(2 / 3)


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(
    st.integers(0, 2**32 - 1),
    st.integers(725, 1200),
    st.integers(1, 3 * metrics._BLOCK),
)
@settings(max_examples=10)
def test_confusion_matrix_many_classes_matches_one_add_at(seed: int, k: int, n: int) -> None:
    # Past ~724 classes the counting switches from a per-block bincount to np.unique.
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, k, n), rng.integers(0, k, n)
    expected = np.zeros((k, k), np.int64)
    np.add.at(expected, (t, p), 1)
    np.testing.assert_array_equal(confusion_matrix(t, p, num_classes=k), expected)
    np.testing.assert_array_equal(
        confusion_matrix(t, p), expected[: max(t.max(), p.max()) + 1, : max(t.max(), p.max()) + 1]
    )


def test_confusion_matrix_at_max_classes() -> None:
    top = confusion_matrix([metrics.MAX_CLASSES - 1, 3], [0, 3])
    assert top.shape == (metrics.MAX_CLASSES,) * 2
    assert top[-1, 0] == top[3, 3] == 1
    assert top.sum() == 2


bad_batch = st.sampled_from(
    [
        ([0, 1], [0, np.nan]),
        ([0, -1], [0, 1]),
        ([0, 1], [0, 1.5]),
        ([0, 1], [0, 1, 1]),
        ([], []),
        ([[0, 1]], [[0, 1]]),
        (["a"], ["b"]),
        ([0, 1], [0, 10**9]),
        ([0, 1], [0, metrics.MAX_CLASSES]),
    ]
)


@pytest.mark.spec("eq-confusion-matrix", kind="property")
@given(labelled(), bad_batch, st.booleans(), st.integers(0, 40))
def test_refused_confusion_matrix_update_leaves_it_exactly_as_before(
    data: tuple, bad: tuple, fixed: bool, cut: int
) -> None:
    t, p, k = data
    cm = ConfusionMatrix(max(k, 2) if fixed else None)
    cm.update(t[:cut] if cut else t, p[:cut] if cut else p)
    before, state = cm.counts, dict(vars(cm))
    with pytest.raises(ValueError, match=r"y_true|y_pred"):
        cm.update(*bad)
    np.testing.assert_array_equal(cm.counts, before)
    assert vars(cm).keys() == state.keys()
    assert all(
        np.array_equal(v, state[key]) if isinstance(v, np.ndarray) else v == state[key]
        for key, v in vars(cm).items()
    )
    # A bad label past num_classes in a later block must not leave earlier blocks counted.
    n = 2 * metrics._BLOCK + 5
    late = np.zeros(n, np.int64)
    late[-1] = 10**6
    with pytest.raises(ValueError, match=f"index {n - 1}"):
        cm.update(np.zeros(n, np.int64), late)
    np.testing.assert_array_equal(cm.counts, before)
