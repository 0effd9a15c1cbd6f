"""Classification metrics computed from a confusion matrix, in NumPy alone.

Copy this file into a project and it works: it imports NumPy and the standard
library only.

Input conventions:

* ``y_true`` and ``y_pred`` are 1-D vectors of the same length holding integer
  class labels in ``[0, num_classes)``: any integer or bool dtype, or floats
  whose values are whole numbers (``2.0`` is label 2, ``2.5`` is an error).
* ``num_classes=None`` means ``max(max(y_true), max(y_pred)) + 1``, so the
  classes are always ``range(num_classes)``, never "the labels that happen to
  occur". This is scikit-learn called with ``labels=range(num_classes)``, and it
  is what Keras does with one-hot inputs of width ``num_classes``: a class that
  never occurs still counts in the macro average.
* Probabilities become labels first: `threshold_predictions` for the
  binary case (Keras's strict ``p > threshold``), `argmax_predictions` for
  rows of class probabilities.

Bad input raises ``ValueError`` naming the problem. The checks (finite, whole,
non-negative, below ``num_classes``) run inside the counting loop, on blocks
small enough to stay in cache, so validation costs no extra pass over memory.
Scalar parameters (``num_classes``, ``threshold``, ``zero_division``) may be
Python or NumPy numbers, never bools or strings. A confusion matrix has at most
`MAX_CLASSES` classes, so an absurd ``num_classes`` or label is refused at once
instead of ending in a `MemoryError`.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAX_CLASSES",
    "ConfusionMatrix",
    "accuracy",
    "argmax_predictions",
    "confusion_matrix",
    "f1_score",
    "precision",
    "recall",
    "threshold_predictions",
]

MAX_CLASSES = 4096
"""Most classes of a confusion matrix (``num_classes``, or the largest label + 1).

The dense K x K int64 matrix of 4096 classes takes 128 MiB; past that a dense
confusion matrix is the wrong tool. `accuracy` builds no matrix and has no cap.
"""

Average = Literal["micro", "macro", "weighted"]
_AVERAGES = ("micro", "macro", "weighted")

# Block length for the validating loops. Two int64 blocks plus one index buffer
# (3 x 256 KiB) stay in the 2 MiB L2 cache, so the range check, the index
# arithmetic and np.bincount all read hot data; 2**14..2**16 profiled equally
# well, smaller blocks pay Python overhead per block, larger ones spill to L3.
_BLOCK = 1 << 15
_INT64_LIMIT = 1 << 63
# Rows of class probabilities must sum to 1 within this: loose enough for
# float16/float32 softmax output, tight enough to reject logits and
# independent sigmoid outputs.
_ROW_SUM_ATOL = 1e-3


# --8<-- [start:labels]
def _labels(y: ArrayLike, name: str) -> NDArray[Any]:
    """Return ``y`` as a non-empty 1-D array of a numeric dtype (no copy if possible)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D vector of integer class labels; got shape {arr.shape}"
            " (use argmax_predictions or threshold_predictions for probabilities)"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold integer class labels; got dtype {arr.dtype}")
    return arr


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    t = _labels(y_true, "y_true")
    p = _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"length mismatch: y_true has {t.shape[0]} labels, y_pred has {p.shape[0]}"
        )
    return t, p


def _num_classes(num_classes: object) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool | np.bool_):
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    try:
        k = operator.index(num_classes)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}") from None
    if k < 1:
        raise ValueError(f"num_classes must be a positive integer; got {k}")
    if k > MAX_CLASSES:
        raise ValueError(f"num_classes must be at most MAX_CLASSES={MAX_CLASSES}; got {k}")
    return k


def _invalid(
    block: NDArray[Any], offset: int, name: str, limit: int | None, *, capped: bool = False
) -> ValueError:
    """Describe the first bad label of a block that failed the fast check.

    ``capped``: ``limit`` is `MAX_CLASSES` (``num_classes=None``), not ``num_classes``.
    """

    def first(mask: NDArray[np.bool_]) -> tuple[int, Any]:
        i = int(np.argmax(mask))
        return offset + i, block[i].item()

    if block.dtype.kind == "f":
        bad = ~np.isfinite(block)
        if bad.any():
            i, v = first(bad)
            return ValueError(f"{name} contains {v} (NaN or infinity) at index {i}")
    if block.dtype.kind in "if":
        neg = block < 0
        if neg.any():
            i, v = first(neg)
            return ValueError(f"{name} contains a negative label {v} at index {i}")
    if block.dtype.kind == "f":
        frac = block != np.trunc(block)
        if frac.any():
            i, v = first(frac)
            return ValueError(f"{name} contains a non-integer label {v} at index {i}")
    bound = _INT64_LIMIT if limit is None else limit
    # Compared as Python ints: exact for every integer dtype and for floats.
    big = np.array([int(v) >= bound for v in block.tolist()])
    i, v = first(big)
    v = int(v)
    if limit is None:
        return ValueError(f"{name} contains label {v} at index {i}, too large for int64")
    if capped:
        return ValueError(
            f"{name} contains label {v} at index {i}: a confusion matrix has at most "
            f"MAX_CLASSES={limit} classes"
        )
    return ValueError(f"{name} contains label {v} at index {i}, which is >= num_classes={limit}")


def _block(
    y: NDArray[Any], start: int, stop: int, name: str, limit: int | None, *, capped: bool = False
) -> tuple[NDArray[np.int64], int]:
    """Labels ``y[start:stop]`` as int64 after checking them, and their maximum.

    Checks: finite, whole, non-negative and (when ``limit`` is given) below it;
    ``capped`` as in `_invalid`.
    """
    x = y[start:stop]
    if x.dtype.kind == "f":
        lo, hi = x.min(), x.max()
        # NaN fails both comparisons, so one test covers NaN, inf and range.
        if not (lo >= 0 and hi < (_INT64_LIMIT if limit is None else limit)):
            raise _invalid(x, start, name, limit, capped=capped)
        whole: NDArray[np.int64] = x.astype(np.int64)
        if not np.array_equal(whole, x):
            raise _invalid(x, start, name, limit, capped=capped)
        return whole, int(hi)
    xi: NDArray[np.int64] = x if x.dtype == np.int64 else x.astype(np.int64)
    # Seen as unsigned, a negative int64 is >= 2**63: one max() checks both ends.
    top = int(np.maximum.reduce(xi.view(np.uint64)))
    if top >= (_INT64_LIMIT if limit is None else limit):
        raise _invalid(x, start, name, limit, capped=capped)
    return xi, top


# --8<-- [end:labels]


# --8<-- [start:count_pairs]
def _count_pairs(
    y_true: NDArray[Any], y_pred: NDArray[Any], num_classes: int | None
) -> NDArray[np.int64]:
    """Confusion counts of two checked label vectors, validated block by block.

    With ``num_classes=None`` the matrix grows as larger labels appear: earlier
    counts keep their (true, predicted) cells, so the result equals one pass
    with ``num_classes = max label + 1`` (at most `MAX_CLASSES`).
    """
    n = int(y_true.shape[0])
    k = num_classes if num_classes is not None else 0
    limit, capped = (MAX_CLASSES, True) if num_classes is None else (num_classes, False)
    counts = np.zeros((k, k), dtype=np.int64)
    index = np.empty(min(n, _BLOCK), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        t, t_max = _block(y_true, start, stop, "y_true", limit, capped=capped)
        p, p_max = _block(y_pred, start, stop, "y_pred", limit, capped=capped)
        if num_classes is None and max(t_max, p_max) >= k:
            grown = np.zeros((max(t_max, p_max) + 1,) * 2, dtype=np.int64)
            grown[:k, :k] = counts
            counts, k = grown, grown.shape[0]
        flat = index[: stop - start]
        np.multiply(t, k, out=flat)
        np.add(flat, p, out=flat)
        if k * k > 16 * _BLOCK:
            # Many classes: a block fills few of the k*k cells, so count the distinct
            # pairs instead of adding a mostly-zero k*k histogram per block.
            cells, hits = np.unique(flat, return_counts=True)
            counts.reshape(-1)[cells] += hits
        else:
            counts += np.bincount(flat, minlength=k * k).reshape(k, k)
    return counts


# --8<-- [end:count_pairs]


# --8<-- [start:confusion_matrix]
def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, num_classes: int | None = None
) -> NDArray[np.int64]:
    r"""Count each (true, predicted) pair of class labels.

    $$
    C_{ij} = \sum_{n=1}^{N} [\,y_n = i \wedge \hat y_n = j\,], \qquad i, j \in \{0, \dots, K-1\}
    $$

    Row ``i`` is the true class, column ``j`` the predicted class, so the
    diagonal holds the correct predictions and ``C.sum() == N``.

    Spec: eq-confusion-matrix

    Matches: ``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=range(K))``.

    References:
        Fawcett, "An introduction to ROC analysis", Pattern Recognition
        Letters 27 (2006) 861-874.

    Args:
        y_true: 1-D integer class labels in ``[0, num_classes)``.
        y_pred: 1-D integer class labels, same length.
        num_classes: K, an integer in [1, `MAX_CLASSES`]; ``None`` means
            ``max label + 1``.

    Returns:
        int64 array of shape (K, K).

    Raises:
        ValueError: empty input, length mismatch, NaN/inf, a negative,
            non-integer or too large label (>= ``num_classes``, or >=
            `MAX_CLASSES` when ``num_classes`` is ``None``), or a bad
            ``num_classes`` (not a positive integer, or above `MAX_CLASSES`).

    Examples:
        >>> confusion_matrix([0, 0, 1, 1, 1, 2, 2, 2, 2, 2],
        ...                  [0, 1, 1, 1, 0, 2, 2, 2, 1, 0])
        array([[1, 1, 0],
               [1, 2, 0],
               [1, 1, 3]])
    """
    t, p = _pair(y_true, y_pred)
    return _count_pairs(t, p, _num_classes(num_classes))


# --8<-- [end:confusion_matrix]


# --8<-- [start:accuracy]
def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    r"""Fraction of predictions equal to the true label.

    $$
    \mathrm{accuracy} = \frac{TP + TN}{TP + TN + FP + FN}
    = \frac{\operatorname{tr} C}{\sum_{i,j} C_{ij}}
    = \frac{1}{N}\sum_{n=1}^{N} [\,\hat y_n = y_n\,]
    $$

    The first form is the binary one; the trace form holds for any number of
    classes (for two classes the diagonal is TN and TP).

    Spec: eq-accuracy

    Matches: ``sklearn.metrics.accuracy_score`` and ``keras.metrics.Accuracy``
    on label vectors (``keras.metrics.CategoricalAccuracy`` on one-hot rows).

    References:
        Fawcett, "An introduction to ROC analysis", Pattern Recognition
        Letters 27 (2006) 861-874.

    Args:
        y_true: 1-D non-negative integer class labels.
        y_pred: 1-D non-negative integer class labels, same length.

    Returns:
        The accuracy in [0, 1].

    Raises:
        ValueError: empty input, length mismatch, NaN/inf, a negative or
            non-integer label.

    Examples:
        >>> accuracy([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0, 1])
        0.75
    """
    t, p = _pair(y_true, y_pred)
    n = int(t.shape[0])
    equal = np.empty(min(n, _BLOCK), dtype=np.bool_)
    hits = 0
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        tb, _ = _block(t, start, stop, "y_true", None)
        pb, _ = _block(p, start, stop, "y_pred", None)
        hits += int(np.count_nonzero(np.equal(tb, pb, out=equal[: stop - start])))
    return hits / n


# --8<-- [end:accuracy]


# --8<-- [start:from_counts]
def _real(value: object, name: str) -> float:
    """A Python or NumPy int or float (never a bool or a string) as a float."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float64: out of every range used here
        return math.inf


def _zero_division(value: object) -> float:
    try:
        z = _real(value, "zero_division")
    except ValueError:
        raise ValueError(f"zero_division must be 0, 1 or nan; got {value!r}") from None
    if not (z in (0.0, 1.0) or math.isnan(z)):
        raise ValueError(f"zero_division must be 0, 1 or nan; got {value!r}")
    return z


def _average(average: object) -> Average | None:
    if average is None or (isinstance(average, str) and average in _AVERAGES):
        return average  # type: ignore[return-value]
    raise ValueError(f"unknown average {average!r}; expected None, 'micro', 'macro' or 'weighted'")


def _divide(
    num: NDArray[np.int64], den: NDArray[np.int64], zero_division: float
) -> NDArray[np.float64]:
    """``num / den`` per class, ``zero_division`` where ``den == 0``."""
    out = np.full(num.shape, zero_division, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _score(
    counts: NDArray[np.int64],
    which: Literal["precision", "recall", "f1"],
    average: Average | None,
    zero_division: float,
) -> float | NDArray[np.float64]:
    """Precision, recall or F1 from a confusion matrix, averaged like scikit-learn."""
    tp = np.diagonal(counts).copy()
    predicted = counts.sum(axis=0)  # TP + FP per class
    support = counts.sum(axis=1)  # TP + FN per class
    if average == "micro":
        tp, predicted, support = (
            tp.sum(keepdims=True),
            predicted.sum(keepdims=True),
            support.sum(keepdims=True),
        )
    if which == "precision":
        per_class = _divide(tp, predicted, zero_division)
    elif which == "recall":
        per_class = _divide(tp, support, zero_division)
    else:
        # 2TP / (2TP + FP + FN): defined whenever the class occurs at all,
        # even when P + R = 0 (then F1 = 0, as in scikit-learn).
        per_class = _divide(2 * tp, support + predicted, zero_division)
    if average is None:
        return per_class
    # zero_division=nan marks undefined classes; as in scikit-learn they drop
    # out of the average, and if every class is undefined the average is nan.
    undefined = np.isnan(per_class)
    if undefined.all():
        return math.nan
    if average == "weighted":
        values, weights = per_class[~undefined], support[~undefined]
        if weights.sum() == 0:
            return float(np.mean(values))
        return float(np.average(values, weights=weights))
    return float(np.nanmean(per_class))


# --8<-- [end:from_counts]


# --8<-- [start:precision]
@overload
def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = ...,
    average: None,
    zero_division: float = ...,
) -> NDArray[np.float64]: ...
@overload
def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = ...,
    average: Average = ...,
    zero_division: float = ...,
) -> float: ...
def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = None,
    average: Average | None = "macro",
    zero_division: float = 0.0,
) -> float | NDArray[np.float64]:
    r"""Precision: of the samples predicted as class k, the fraction that are k.

    $$
    P_k = \frac{TP_k}{TP_k + FP_k} = \frac{C_{kk}}{\sum_i C_{ik}}
    $$

    ``average``: ``None`` gives the vector of $P_k$; ``"macro"`` their mean;
    ``"weighted"`` their mean weighted by support $\sum_j C_{kj}$;
    ``"micro"`` pools the counts, $\sum_k TP_k / \sum_k (TP_k + FP_k)$, which
    for single-label data equals the accuracy. Where $TP_k + FP_k = 0$ the
    score is ``zero_division`` (0, 1 or nan; nan scores drop out of averages).

    Spec: eq-precision

    Matches: ``sklearn.metrics.precision_recall_fscore_support(labels=range(K),
    average=..., zero_division=...)``; with ``zero_division=0``, also
    ``keras.metrics.Precision`` (binary: ``average=None``, entry 1).

    References:
        Sokolova & Lapalme, "A systematic analysis of performance measures for
        classification tasks", Information Processing & Management 45 (2009).

    Args:
        y_true: 1-D integer class labels in ``[0, num_classes)``.
        y_pred: 1-D integer class labels, same length.
        num_classes: K; ``None`` means ``max label + 1``.
        average: ``None``, ``"micro"``, ``"macro"`` or ``"weighted"``.
        zero_division: score of a class with no predictions: 0, 1 or nan.

    Returns:
        A float, or a float64 array of shape (K,) when ``average=None``.

    Raises:
        ValueError: bad labels (see `confusion_matrix`), unknown
            ``average`` or a ``zero_division`` other than 0, 1 or nan.

    Examples:
        >>> t = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
        >>> p = [0, 1, 1, 1, 0, 2, 2, 2, 1, 0]
        >>> precision(t, p, average=None)
        array([0.33333333, 0.5       , 1.        ])
        >>> round(precision(t, p), 6), round(precision(t, p, average="weighted"), 6)
        (0.611111, 0.716667)
    """
    avg, zd = _average(average), _zero_division(zero_division)
    return _score(confusion_matrix(y_true, y_pred, num_classes=num_classes), "precision", avg, zd)


# --8<-- [end:precision]


# --8<-- [start:recall]
@overload
def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = ...,
    average: None,
    zero_division: float = ...,
) -> NDArray[np.float64]: ...
@overload
def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = ...,
    average: Average = ...,
    zero_division: float = ...,
) -> float: ...
def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = None,
    average: Average | None = "macro",
    zero_division: float = 0.0,
) -> float | NDArray[np.float64]:
    r"""Recall: of the samples of class k, the fraction predicted as k.

    $$
    R_k = \frac{TP_k}{TP_k + FN_k} = \frac{C_{kk}}{\sum_j C_{kj}}
    $$

    Averaging as in `precision`. The support-weighted recall equals the
    accuracy. Where $TP_k + FN_k = 0$ (class k never occurs) the score is
    ``zero_division``.

    Spec: eq-recall

    Matches: ``sklearn.metrics.precision_recall_fscore_support(labels=range(K),
    average=..., zero_division=...)``; with ``zero_division=0``, also
    ``keras.metrics.Recall`` (binary: ``average=None``, entry 1).

    References:
        Sokolova & Lapalme, "A systematic analysis of performance measures for
        classification tasks", Information Processing & Management 45 (2009).

    Args:
        y_true: 1-D integer class labels in ``[0, num_classes)``.
        y_pred: 1-D integer class labels, same length.
        num_classes: K; ``None`` means ``max label + 1``.
        average: ``None``, ``"micro"``, ``"macro"`` or ``"weighted"``.
        zero_division: score of a class that never occurs: 0, 1 or nan.

    Returns:
        A float, or a float64 array of shape (K,) when ``average=None``.

    Raises:
        ValueError: bad labels (see `confusion_matrix`), unknown
            ``average`` or a ``zero_division`` other than 0, 1 or nan.

    Examples:
        >>> t = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
        >>> p = [0, 1, 1, 1, 0, 2, 2, 2, 1, 0]
        >>> recall(t, p, average=None)
        array([0.5       , 0.66666667, 0.6       ])
        >>> round(recall(t, p), 6), recall(t, p, average="weighted")
        (0.588889, 0.6)
    """
    avg, zd = _average(average), _zero_division(zero_division)
    return _score(confusion_matrix(y_true, y_pred, num_classes=num_classes), "recall", avg, zd)


# --8<-- [end:recall]


# --8<-- [start:f1_score]
@overload
def f1_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = ...,
    average: None,
    zero_division: float = ...,
) -> NDArray[np.float64]: ...
@overload
def f1_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = ...,
    average: Average = ...,
    zero_division: float = ...,
) -> float: ...
def f1_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = None,
    average: Average | None = "macro",
    zero_division: float = 0.0,
) -> float | NDArray[np.float64]:
    r"""F1: the harmonic mean of precision and recall, per class.

    $$
    F_k = \frac{2 P_k R_k}{P_k + R_k} = \frac{2\,TP_k}{2\,TP_k + FP_k + FN_k}
    $$

    The count form is used: it is defined whenever class k occurs in either
    vector (and is 0 when $TP_k = 0$); only a class absent from both gets
    ``zero_division``. Averaging as in `precision`; ``"micro"`` F1 equals
    the accuracy for single-label data.

    Spec: eq-f1

    Matches: ``sklearn.metrics.precision_recall_fscore_support(labels=range(K),
    average=..., zero_division=...)``; with ``zero_division=0``,
    ``keras.metrics.F1Score(average=..., threshold=None)`` on one-hot rows up
    to its 1e-7 denominators (agreement within 1e-6).

    References:
        van Rijsbergen, *Information Retrieval*, 2nd ed., Butterworths, 1979,
        ch. 7; Sokolova & Lapalme, Information Processing & Management 45 (2009).

    Args:
        y_true: 1-D integer class labels in ``[0, num_classes)``.
        y_pred: 1-D integer class labels, same length.
        num_classes: K; ``None`` means ``max label + 1``.
        average: ``None``, ``"micro"``, ``"macro"`` or ``"weighted"``.
        zero_division: score of a class absent from both vectors: 0, 1 or nan.

    Returns:
        A float, or a float64 array of shape (K,) when ``average=None``.

    Raises:
        ValueError: bad labels (see `confusion_matrix`), unknown
            ``average`` or a ``zero_division`` other than 0, 1 or nan.

    Examples:
        >>> t = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
        >>> p = [0, 1, 1, 1, 0, 2, 2, 2, 1, 0]
        >>> f1_score(t, p, average=None)
        array([0.4       , 0.57142857, 0.75      ])
        >>> round(f1_score(t, p), 6), round(f1_score(t, p, average="weighted"), 6)
        (0.57381, 0.626429)
        >>> f1_score(t, p, average="micro")
        0.6
    """
    avg, zd = _average(average), _zero_division(zero_division)
    return _score(confusion_matrix(y_true, y_pred, num_classes=num_classes), "f1", avg, zd)


# --8<-- [end:f1_score]


# --8<-- [start:confusion_matrix_streaming]
class ConfusionMatrix:
    """Streaming confusion matrix: add batches, read metrics of everything seen.

    The metrics come from the summed counts, so any split into batches gives
    exactly the one-pass result (not the mean of per-batch scores). This is
    the accumulator behind ``keras.metrics.*.update_state`` / ``result``.

    Args:
        num_classes: K, at most `MAX_CLASSES`. ``None`` grows the matrix to
            ``max label + 1`` (at most `MAX_CLASSES`) as larger labels arrive,
            which equals the one-pass inference.

    Raises:
        ValueError: a bad ``num_classes``; `update` as `confusion_matrix`.

    Examples:
        >>> cm = ConfusionMatrix(num_classes=3)
        >>> cm.update([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
        >>> cm.update([2, 2, 2, 2, 2], [2, 2, 2, 1, 0])
        >>> cm.counts
        array([[1, 1, 0],
               [1, 2, 0],
               [1, 1, 3]])
        >>> cm.accuracy(), round(cm.f1_score(), 6)
        (0.6, 0.57381)
    """

    def __init__(self, num_classes: int | None = None) -> None:
        self._fixed = _num_classes(num_classes)
        k = self._fixed or 0
        self._counts = np.zeros((k, k), dtype=np.int64)

    @property
    def num_classes(self) -> int:
        """K: the fixed number of classes, or max label seen + 1."""
        return int(self._counts.shape[0])

    @property
    def counts(self) -> NDArray[np.int64]:
        """A copy of the (K, K) counts, rows true, columns predicted."""
        return self._counts.copy()

    def update(self, y_true: ArrayLike, y_pred: ArrayLike) -> None:
        """Add one batch of labels (validated like `confusion_matrix`).

        The whole batch is checked and counted before the running counts
        change, so a refused batch leaves the matrix exactly as it was.

        Raises:
            ValueError: as `confusion_matrix`: bad labels, a length mismatch, or
                a label past ``num_classes`` (or `MAX_CLASSES`).
        """
        t, p = _pair(y_true, y_pred)
        batch = _count_pairs(t, p, self._fixed)
        k, b = self._counts.shape[0], batch.shape[0]
        if b > k:
            batch[:k, :k] += self._counts
            self._counts = batch
        else:
            self._counts[:b, :b] += batch

    def _checked(self) -> NDArray[np.int64]:
        if self._counts.sum() == 0:
            raise ValueError("ConfusionMatrix is empty: call update() with data first")
        return self._counts

    def accuracy(self) -> float:
        """trace(C) / sum(C) over everything seen (eq-accuracy)."""
        c = self._checked()
        return int(np.trace(c)) / int(c.sum())

    @overload
    def precision(self, *, average: None, zero_division: float = ...) -> NDArray[np.float64]: ...
    @overload
    def precision(self, *, average: Average = ..., zero_division: float = ...) -> float: ...
    def precision(
        self, *, average: Average | None = "macro", zero_division: float = 0.0
    ) -> float | NDArray[np.float64]:
        """Precision of everything seen, as `precision` (eq-precision)."""
        avg, zd = _average(average), _zero_division(zero_division)
        return _score(self._checked(), "precision", avg, zd)

    @overload
    def recall(self, *, average: None, zero_division: float = ...) -> NDArray[np.float64]: ...
    @overload
    def recall(self, *, average: Average = ..., zero_division: float = ...) -> float: ...
    def recall(
        self, *, average: Average | None = "macro", zero_division: float = 0.0
    ) -> float | NDArray[np.float64]:
        """Recall of everything seen, as `recall` (eq-recall)."""
        avg, zd = _average(average), _zero_division(zero_division)
        return _score(self._checked(), "recall", avg, zd)

    @overload
    def f1_score(self, *, average: None, zero_division: float = ...) -> NDArray[np.float64]: ...
    @overload
    def f1_score(self, *, average: Average = ..., zero_division: float = ...) -> float: ...
    def f1_score(
        self, *, average: Average | None = "macro", zero_division: float = 0.0
    ) -> float | NDArray[np.float64]:
        """F1 of everything seen, as `f1_score` (eq-f1)."""
        avg, zd = _average(average), _zero_division(zero_division)
        return _score(self._checked(), "f1", avg, zd)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, seen={int(self._counts.sum())})"


# --8<-- [end:confusion_matrix_streaming]


def _probabilities(y_prob: ArrayLike) -> NDArray[np.floating[Any]]:
    arr = np.asarray(y_prob)
    if arr.size == 0:
        raise ValueError("y_prob is empty")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"y_prob must hold probabilities; got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False) if arr.dtype.kind != "f" else arr
    if not np.isfinite(arr).all():
        raise ValueError("y_prob contains NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"y_prob has values outside [0, 1] (min {lo}, max {hi})")
    return arr


# --8<-- [start:threshold_predictions]
def threshold_predictions(y_prob: ArrayLike, threshold: float = 0.5) -> NDArray[np.int64]:
    r"""Binary labels from probabilities of the positive class, Keras's strict rule.

    $$
    \hat y_n = [\,p_n > \tau\,]
    $$

    A probability exactly at the threshold is negative. Any shape is accepted
    and kept (a column ``(N, 1)`` stays a column; pass ``.ravel()`` to the
    metrics).

    Spec: eq-threshold

    Matches: ``keras.metrics.BinaryAccuracy``, ``Precision``, ``Recall`` and
    ``F1Score(threshold=...)``, which all count ``y_pred > threshold`` as
    positive. (scikit-learn takes labels and has no threshold.)

    References:
        Keras 3 source, ``keras/src/metrics/metrics_utils.py``
        (``update_confusion_matrix_variables``: "y_pred > thresholds").

    Args:
        y_prob: probabilities in [0, 1].
        threshold: tau in [0, 1], default 0.5.

    Returns:
        int64 array of 0/1 labels with the shape of ``y_prob``.

    Raises:
        ValueError: empty input, NaN/inf, values outside [0, 1], or a
            threshold outside [0, 1].

    Examples:
        >>> threshold_predictions([0.2, 0.5, 0.51, 0.9])
        array([0, 0, 1, 1])
    """
    tau = _real(threshold, "threshold")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}")
    return (_probabilities(y_prob) > tau).astype(np.int64)


# --8<-- [end:threshold_predictions]


# --8<-- [start:argmax_predictions]
def argmax_predictions(y_prob: ArrayLike) -> NDArray[np.int64]:
    """Class labels from rows of class probabilities: the most probable class.

    Ties go to the lowest class index (``np.argmax``), as in
    ``keras.metrics.CategoricalAccuracy``. Rows must be probabilities: values
    in [0, 1] summing to 1 within 1e-3 (softmax output in float16/32 passes;
    logits and independent sigmoid outputs do not). Nothing is renormalised.

    Matches: ``keras.metrics.CategoricalAccuracy`` (argmax of each row) and
    ``keras.metrics.F1Score(threshold=None)`` when rows have a unique maximum.

    Args:
        y_prob: array of shape (N, K).

    Returns:
        int64 labels of shape (N,).

    Raises:
        ValueError: not 2-D, empty, NaN/inf, values outside [0, 1], or a row
            not summing to 1.

    Examples:
        >>> argmax_predictions([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
        array([1, 0])
    """
    arr = np.asarray(y_prob)
    if arr.ndim != 2:
        raise ValueError(f"y_prob must have shape (N, K); got shape {arr.shape}")
    arr = _probabilities(arr)
    sums = arr.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0) > _ROW_SUM_ATOL
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(f"y_prob rows must sum to 1; row {i} sums to {sums[i]}")
    labels: NDArray[np.int64] = np.argmax(arr, axis=1).astype(np.int64)
    return labels


# --8<-- [end:argmax_predictions]
