"""Spec tests for eq-perplexity and eq-perplexity-interval (perplexity over sequences).

Parity: our functions against Keras (``exp`` of its sparse categorical
cross-entropy, float32, so rel ~1e-5), statsmodels' cluster-robust OLS (the
interval) and the formulas written out with plain Python loops (float64, ~1e-12).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from release_spec.losses import (
    perplexity,
    sequence_crossentropies,
    sparse_categorical_crossentropy,
    token_crossentropies,
)
from release_spec.statistics import PerplexityInterval, perplexity_interval

EPS = 1e-7
KERAS_EXAMPLES = 20


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@st.composite
def lm_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(labels (batch, seq), logits (batch, seq, V)) with moderate logits."""
    batch, seq, vocab = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(2, 9))
    labels = draw(hnp.arrays(np.int64, (batch, seq), elements=st.integers(0, vocab - 1)))
    logits = draw(
        hnp.arrays(np.float64, (batch, seq, vocab), elements=st.floats(-6.0, 6.0, width=32))
    )
    return labels, logits


def literal_perplexity(labels: np.ndarray, probs: np.ndarray) -> float:
    """exp(-(1/T) sum_t log clip(p[t, c_t])), one token at a time."""
    total, count = 0.0, 0
    for c, row in zip(
        labels.ravel().tolist(), probs.reshape(-1, probs.shape[-1]).tolist(), strict=True
    ):
        total += -math.log(min(max(row[c], EPS), 1.0 - EPS))
        count += 1
    return math.exp(total / count)


# ---------------------------------------------------------------- eq-perplexity: parity


@pytest.mark.spec("eq-perplexity", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(lm_case())
def test_perplexity_matches_keras_and_formula(
    keras: Any, case: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, logits = case
    probs = _softmax(logits).astype(np.float32)
    ours = perplexity(labels, probs)
    literal = literal_perplexity(labels, probs.astype(np.float64))
    cce = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert ours == pytest.approx(literal, rel=1e-12)
    # Keras's float32 cross-entropy is within ~1e-5 absolute, so exp of it within ~1e-5 relative.
    assert ours == pytest.approx(math.exp(cce), rel=2e-5)


@pytest.mark.spec("eq-perplexity", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(lm_case())
def test_perplexity_from_logits_matches_keras_and_formula(
    keras: Any, case: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, logits = case
    ours = perplexity(labels, logits, from_logits=True)
    literal = math.exp(
        sum(
            math.log(sum(math.exp(v) for v in row)) - row[c]
            for c, row in zip(
                labels.ravel().tolist(), logits.reshape(-1, logits.shape[-1]).tolist(), strict=True
            )
        )
        / labels.size
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cce = float(loss(labels, logits.astype(np.float32)))
    assert ours == pytest.approx(literal, rel=1e-12)
    assert ours == pytest.approx(math.exp(cce), rel=2e-5)


@pytest.mark.spec("eq-perplexity", kind="parity")
def test_perplexity_worked_example() -> None:
    # -(log 0.8 + log 0.5) / 2 = 0.458145; exp of it = 1 / sqrt(0.8 * 0.5) = sqrt(2.5).
    y_pred = [[0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]
    assert perplexity([1, 2], y_pred) == pytest.approx(math.sqrt(2.5), rel=1e-15)
    assert perplexity([1, 2], y_pred) == pytest.approx(
        math.exp(sparse_categorical_crossentropy([1, 2], y_pred)), rel=1e-15
    )
    assert round(math.sqrt(2.5), 6) == 1.581139


@pytest.mark.spec("eq-cce", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(lm_case())
def test_token_crossentropies_match_keras_unreduced(
    keras: Any, case: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, logits = case
    probs = _softmax(logits).astype(np.float32)
    theirs = np.asarray(keras.losses.SparseCategoricalCrossentropy(reduction=None)(labels, probs))
    ours = token_crossentropies(labels, probs)
    assert ours.shape == labels.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-5)
    assert float(ours.mean()) == pytest.approx(
        sparse_categorical_crossentropy(labels, probs), rel=1e-12
    )


# ---------------------------------------------------------------- eq-perplexity: properties


@pytest.mark.spec("eq-perplexity", kind="property")
@given(lm_case(), st.floats(0.0, 40.0))
def test_perplexity_at_least_one(case: tuple[np.ndarray, np.ndarray], boost: float) -> None:
    labels, logits = case
    # Boosting the true token's logit brings the perplexity down towards 1, never below.
    np.put_along_axis(logits, labels[..., None], boost, axis=-1)
    assert perplexity(labels, logits, from_logits=True) >= 1.0
    assert perplexity(labels, _softmax(logits)) >= 1.0


@pytest.mark.spec("eq-perplexity", kind="property")
@given(st.integers(2, 500), st.integers(1, 50), st.data())
def test_perplexity_uniform_is_vocabulary_size(vocab: int, n: int, data: st.DataObject) -> None:
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, vocab - 1)))
    probs = np.full((n, vocab), 1.0 / vocab)
    assert perplexity(labels, probs) == pytest.approx(vocab, rel=1e-12)
    assert perplexity(labels, np.zeros((n, vocab)), from_logits=True) == pytest.approx(
        vocab, rel=1e-12
    )


@pytest.mark.spec("eq-perplexity", kind="property")
@given(st.integers(2, 50), st.integers(1, 20), st.data())
def test_perplexity_perfect_is_one(vocab: int, n: int, data: st.DataObject) -> None:
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, vocab - 1)))
    # Clipping at 1 - eps leaves exp(-log(1 - eps)) = 1 + 1e-7.
    assert perplexity(labels, np.eye(vocab)[labels]) == pytest.approx(1.0 / (1.0 - EPS), rel=1e-12)
    assert perplexity(labels, 100.0 * np.eye(vocab)[labels], from_logits=True) == pytest.approx(
        1.0, abs=1e-12
    )


@pytest.mark.spec("eq-perplexity", kind="property")
@given(lm_case(), st.data())
def test_perplexity_monotone_in_token_crossentropy(
    case: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    labels, logits = case
    flat_labels = labels.ravel()
    z = logits.reshape(-1, logits.shape[-1]).copy()
    t = data.draw(st.integers(0, flat_labels.size - 1))
    before = perplexity(flat_labels, z, from_logits=True)
    z[t, flat_labels[t]] -= data.draw(st.floats(0.5, 5.0))  # that token's CE goes up
    assert perplexity(flat_labels, z, from_logits=True) > before


@pytest.mark.spec("eq-perplexity", kind="property")
@given(lm_case(), st.randoms(use_true_random=False))
def test_perplexity_invariant_to_token_order(case: tuple[np.ndarray, np.ndarray], rnd: Any) -> None:
    labels, logits = case
    flat_labels, z = labels.ravel(), logits.reshape(-1, logits.shape[-1])
    order = list(range(flat_labels.size))
    rnd.shuffle(order)
    assert perplexity(flat_labels[order], z[order], from_logits=True) == pytest.approx(
        perplexity(labels, logits, from_logits=True), rel=1e-12
    )


@pytest.mark.spec("eq-perplexity", kind="property")
@given(lm_case(), st.data())
def test_perplexity_mask_equals_dropping_tokens(
    case: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    labels, logits = case
    mask = data.draw(hnp.arrays(np.bool_, labels.shape))
    mask.flat[0] = True
    kept = perplexity(labels[mask], logits[mask], from_logits=True)
    assert perplexity(labels, logits, from_logits=True, mask=mask) == pytest.approx(kept, rel=1e-12)
    sums, counts = sequence_crossentropies(labels, logits, from_logits=True, mask=mask)
    assert counts.tolist() == mask.sum(axis=1).tolist()
    assert math.exp(sums.sum() / counts.sum()) == pytest.approx(kept, rel=1e-12)


# ---------------------------------------------------------------- eq-perplexity: errors

GOOD = [[0.2, 0.8], [0.5, 0.5]]


@pytest.mark.spec("eq-perplexity", kind="errors")
@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "message"),
    [
        ([0, 1], [[0.2, np.nan], [0.5, 0.5]], {}, "y_pred contains NaN or inf"),
        ([0, 1], [[0.2, np.nan], [0.5, 0.5]], {"from_logits": True}, "y_pred contains NaN or inf"),
        ([0, 1, 1], GOOD, {}, "shape mismatch"),
        ([0, 2], GOOD, {}, "labels must be < num_classes=2"),
        ([0, -1], GOOD, {}, "negative labels"),
        ([0, 1], [[0.2, 0.7], [0.5, 0.5]], {}, "rows must sum to 1"),
        ([0, 1], [[3.0, 1.0], [0.5, 0.5]], {}, "outside"),
        ([0, 1], GOOD, {"mask": [False, False]}, "mask drops every token"),
        ([0, 1], GOOD, {"mask": [True]}, "shape mismatch: mask"),
        ([0, 1], GOOD, {"mask": [2, 1]}, "mask must hold booleans or 0/1"),
        ([], np.zeros((0, 2)), {}, "y_true is empty"),
    ],
)
def test_perplexity_rejects_bad_input(
    y_true: Any, y_pred: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        perplexity(y_true, y_pred, **kwargs)


@pytest.mark.spec("eq-perplexity", kind="errors")
def test_sequence_crossentropies_needs_batch_and_sequence_axes() -> None:
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        sequence_crossentropies([0, 1], GOOD)


# ---------------------------------------------------------------- eq-perplexity-interval


@st.composite
def sequences(draw: st.DrawFn) -> list[np.ndarray]:
    m = draw(st.integers(2, 12))
    return [
        draw(
            hnp.arrays(
                np.float64, (draw(st.integers(1, 8)),), elements=st.floats(0.0, 8.0, width=32)
            )
        )
        for _ in range(m)
    ]


def literal_interval(seqs: list[np.ndarray], confidence: float) -> tuple[float, float, float]:
    from scipy import stats

    sums = [float(sum(s.tolist())) for s in seqs]
    counts = [len(s) for s in seqs]
    m, n = len(seqs), sum(counts)
    r = sum(sums) / n
    var = m / (m - 1) * sum((li - r * ni) ** 2 for li, ni in zip(sums, counts, strict=True)) / n**2
    t = stats.t.ppf(1 - (1 - confidence) / 2, m - 1)
    return math.exp(r), math.exp(r - t * math.sqrt(var)), math.exp(r + t * math.sqrt(var))


@pytest.mark.spec("eq-perplexity-interval", kind="parity")
@given(sequences(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_perplexity_interval_matches_statsmodels_cluster_ols_and_formula(
    seqs: list[np.ndarray], confidence: float
) -> None:
    import statsmodels.api as sm

    ours = perplexity_interval(seqs, confidence=confidence)
    assert ours == pytest.approx(literal_interval(seqs, confidence), rel=1e-9, abs=1e-12)
    y = np.concatenate(seqs)
    groups = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    fit = sm.OLS(y, np.ones_like(y)).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=True
    )
    low, high = np.exp(fit.conf_int(1 - confidence)[0])
    if np.ptp([s.sum() - y.mean() * s.size for s in seqs]) > 1e-9:  # statsmodels: nonzero se
        assert ours.low == pytest.approx(low, rel=1e-9)
        assert ours.high == pytest.approx(high, rel=1e-9)
    assert ours.estimate == pytest.approx(math.exp(fit.params[0]), rel=1e-12)


@pytest.mark.spec("eq-perplexity-interval", kind="parity")
def test_perplexity_interval_worked_example_and_forms() -> None:
    r = perplexity_interval([2.0, 3.5, 1.0, 4.5], [2, 3, 1, 4])
    # R = 11/10; residuals L - R n = (-0.2, 0.2, -0.1, 0.1); se^2 = 4/3 * 0.1 / 100.
    se = math.sqrt(4 / 3 * 0.1) / 10
    t = 3.182446305284263  # t_{0.975, 3}
    assert isinstance(r, PerplexityInterval)
    assert r == pytest.approx((math.exp(1.1), math.exp(1.1 - t * se), math.exp(1.1 + t * se)))
    assert (round(r.estimate, 4), round(r.low, 4), round(r.high, 4)) == (3.0042, 2.6746, 3.3744)
    ragged = [[1.0, 1.0], [1.0, 1.0, 1.5], [1.0], [1.0, 1.0, 1.0, 1.5]]
    assert perplexity_interval(ragged) == pytest.approx(tuple(r), rel=1e-12)


@pytest.mark.spec("eq-perplexity-interval", kind="parity")
@given(lm_case())
def test_perplexity_interval_estimate_is_pooled_perplexity(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    labels, logits = case
    if labels.shape[0] < 2:
        labels, logits = np.concatenate([labels, labels]), np.concatenate([logits, logits])
    sums, counts = sequence_crossentropies(labels, logits, from_logits=True)
    r = perplexity_interval(sums, counts)
    assert r.estimate == pytest.approx(perplexity(labels, logits, from_logits=True), rel=1e-12)
    assert r.low <= r.estimate <= r.high


def _simulate_coverage(rng: np.random.Generator, reps: int, m: int, token_level: bool) -> float:
    """Share of intervals covering the true per-token mean loss, log R = 2.

    Each sequence has its own difficulty (a lognormal factor around 1) shared
    by its tokens, and a random length: tokens within a sequence are dependent.
    """
    true_log_ppl = 2.0
    hits = 0
    for _ in range(reps):
        lengths = rng.integers(5, 40, m)
        difficulty = rng.lognormal(-0.125, 0.5, m)  # mean 1
        seqs = [
            rng.exponential(true_log_ppl * d, n) for d, n in zip(difficulty, lengths, strict=True)
        ]
        if token_level:  # every token its own unit: the wrong independence assumption
            r = perplexity_interval(np.concatenate(seqs), np.ones(int(lengths.sum())))
        else:
            r = perplexity_interval(seqs)
        hits += r.low <= math.exp(true_log_ppl) <= r.high
    return hits / reps


@pytest.mark.spec("eq-perplexity-interval", kind="property")
def test_perplexity_interval_covers_at_nominal_rate() -> None:
    coverage = _simulate_coverage(
        np.random.default_rng(20261202), reps=1000, m=60, token_level=False
    )
    # 1000 replications: the binomial standard error at 0.95 is 0.007. The
    # cluster-robust variance runs slightly low with skewed, unequal sequences
    # (0.926-0.941 over seeds 1-3 at 30-150 sequences), hence the lower end.
    assert 0.92 <= coverage <= 0.97


@pytest.mark.spec("eq-perplexity-interval", kind="property")
def test_perplexity_interval_tokens_as_units_undercover() -> None:
    coverage = _simulate_coverage(np.random.default_rng(7), reps=400, m=60, token_level=True)
    assert coverage < 0.85  # why sequences, not tokens, are the units


@pytest.mark.spec("eq-perplexity-interval", kind="property")
@given(sequences(), st.floats(0.5, 0.9), st.floats(0.01, 0.09))
def test_perplexity_interval_nested_in_confidence(
    seqs: list[np.ndarray], lower: float, extra: float
) -> None:
    narrow = perplexity_interval(seqs, confidence=lower)
    wide = perplexity_interval(seqs, confidence=lower + extra)
    assert wide.low <= narrow.low <= narrow.estimate <= narrow.high <= wide.high
    assert wide.estimate == narrow.estimate


@pytest.mark.spec("eq-perplexity-interval", kind="property")
@given(sequences(), st.floats(0.0, 3.0))
def test_perplexity_interval_shift_scales_by_exp(seqs: list[np.ndarray], c: float) -> None:
    # Adding c nats to every token multiplies the perplexity and both ends by e^c.
    base = perplexity_interval(seqs)
    shifted = perplexity_interval([s + c for s in seqs])
    assert shifted == pytest.approx(tuple(math.exp(c) * v for v in base), rel=1e-9)


@pytest.mark.spec("eq-perplexity-interval", kind="property")
@given(sequences(), st.randoms(use_true_random=False))
def test_perplexity_interval_invariant_to_sequence_order(seqs: list[np.ndarray], rnd: Any) -> None:
    shuffled = list(seqs)
    rnd.shuffle(shuffled)
    assert perplexity_interval(shuffled) == pytest.approx(
        tuple(perplexity_interval(seqs)), rel=1e-12
    )


@pytest.mark.spec("eq-perplexity-interval", kind="errors")
@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([1.0], [1]), {}, "at least 2 sequences"),
        (([[1.0, 2.0]],), {}, "at least 2 sequences"),
        (([1.0, -0.5], [1, 1]), {}, "nonnegative"),
        (([1.0, np.nan], [1, 1]), {}, "NaN or infinite"),
        (([1.0, 2.0], [1, 0]), {}, "at least 1"),
        (([1.0, 2.0], [1, 1.5]), {}, "whole numbers"),
        (([1.0, 2.0], [1, 1, 1]), {}, "match sequence_losses"),
        (([[1.0], []],), {}, r"sequence_losses\[1\] must be a non-empty"),
        (([1.0, 2.0], [1, 1]), {"confidence": 1.0}, "confidence"),
        ((3.0,), {}, "sequence of per-sequence token losses"),
    ],
)
def test_perplexity_interval_rejects_bad_input(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        perplexity_interval(*args, **kwargs)
