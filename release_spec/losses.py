"""Loss functions: mean squared error and categorical cross-entropy.

One file, NumPy only: copy it into a project and it works. Each function
checks its input and raises `ValueError` naming the problem (NaN or
inf, empty input, shape mismatch, labels out of range, probabilities outside
[0, 1] or rows not summing to one); nothing is silently renormalised.
``epsilon`` may be a Python or NumPy number (never a bool or a string).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ROW_SUM_ATOL",
    "categorical_crossentropy",
    "mean_squared_error",
    "perplexity",
    "sequence_crossentropies",
    "sparse_categorical_crossentropy",
    "token_crossentropies",
]

ROW_SUM_ATOL = 1e-5
"""How far a probability row's sum may be from 1 (absolute, float32 and wider).

A float32 softmax row sums to 1 within a few float32 ulps (~1e-6) whatever the
number of classes, so 1e-5 accepts every honest probability row while
rejecting logits and unnormalised scores. For half precision the bound is
``8 * np.finfo(np.float16).eps`` (~7.8e-3) instead.
"""

# Elements per block: 64 Ki float64 = 512 KiB, small enough to stay in L2.
_BLOCK = 1 << 16


def _real_array(x: ArrayLike, name: str) -> NDArray[Any]:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _same_shape(y_true: NDArray[Any], y_pred: NDArray[Any]) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")


def _require_finite(arr: NDArray[Any], name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")


def _probability_rows(arr: NDArray[Any], name: str) -> NDArray[np.float64]:
    """Check that ``arr`` holds probability rows (last axis); return them as float64 (n, K)."""
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a class axis (ndim >= 1), got a scalar")
    _require_finite(arr, name)
    rows = arr.reshape(-1, arr.shape[-1]).astype(np.float64, copy=False)
    if rows.min() < 0.0 or rows.max() > 1.0:
        raise ValueError(f"{name} has probabilities outside [0, 1]")
    tol = ROW_SUM_ATOL
    if arr.dtype.kind == "f":
        tol = max(tol, 8 * float(np.finfo(arr.dtype).eps))
    error = np.abs(rows.sum(axis=1) - 1.0)
    worst = int(np.argmax(error))
    if error[worst] > tol:
        raise ValueError(
            f"{name} rows must sum to 1 (within {tol:g}); row {worst} sums to "
            f"{rows[worst].sum():.9g} (the function never renormalises)"
        )
    return rows


def _clip_bounds(epsilon: object) -> tuple[float, float]:
    if isinstance(epsilon, bool | np.bool_) or not isinstance(
        epsilon, int | float | np.integer | np.floating
    ):
        raise ValueError(f"epsilon must be a real number in (0, 0.5), got {epsilon!r}")
    try:
        eps = float(epsilon)
    except OverflowError:  # an int beyond float64
        eps = math.inf
    if not (0.0 < eps < 0.5):
        raise ValueError(f"epsilon must be in (0, 0.5), got {epsilon!r}")
    return eps, 1.0 - eps


def _sparse_labels(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.intp], NDArray[Any]]:
    """Integer labels and predictions ``p`` (..., K), checked (``y_true`` first).

    The labels have shape ``p.shape[:-1]``.
    """
    labels = _real_array(y_true, "y_true")
    p = _real_array(y_pred, "y_pred")
    if p.ndim == 0:
        raise ValueError("y_pred must have a class axis (ndim >= 1), got a scalar")
    if labels.ndim == p.ndim and labels.shape[-1:] == (1,):
        labels = labels[..., 0]
    if labels.shape != p.shape[:-1]:
        raise ValueError(
            f"shape mismatch: y_true {labels.shape} must equal y_pred {p.shape} "
            "without its class axis"
        )
    n_classes = p.shape[-1]
    if labels.dtype.kind == "f":
        _require_finite(labels, "y_true")
        if not np.array_equal(labels, np.floor(labels)):
            raise ValueError("y_true labels must be integers, got non-integer values")
    elif labels.dtype.kind == "b":
        raise ValueError("y_true labels must be integers, got booleans")
    if labels.min() < 0:
        raise ValueError(f"y_true has negative labels (min {labels.min()})")
    if labels.max() >= n_classes:
        raise ValueError(f"y_true labels must be < num_classes={n_classes} (max {labels.max()})")
    return labels.astype(np.intp), p


# --8<-- [start:mean_squared_error]
def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    r"""Mean squared error over all elements.

    $$
    \mathcal{L}_{\mathrm{MSE}} = \frac{1}{n}\sum_{i=1}^{n} \left(y_i - \hat{y}_i\right)^2
    $$

    Spec: eq-mse

    The differences and their squares are formed in float64 block by block
    (64 Ki elements at a time), so float32 input never loses digits to
    cancellation: the difference of two float32 numbers and its square are
    exact in float64. Each block's sum of squares is a float64 dot product and
    the block sums are added pairwise, so 10^8 elements stay within 1e-9
    relative of the exact value (the bound the tests check; on their input of
    10^8 float32 numbers near 10^8 the result is exact), without ever holding
    a float64 copy of the whole input.

    Matches: ``keras.losses.MeanSquaredError()`` (mean over the last axis, then
    over the batch; no 1/2 factor) for inputs of equal shape, which Keras
    computes in float32.

    References:
        Goodfellow, Bengio and Courville, *Deep Learning* (2016), section 5.1.4.

    Args:
        y_true: Targets, any real numeric array.
        y_pred: Predictions, the same shape as ``y_true`` (no broadcasting).

    Returns:
        The mean of the squared differences as a Python float; ``inf`` only
        when finite inputs overflow float64 (|difference| > ~1.3e154).

    Raises:
        ValueError: Empty input, a shape mismatch, a non-numeric dtype, or
            NaN/inf in either input.

    Examples:
        >>> mean_squared_error([0.0, 1.0, 2.0, 3.0], [0.5, 1.0, 1.0, 3.0])
        0.3125
    """
    t = _real_array(y_true, "y_true")
    p = _real_array(y_pred, "y_pred")
    _same_shape(t, p)
    t_flat = t.reshape(-1)
    p_flat = p.reshape(-1)
    n = t_flat.size
    diff = np.empty(min(n, _BLOCK), dtype=np.float64)
    partial = np.empty((n + _BLOCK - 1) // _BLOCK, dtype=np.float64)
    with np.errstate(all="ignore"):  # inf - inf: reported below as a ValueError
        for b, start in enumerate(range(0, n, _BLOCK)):
            stop = min(start + _BLOCK, n)
            d = diff[: stop - start]
            np.subtract(t_flat[start:stop], p_flat[start:stop], out=d, dtype=np.float64)
            # einsum, not np.dot: BLAS may start threads for a dot product,
            # which costs more than it saves on a loaded machine.
            partial[b] = np.einsum("i,i->", d, d)
        total = float(np.sum(partial))
    if not np.isfinite(total):
        # NaN or inf in the input always reaches the sum, so validation costs
        # no pass of its own; only here do we look for the culprit.
        _require_finite(t, "y_true")
        _require_finite(p, "y_pred")
    return total / n


# --8<-- [end:mean_squared_error]


# --8<-- [start:categorical_crossentropy]
def categorical_crossentropy(
    y_true: ArrayLike, y_pred: ArrayLike, *, epsilon: float = 1e-7
) -> float:
    r"""Categorical cross-entropy between probability rows, averaged over samples.

    $$
    \mathcal{L}_{\mathrm{CCE}} = -\frac{1}{N}\sum_{i=1}^{N}\sum_{k=1}^{K}
        y_{ik}\,\log \operatorname{clip}\!\left(\hat{y}_{ik},\ \epsilon,\ 1-\epsilon\right)
    $$

    Spec: eq-cce

    The last axis holds the K classes; every other position is a sample.
    Both ``y_true`` (one-hot or soft labels) and ``y_pred`` must be rows of
    probabilities: values in [0, 1] summing to 1 within `ROW_SUM_ATOL`.
    A row that does not is an error, never renormalised. The sum runs in
    float64.

    Matches: ``keras.losses.CategoricalCrossentropy()`` (``from_logits=False``,
    no label smoothing, mean over samples): Keras clips the predictions to
    [1e-7, 1 - 1e-7] before the logarithm. Keras also divides each row by its
    sum, which is the identity on the rows accepted here.

    References:
        Goodfellow, Bengio and Courville, *Deep Learning* (2016), section 6.2.2.3.

    Args:
        y_true: Target probabilities, shape (..., K).
        y_pred: Predicted probabilities, the same shape.
        epsilon: Clipping bound, in (0, 0.5); Keras's ``backend.epsilon()``.

    Returns:
        The mean loss as a Python float.

    Raises:
        ValueError: Empty input, a shape mismatch, NaN/inf, values outside
            [0, 1], rows not summing to 1, or ``epsilon`` out of range.

    Examples:
        >>> round(categorical_crossentropy([[0, 1, 0], [0, 0, 1]],
        ...                                [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]), 6)
        0.458145
    """
    lo, hi = _clip_bounds(epsilon)
    t = _real_array(y_true, "y_true")
    p = _real_array(y_pred, "y_pred")
    _same_shape(t, p)
    t_rows = _probability_rows(t, "y_true")
    p_rows = _probability_rows(p, "y_pred")
    log_p = np.log(np.clip(p_rows, lo, hi))
    return float(-np.einsum("ik,ik->", t_rows, log_p) / t_rows.shape[0])


# --8<-- [end:categorical_crossentropy]


# --8<-- [start:sparse_categorical_crossentropy]
def sparse_categorical_crossentropy(
    y_true: ArrayLike, y_pred: ArrayLike, *, epsilon: float = 1e-7
) -> float:
    r"""Categorical cross-entropy with integer labels, averaged over samples.

    $$
    \mathcal{L}_{\mathrm{CCE}} = -\frac{1}{N}\sum_{i=1}^{N}
        \log \operatorname{clip}\!\left(\hat{y}_{i,c_i},\ \epsilon,\ 1-\epsilon\right),
    \qquad c_i \in \{0, \dots, K-1\}
    $$

    Spec: eq-cce

    The same equation as `categorical_crossentropy` with the one-hot
    row of label $c_i$ in place of $y_i$. Labels have the shape of
    ``y_pred`` without its class axis (a trailing axis of length 1 is also
    accepted, as in Keras); integer dtypes, or floats holding whole numbers.

    Matches: ``keras.losses.SparseCategoricalCrossentropy()``
    (``from_logits=False``, mean over samples), which clips to
    [1e-7, 1 - 1e-7]. Keras then takes a softmax of the clipped
    log-probabilities, i.e. divides by the clipped row's sum; that sum is
    within K·1e-7 of 1 on the rows accepted here, so the two agree to about
    K·1e-7 absolute.

    References:
        Goodfellow, Bengio and Courville, *Deep Learning* (2016), section 6.2.2.3.

    Args:
        y_true: Integer class labels, shape (...) or (..., 1).
        y_pred: Predicted probabilities, shape (..., K).
        epsilon: Clipping bound, in (0, 0.5).

    Returns:
        The mean loss as a Python float.

    Raises:
        ValueError: Empty input, a shape mismatch, labels that are negative,
            non-integer or >= K, NaN/inf, probabilities outside [0, 1], rows
            not summing to 1, or ``epsilon`` out of range.

    Examples:
        >>> round(sparse_categorical_crossentropy([1, 2],
        ...                                       [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]), 6)
        0.458145
    """
    return float(np.mean(token_crossentropies(y_true, y_pred, epsilon=epsilon)))


# --8<-- [end:sparse_categorical_crossentropy]


def _mask(mask: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.bool_] | None:
    """A boolean token mask of ``shape`` (True = the token counts), or None."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"shape mismatch: mask {arr.shape} must equal y_true {shape}")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf" or not np.all(np.isin(arr, (0, 1))):
            raise ValueError("mask must hold booleans or 0/1")
        arr = arr.astype(bool)
    return arr


# --8<-- [start:token_crossentropies]
def token_crossentropies(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    from_logits: bool = False,
    epsilon: float = 1e-7,
) -> NDArray[np.float64]:
    r"""Cross-entropy of every token: the terms of the sparse eq-cce, before the mean.

    $$
    \ell_t = -\log \operatorname{clip}\!\left(\hat{y}_{t,c_t},\ \epsilon,\ 1-\epsilon\right)
    \quad\text{or, from logits } z_t,\quad
    \ell_t = \log\sum_{k} e^{z_{tk}} - z_{t,c_t}
    $$

    Spec: eq-cce

    ``sparse_categorical_crossentropy(y_true, y_pred)`` is the mean of this
    array (same checks, same clipping). With ``from_logits=True`` the
    prediction is a row of logits and the log-softmax is taken in float64
    without clipping, as Keras does for logits.

    Matches: ``keras.losses.SparseCategoricalCrossentropy(reduction=None)``
    (``from_logits`` as given).

    Args:
        y_true: Integer token labels, shape (...) such as (n_tokens,) or
            (batch, seq); a trailing axis of length 1 is also accepted.
        y_pred: Probabilities (or logits), shape (..., K) with K the vocabulary.
        from_logits: Whether ``y_pred`` holds logits.
        epsilon: Clipping bound for probabilities, in (0, 0.5).

    Returns:
        The per-token losses, float64, the shape of the labels.

    Raises:
        ValueError: As `sparse_categorical_crossentropy`; for logits, NaN/inf.

    Examples:
        >>> token_crossentropies([1, 2], [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]).round(6)
        array([0.223144, 0.693147])
    """
    lo, hi = _clip_bounds(epsilon)
    labels, p = _sparse_labels(y_true, y_pred)
    flat = labels.reshape(-1)
    if from_logits:
        _require_finite(p, "y_pred")
        z = p.reshape(-1, p.shape[-1]).astype(np.float64)
        top = z.max(axis=1)
        log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        losses = log_norm - z[np.arange(z.shape[0]), flat]
    else:
        p_rows = _probability_rows(p, "y_pred")
        losses = -np.log(np.clip(p_rows[np.arange(p_rows.shape[0]), flat], lo, hi))
    out: NDArray[np.float64] = losses.reshape(labels.shape)
    return out


# --8<-- [end:token_crossentropies]


# --8<-- [start:perplexity]
def perplexity(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    from_logits: bool = False,
    epsilon: float = 1e-7,
    mask: ArrayLike | None = None,
) -> float:
    r"""Perplexity of a language model's token predictions: exp of the mean cross-entropy.

    $$
    \mathrm{PPL} = \exp\!\left(\frac{1}{T}\sum_{t=1}^{T} \ell_t\right)
                 = \exp\!\left(\mathcal{L}_{\mathrm{CCE}}\right),
    \qquad \ell_t = -\log \operatorname{clip}(\hat{y}_{t,c_t},\ \epsilon,\ 1-\epsilon)
    $$

    Spec: eq-perplexity

    The mean is the sparse categorical cross-entropy (eq-cce) over the $T$
    tokens kept by ``mask`` (all tokens when it is None), computed by
    `token_crossentropies`, the same code as `sparse_categorical_crossentropy`.
    Perplexity is the effective number of equally likely next tokens: 1 for
    perfect predictions, $K$ for the uniform distribution over a vocabulary of
    $K$, and it never goes below 1 (up to the clipping at $1-\epsilon$).

    Matches: ``exp(keras.losses.SparseCategoricalCrossentropy()(y_true, y_pred))``
    (Keras 3 has no perplexity metric of its own; ``keras_nlp.metrics.Perplexity``
    computes the same exponential of the masked mean).

    References:
        Jelinek, Mercer, Bahl, Baker, "Perplexity: a measure of the difficulty of
        speech recognition tasks", JASA 62(S1), 1977.
        Jurafsky and Martin, *Speech and Language Processing* (3rd ed. draft),
        chapter 3.

    Args:
        y_true: Integer token labels, shape (n_tokens,) or (batch, seq).
        y_pred: Probabilities (or logits), shape (..., K).
        from_logits: Whether ``y_pred`` holds logits (then no clipping).
        epsilon: Clipping bound for probabilities, in (0, 0.5).
        mask: Optional booleans (or 0/1) of the labels' shape; False drops a
            token (padding). At least one token must remain.

    Returns:
        The perplexity as a Python float (``inf`` only if the mean loss
        exceeds ~709, which needs logits).

    Raises:
        ValueError: As `sparse_categorical_crossentropy`; a mask of the wrong
            shape or values, or one that drops every token.

    Examples:
        >>> round(perplexity([1, 2], [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]), 6)
        1.581139
    """
    losses = token_crossentropies(y_true, y_pred, from_logits=from_logits, epsilon=epsilon)
    keep = _mask(mask, losses.shape)
    if keep is not None:
        if not keep.any():
            raise ValueError("mask drops every token: perplexity needs at least one")
        losses = losses[keep]
    with np.errstate(over="ignore"):
        return float(np.exp(np.mean(losses)))


# --8<-- [end:perplexity]


def sequence_crossentropies(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    from_logits: bool = False,
    epsilon: float = 1e-7,
    mask: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    r"""Per-sequence sums of token cross-entropies and token counts, for a perplexity interval.

    Sequences are the independent units of a held-out set (tokens inside one
    are not), so an interval for the perplexity is built from these two
    columns: ``statistics.perplexity_interval(sums, counts)``. The pooled
    perplexity is ``exp(sums.sum() / counts.sum())``, which equals
    `perplexity` with the same mask.

    Args:
        y_true: Integer token labels, shape (batch, seq).
        y_pred: Probabilities (or logits), shape (batch, seq, K).
        from_logits: Whether ``y_pred`` holds logits.
        epsilon: Clipping bound for probabilities, in (0, 0.5).
        mask: Optional booleans (or 0/1), shape (batch, seq); False drops a token.

    Returns:
        ``(sums, counts)``: float64 and int64 arrays of shape (batch,).

    Raises:
        ValueError: As `token_crossentropies`; labels that are not 2-D; a bad mask.

    Examples:
        >>> sums, counts = sequence_crossentropies([[1, 2]], [[[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]])
        >>> sums.round(6), counts
        (array([0.916291]), array([2]))
    """
    losses = token_crossentropies(y_true, y_pred, from_logits=from_logits, epsilon=epsilon)
    if losses.ndim != 2:
        raise ValueError(f"y_true must be (batch, seq) token labels, got shape {losses.shape}")
    keep = _mask(mask, losses.shape)
    if keep is None:
        keep = np.ones(losses.shape, dtype=bool)
    sums = np.where(keep, losses, 0.0).sum(axis=1)
    return sums, keep.sum(axis=1).astype(np.int64)
