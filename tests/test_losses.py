"""Spec tests for release_spec.losses: eq-mse and eq-cce.

Parity tests compare three things: our NumPy function, the Keras built-in loss
and the formula written out below with plain Python loops. Keras computes in
float32, so those comparisons use tolerances derived from float32 rounding
(unit roundoff u = 2**-24 ~ 6e-8 per operation); the literal loops run in
float64 and agree with ours to ~1e-12.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from release_spec.losses import (
    ROW_SUM_ATOL,
    categorical_crossentropy,
    mean_squared_error,
    sparse_categorical_crossentropy,
)

ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-7
KERAS_EXAMPLES = 25


# ---------------------------------------------------------------- strategies

shapes = st.tuples(st.integers(1, 8), st.integers(1, 6))


@st.composite
def pairs(draw: st.DrawFn, dtype: Any = np.float32, bound: float = 100.0) -> tuple[Any, Any]:
    shape = draw(shapes)
    elems = st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8)
    a = draw(hnp.arrays(dtype, shape, elements=elems))
    b = draw(hnp.arrays(dtype, shape, elements=elems))
    return a, b


@st.composite
def probability_rows(draw: st.DrawFn, n: int, k: int) -> np.ndarray:
    """Rows of probabilities in float64, exact zeros and ones included."""
    weights = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0)))
    hot = draw(hnp.arrays(np.bool_, (n,)))
    weights[hot] = 0.0
    weights[hot, draw(st.integers(0, k - 1))] = 1.0
    weights[weights.sum(axis=1) == 0.0] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


@st.composite
def cce_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(integer labels, one-hot targets, predictions), all with float32-exact values."""
    n, k = draw(st.integers(1, 8)), draw(st.integers(2, 6))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    y_pred = draw(probability_rows(n, k)).astype(np.float32).astype(np.float64)
    return labels, np.eye(k)[labels], y_pred


def literal_mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    total = 0.0
    values = list(zip(y_true.ravel().tolist(), y_pred.ravel().tolist(), strict=True))
    for t, p in values:
        total += (t - p) ** 2
    return total / len(values)


def literal_cce(y_true: np.ndarray, y_pred: np.ndarray, eps: float = EPS) -> float:
    total = 0.0
    for t_row, p_row in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        for t, p in zip(t_row, p_row, strict=True):
            total -= t * math.log(min(max(p, eps), 1.0 - eps))
    return total / len(y_true)


# ---------------------------------------------------------------- eq-mse


@pytest.mark.spec("eq-mse", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(pairs())
def test_mean_squared_error_matches_keras_and_formula(keras: Any, pair: tuple[Any, Any]) -> None:
    y_true, y_pred = pair
    ours = mean_squared_error(y_true, y_pred)
    literal = literal_mse(y_true.astype(np.float64), y_pred.astype(np.float64))
    # Keras: a float32 subtraction, square and mean, each rounding by <= u
    # relative; the mean of <= 48 terms adds <= 48 u. 1e-5 covers it.
    theirs = float(keras.losses.MeanSquaredError()(y_true, y_pred))
    assert ours == pytest.approx(literal, rel=1e-12, abs=0.0)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-30)


@pytest.mark.spec("eq-mse", kind="parity")
def test_mean_squared_error_worked_example() -> None:
    assert mean_squared_error([0.0, 1.0, 2.0, 3.0], [0.5, 1.0, 1.0, 3.0]) == 0.3125


@pytest.mark.spec("eq-mse", kind="property")
@given(shapes, st.data())
def test_mean_squared_error_nonnegative_zero_iff_equal(shape: Any, data: st.DataObject) -> None:
    # On a grid of multiples of 2**-10 a nonzero difference cannot underflow
    # when squared (below ~1e-162 it would, and the mean would be 0 honestly).
    grid = st.integers(-(10**9), 10**9).map(lambda i: i / 1024)
    y_true = data.draw(hnp.arrays(np.float64, shape, elements=grid))
    y_pred = data.draw(hnp.arrays(np.float64, shape, elements=grid))
    loss = mean_squared_error(y_true, y_pred)
    assert loss >= 0.0
    assert mean_squared_error(y_true, y_true) == 0.0
    assert (loss == 0.0) == bool(np.array_equal(y_true, y_pred))


@pytest.mark.spec("eq-mse", kind="property")
@given(pairs(np.float64, 1e6))
def test_mean_squared_error_symmetric(pair: tuple[Any, Any]) -> None:
    y_true, y_pred = pair
    assert mean_squared_error(y_true, y_pred) == mean_squared_error(y_pred, y_true)


@pytest.mark.spec("eq-mse", kind="property")
@given(pairs(np.float64, 1e6), st.randoms(use_true_random=False))
def test_mean_squared_error_permutation_invariant(pair: tuple[Any, Any], rnd: Any) -> None:
    y_true, y_pred = pair
    order = list(range(y_true.size))
    rnd.shuffle(order)
    shuffled = mean_squared_error(y_true.ravel()[order], y_pred.ravel()[order])
    assert shuffled == pytest.approx(mean_squared_error(y_true, y_pred), rel=1e-12)


@pytest.mark.spec("eq-mse", kind="property")
def test_mean_squared_error_exact_near_1e8_for_1e8_float32_elements() -> None:
    # Values near 1e8 are multiples of 8 (float32's spacing there), so every
    # difference and square is an integer and the exact sum is known in
    # Python integers. A float32 accumulator is off by ~1e-7 relative here.
    rng = np.random.default_rng(20150101)
    period = 997
    a = 100_000_000 + 8 * rng.integers(-64, 64, period)
    b = 100_000_000 + 8 * rng.integers(-64, 64, period)
    n = 100_000_000
    reps, rest = divmod(n, period)
    exact = reps * sum(int(d) ** 2 for d in a - b) + sum(int(d) ** 2 for d in (a - b)[:rest])
    y_true = np.resize(a.astype(np.float32), n)
    y_pred = np.resize(b.astype(np.float32), n)
    loss = mean_squared_error(y_true, y_pred)
    assert abs(loss - exact / n) <= 1e-9 * (exact / n)


@pytest.mark.spec("eq-mse", kind="property")
def test_mean_squared_error_float32_matches_two_pass_float64_reference() -> None:
    rng = np.random.default_rng(7)
    y_true = rng.standard_normal(2_000_000).astype(np.float32)
    y_pred = (y_true + rng.standard_normal(y_true.size).astype(np.float32) * 1e-3).astype(
        np.float32
    )
    diff = y_true.astype(np.float64) - y_pred.astype(np.float64)
    reference = math.fsum((diff * diff).tolist()) / diff.size
    assert mean_squared_error(y_true, y_pred) == pytest.approx(reference, rel=1e-9)


@pytest.mark.spec("eq-mse", kind="errors")
@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([1.0, np.nan], [1.0, 2.0], "y_true contains NaN or inf"),
        ([1.0, 2.0], [np.inf, 2.0], "y_pred contains NaN or inf"),
        ([], [], "y_true is empty"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "shape mismatch"),
        ([[1.0, 2.0]], [1.0, 2.0], "shape mismatch"),
        (["a", "b"], [1.0, 2.0], "real numeric"),
    ],
)
def test_mean_squared_error_errors(y_true: Any, y_pred: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mean_squared_error(y_true, y_pred)


# ---------------------------------------------------------------- eq-cce


@pytest.mark.spec("eq-cce", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(st.integers(1, 8), st.integers(2, 6), st.data())
def test_categorical_crossentropy_matches_keras_and_formula(
    keras: Any, n: int, k: int, data: st.DataObject
) -> None:
    y_true = data.draw(probability_rows(n, k)).astype(np.float32)
    y_pred = data.draw(probability_rows(n, k)).astype(np.float32)
    ours = categorical_crossentropy(y_true, y_pred)
    literal = literal_cce(y_true.astype(np.float64), y_pred.astype(np.float64))
    # Keras: float32 logs of values >= 1e-7 (|log| <= 16.2, error <= 16.2 u
    # per term after rounding the input), the row renormalisation (the row
    # sums are 1 within ~K u) and 1 - 1e-7 rounded to float32 (2e-8 off):
    # a few 1e-6 absolute at most.
    theirs = float(keras.losses.CategoricalCrossentropy()(y_true, y_pred))
    assert ours == pytest.approx(literal, rel=1e-12, abs=1e-15)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


@pytest.mark.spec("eq-cce", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(cce_case())
def test_sparse_categorical_crossentropy_matches_keras_and_formula(
    keras: Any, case: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    labels, _, y_pred = case
    ours = sparse_categorical_crossentropy(labels, y_pred)
    literal = -sum(
        math.log(min(max(row[c], EPS), 1.0 - EPS))
        for c, row in zip(labels.tolist(), y_pred.tolist(), strict=True)
    ) / len(labels)
    # Keras additionally divides by the clipped row's sum (within K * 1e-7 of
    # 1) through its softmax, so the agreement is ~K * 1e-7 absolute.
    theirs = float(keras.losses.SparseCategoricalCrossentropy()(labels, y_pred.astype(np.float32)))
    assert ours == pytest.approx(literal, rel=1e-12, abs=1e-15)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


@pytest.mark.spec("eq-cce", kind="parity")
def test_categorical_crossentropy_worked_example() -> None:
    y_true = [[0, 1, 0], [0, 0, 1]]
    y_pred = [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]
    expected = -(math.log(0.8) + math.log(0.5)) / 2
    assert categorical_crossentropy(y_true, y_pred) == pytest.approx(expected, rel=1e-15)
    assert sparse_categorical_crossentropy([1, 2], y_pred) == pytest.approx(expected, rel=1e-15)
    assert round(expected, 6) == 0.458145


@pytest.mark.spec("eq-cce", kind="property")
@given(st.integers(1, 8), st.integers(2, 6), st.data())
def test_categorical_crossentropy_nonnegative(n: int, k: int, data: st.DataObject) -> None:
    y_true = data.draw(probability_rows(n, k))
    y_pred = data.draw(probability_rows(n, k))
    assert categorical_crossentropy(y_true, y_pred) >= 0.0


@pytest.mark.spec("eq-cce", kind="property")
@given(cce_case())
def test_categorical_crossentropy_minimal_at_one_hot(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    _, one_hot, y_pred = case
    floor = -math.log(1.0 - EPS)  # the clipped one-hot prediction: 1 - eps, not 1
    assert categorical_crossentropy(one_hot, one_hot) == pytest.approx(floor, rel=1e-12)
    assert categorical_crossentropy(one_hot, y_pred) >= floor * (1 - 1e-12)


@pytest.mark.spec("eq-cce", kind="property")
@given(cce_case())
def test_sparse_categorical_crossentropy_equals_one_hot(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    labels, one_hot, y_pred = case
    sparse = sparse_categorical_crossentropy(labels, y_pred)
    assert sparse == pytest.approx(categorical_crossentropy(one_hot, y_pred), rel=1e-12)
    assert sparse == sparse_categorical_crossentropy(labels[:, None], y_pred)
    assert sparse == sparse_categorical_crossentropy(labels.astype(np.float64), y_pred)


@pytest.mark.spec("eq-cce", kind="property")
def test_categorical_crossentropy_accepts_float32_softmax_rows() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((1000, 1000)).astype(np.float32) * 5
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    y_pred = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    assert np.abs(y_pred.sum(axis=1, dtype=np.float64) - 1).max() < ROW_SUM_ATOL
    labels = rng.integers(0, 1000, 1000)
    assert sparse_categorical_crossentropy(labels, y_pred) > 0.0


GOOD_PRED = [[0.2, 0.8], [0.5, 0.5]]


@pytest.mark.spec("eq-cce", kind="errors")
@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([[0, 1], [1, 0]], [[0.2, np.nan], [0.5, 0.5]], "y_pred contains NaN or inf"),
        ([[0, np.inf], [1, 0]], GOOD_PRED, "y_true contains NaN or inf"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "y_true is empty"),
        ([[0, 1]], GOOD_PRED, "shape mismatch"),
        ([[0, 1], [1, 0]], [[1.2, -0.2], [0.5, 0.5]], r"y_pred has probabilities outside \[0, 1\]"),
        ([[0, 1], [1, 0]], [[0.2, 0.7], [0.5, 0.5]], "y_pred rows must sum to 1"),
        ([[0, 1], [1, 1]], GOOD_PRED, "y_true rows must sum to 1"),
        ([[0, 1], [1, 0]], [[2.0, 5.0], [1.0, 3.0]], "outside"),
        ([0.0, 1.0], 0.5, "shape mismatch"),
    ],
)
def test_categorical_crossentropy_errors(y_true: Any, y_pred: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        categorical_crossentropy(y_true, y_pred)


@pytest.mark.spec("eq-cce", kind="errors")
@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([1, -1], GOOD_PRED, "negative labels"),
        ([1, 2], GOOD_PRED, r"must be < num_classes=2"),
        ([0.5, 1.0], GOOD_PRED, "must be integers"),
        ([True, False], GOOD_PRED, "must be integers"),
        ([1.0, np.nan], GOOD_PRED, "y_true contains NaN or inf"),
        ([1, 0, 1], GOOD_PRED, "shape mismatch"),
        ([], np.zeros((0, 2)), "y_true is empty"),
        ([1, 0], [[0.2, 0.7], [0.5, 0.5]], "y_pred rows must sum to 1"),
        ([1, 0], [[1.5, -0.5], [0.5, 0.5]], r"outside \[0, 1\]"),
        ([1, 0], [[0.2, np.inf], [0.5, 0.5]], "y_pred contains NaN or inf"),
        ([0], 1.0, "class axis"),
    ],
)
def test_sparse_categorical_crossentropy_errors(y_true: Any, y_pred: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sparse_categorical_crossentropy(y_true, y_pred)


@pytest.mark.spec("eq-cce", kind="errors")
@pytest.mark.parametrize("epsilon", [0.0, -1e-7, 0.5, float("nan")])
def test_categorical_crossentropy_epsilon_errors(epsilon: float) -> None:
    with pytest.raises(ValueError, match="epsilon must be in"):
        categorical_crossentropy([[0, 1]], [[0.5, 0.5]], epsilon=epsilon)
    with pytest.raises(ValueError, match="epsilon must be in"):
        sparse_categorical_crossentropy([1], [[0.5, 0.5]], epsilon=epsilon)


# ------------------------------------------------------ robustness: scalars and sizes

NOT_A_REAL = [None, "1e-7", b"1", [1e-7], 1j, True, np.bool_(True), np.array([1e-7, 1e-7])]
NOT_A_REAL += [math.nan, math.inf, -math.inf, np.float32("nan"), 10**400]


@pytest.mark.spec("eq-cce", kind="errors")
@given(value=st.sampled_from(NOT_A_REAL) | st.floats().filter(lambda x: not 0 < x < 0.5))
def test_a_bad_epsilon_is_named(value: object) -> None:
    # None used to raise float()'s TypeError, which does not name the parameter.
    with pytest.raises(ValueError, match="epsilon"):
        categorical_crossentropy([[0, 1]], [[0.5, 0.5]], epsilon=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        sparse_categorical_crossentropy([1], [[0.5, 0.5]], epsilon=value)  # type: ignore[arg-type]


@pytest.mark.spec("eq-cce", kind="property")
@given(eps=st.floats(1e-9, 0.49), conv=st.sampled_from([np.float16, np.float32, np.float64]))
def test_numpy_epsilon_gives_the_python_epsilons_result(eps: float, conv: Any) -> None:
    value = conv(eps)
    same = float(value)
    assume(0.0 < same < 0.5)
    pred = [[0.1, 0.9], [0.6, 0.4]]
    assert categorical_crossentropy([[0, 1], [1, 0]], pred, epsilon=value) == (
        categorical_crossentropy([[0, 1], [1, 0]], pred, epsilon=same)
    )
    assert sparse_categorical_crossentropy(np.array([1, 0], np.uint8), pred, epsilon=value) == (
        sparse_categorical_crossentropy([1, 0], pred, epsilon=same)
    )


@pytest.mark.spec("eq-cce", kind="errors")
@pytest.mark.parametrize(
    "label", [10**9, np.iinfo(np.int64).max, np.uint64(2**64 - 1), 1e300], ids=str
)
def test_sparse_labels_far_beyond_the_classes_are_named(label: object) -> None:
    labels = np.array([0, label])
    with pytest.raises(ValueError, match="y_true labels must be < num_classes=2"):
        sparse_categorical_crossentropy(labels, [[0.5, 0.5], [0.5, 0.5]])
