"""Gates: verdicts, figures and errors, without TensorFlow."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import ndtr, ndtri
from sklearn.metrics import f1_score as sk_f1

from release_spec.gates import (
    GateResult,
    SoakResult,
    accuracy_gate,
    forgetting_gate,
    functional_gates,
    improvement_gate,
    macro_f1_gate,
    noninferiority_gate,
    soak,
    stability_gates,
)
from release_spec.metrics import f1_score
from release_spec.statistics import mcnemar_exact, paired_noninferiority, wilson_interval


def _labels(n_right: int, n_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.zeros(n_right + n_wrong, np.int64)
    pred = y.copy()
    pred[n_right:] = 1
    return y, pred


def test_gate_result_is_frozen_and_serialises():
    g = GateResult("s.g", True, 0.5, 0.4, (0.3, 0.7), "d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.passed = False  # type: ignore[misc]
    assert g.to_dict() == {
        "name": "s.g",
        "passed": True,
        "value": 0.5,
        "threshold": 0.4,
        "interval": [0.3, 0.7],
        "detail": "d",
    }


def test_accuracy_gate_judges_the_wilson_lower_bound_not_the_point():
    # 96 % measured on 100 images: the point clears 0.92, the lower bound (0.9016) does not.
    y, pred = _labels(96, 4)
    g = accuracy_gate("pretrain.accuracy", y, pred, min_lower=0.92)
    assert g.value == pytest.approx(0.96)
    assert g.interval == pytest.approx(wilson_interval(96, 100))
    assert g.interval[0] == pytest.approx(0.9016, abs=1e-4)
    assert not g.passed
    assert "lower bound < 0.92" in g.detail
    # The same rate on 10x the data does clear it.
    y, pred = _labels(960, 40)
    assert accuracy_gate("a", y, pred, min_lower=0.92).passed


@given(
    right=st.integers(0, 300),
    wrong=st.integers(0, 300),
    bar=st.floats(0.0, 1.0),
)
def test_accuracy_gate_passes_iff_lower_bound_clears(right, wrong, bar):
    if right + wrong == 0:
        return
    y, pred = _labels(right, wrong)
    g = accuracy_gate("a", y, pred, min_lower=bar)
    lo, hi = wilson_interval(right, right + wrong)
    assert g.passed == (lo >= bar)
    assert g.interval == (lo, hi)
    assert g.threshold == bar


@given(right=st.integers(1, 200), wrong=st.integers(1, 200), bar=st.floats(0.0, 1.0))
def test_accuracy_gate_monotone_in_correct_answers(right, wrong, bar):
    # Turning one wrong answer into a right one never turns a pass into a fail.
    before = accuracy_gate("a", *_labels(right, wrong), min_lower=bar)
    after = accuracy_gate("a", *_labels(right + 1, wrong - 1), min_lower=bar)
    assert after.passed or not before.passed


def test_macro_f1_gate_sees_a_class_the_accuracy_hides():
    # 10 classes x 20 items; class 3 always predicted as 4: accuracy 0.9, macro-F1 lower.
    y = np.repeat(np.arange(10), 20)
    pred = np.where(y == 3, 4, y)
    g = macro_f1_gate("pretrain.macro_f1", y, pred, min_lower=0.8)
    # Class 3: F1 0; class 4: P = 0.5, R = 1 -> 2/3; others 1. Mean = (8 + 2/3) / 10.
    assert g.value == pytest.approx((8 + 2 / 3) / 10)
    assert "weakest class 3" in g.detail
    lo, hi = g.interval
    assert lo < g.value < hi
    assert g.passed == (lo >= 0.8)
    assert not macro_f1_gate("f", y, pred, min_lower=0.9).passed
    # Accuracy 0.9 on 200 items clears an accuracy bar macro-F1 does not.
    assert accuracy_gate("a", y, pred, min_lower=0.85).passed


def _half_of_class_0_as_1(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(10), per_class)
    pred = y.copy()
    pred[: per_class // 2] = 1
    return y, pred


def test_macro_f1_gate_judges_the_lower_bound_not_the_point():
    # 120 items, half of class 0 read as 1: macro-F1 0.9467 clears 0.93, its lower bound does not.
    y, pred = _half_of_class_0_as_1(12)
    g = macro_f1_gate("pretrain.macro_f1", y, pred, min_lower=0.93)
    assert g.value == pytest.approx(f1_score(y, pred, num_classes=10, average="macro"))
    assert g.value == pytest.approx(0.9467, abs=1e-4)
    assert g.value >= 0.93
    assert g.interval[0] == pytest.approx(0.9035, abs=1e-4)
    assert not g.passed
    assert g.threshold == 0.93
    assert "BCa interval" in g.detail
    assert "lower bound < 0.93" in g.detail
    # The same error pattern on 20x the data: the interval narrows and the bound clears it.
    y, pred = _half_of_class_0_as_1(240)
    big = macro_f1_gate("pretrain.macro_f1", y, pred, min_lower=0.93)
    assert big.value == pytest.approx(g.value)
    assert big.passed
    assert big.interval[1] - big.interval[0] < (g.interval[1] - g.interval[0]) / 3


def test_macro_f1_gate_passes_a_clearly_good_model():
    # 300 items, 3 errors spread over three classes.
    y = np.repeat(np.arange(10), 30)
    pred = y.copy()
    pred[[0, 100, 200]] = [5, 6, 7]
    g = macro_f1_gate("pretrain.macro_f1", y, pred, min_lower=0.9)
    assert g.passed
    assert 0.95 < g.interval[0] < g.value < g.interval[1] <= 1.0
    assert "lower bound >= 0.9" in g.detail


def _literal_bca(y, pred, theta_b, confidence):
    """Efron and Tibshirani (1993), eqs. 14.9-14.15, with the jackknife over the pairs."""
    theta = sk_f1(y, pred, labels=range(10), average="macro", zero_division=0)
    z0 = ndtri((np.sum(theta_b < theta) + np.sum(theta_b <= theta)) / (2 * len(theta_b)))
    keep = ~np.eye(len(y), dtype=bool)
    jack = np.array(
        [sk_f1(y[k], pred[k], labels=range(10), average="macro", zero_division=0) for k in keep]
    )
    d = jack.mean() - jack
    a = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    z = ndtri((1 - confidence) / 2)
    lo_q = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    hi_q = ndtr(z0 + (z0 - z) / (1 - a * (z0 - z)))
    return tuple(np.quantile(theta_b, [lo_q, hi_q]))


@pytest.mark.parametrize(("seed", "confidence"), [(0, 0.95), (7, 0.9)])
def test_macro_f1_gate_interval_is_the_bca_formula_over_paired_resamples(seed, confidence):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 150)
    pred = np.where(rng.random(150) < 0.85, y, rng.integers(0, 10, 150))
    g = macro_f1_gate("f", y, pred, min_lower=0.5, seed=seed, confidence=confidence)
    # The same resamples, drawn by SciPy with the same generator, scored by scikit-learn.
    boot = stats.bootstrap(
        (y, pred),
        lambda t, p: sk_f1(t, p, labels=range(10), average="macro", zero_division=0),
        paired=True,
        vectorized=False,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    expected = _literal_bca(y, pred, boot.bootstrap_distribution, confidence)
    assert g.interval == pytest.approx(expected, abs=1e-12)
    assert f"seed {seed}" in g.detail
    # Reproducible for a seed; another seed draws other resamples.
    assert macro_f1_gate("f", y, pred, min_lower=0.5, seed=seed, confidence=confidence) == g
    other = macro_f1_gate("f", y, pred, min_lower=0.5, seed=seed + 1, confidence=confidence)
    assert other.interval != g.interval
    assert other.interval == pytest.approx(g.interval, abs=0.02)


def test_macro_f1_gate_falls_back_to_percentile_when_bca_is_undefined():
    y = np.repeat(np.arange(10), 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        perfect = macro_f1_gate("f", y, y, min_lower=0.9)
        # Only the top score among resamples of two items: z0 is infinite.
        tiny = macro_f1_gate("f", [0, 1], [0, 1], min_lower=0.5, num_classes=3)
    assert perfect.passed
    assert perfect.interval == (1.0, 1.0)
    assert "percentile (BCa undefined: every resample scored the same)" in perfect.detail
    assert "percentile (BCa undefined for these resamples)" in tiny.detail
    assert tiny.interval == pytest.approx((1 / 3, 2 / 3))
    assert not tiny.passed


@settings(max_examples=15)
@given(
    n=st.integers(2, 60),
    noise=st.floats(0.0, 0.5),
    bar=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_macro_f1_gate_passes_iff_lower_bound_clears(n, noise, bar, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    pred = np.where(rng.random(n) < noise, rng.integers(0, 4, n), y)
    g = macro_f1_gate("f", y, pred, min_lower=bar, num_classes=4, n_resamples=200, seed=seed)
    lo, hi = g.interval
    assert 0.0 <= lo <= hi <= 1.0
    assert g.passed == (lo >= bar)
    assert g.value == f1_score(y, pred, num_classes=4, average="macro")


def test_improvement_gate_is_mcnemar_one_sided():
    y = np.zeros(100, np.int64)
    cand, base = y.copy(), y.copy()
    base[:15] = 1  # baseline wrong on 15 the candidate gets right
    cand[90:93] = 1  # candidate wrong on 3 the baseline gets right
    g = improvement_gate("finetune.improvement", y, cand, base, alpha=0.05)
    assert g.value == pytest.approx(mcnemar_exact(15, 3, alternative="greater"))
    assert g.passed
    assert "+0.1200" in g.detail
    # Swapped roles: no evidence of improvement.
    assert not improvement_gate("i", y, base, cand).passed


def test_noninferiority_gate_value_is_the_tango_lower_bound():
    y = np.zeros(1000, np.int64)
    cand, prod = y.copy(), y.copy()
    cand[:60] = 1
    prod[:40] = 1
    ref = paired_noninferiority(cand == y, prod == y, margin=0.03, alpha=0.05)
    g = noninferiority_gate("release.noninferiority", y, cand, prod, margin=0.03)
    assert g.value == pytest.approx(ref.lower_bound)
    assert g.threshold == -0.03
    assert g.interval == (pytest.approx(ref.lower_bound), 1.0)
    assert g.passed == ref.passed
    # A candidate 5 points worse is not non-inferior at a 3-point margin.
    cand[:90] = 1
    assert not noninferiority_gate("n", y, cand, prod, margin=0.03).passed


def test_forgetting_gate_names_the_pretrained_reference():
    y = np.zeros(200, np.int64)
    cand = y.copy()
    cand[:30] = 1
    g = forgetting_gate("finetune.no_forgetting", y, cand, y, margin=0.05)
    assert not g.passed
    assert "vs pre-trained -0.1500" in g.detail


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: accuracy_gate("a", [0, 1], [0], min_lower=0.5), "length mismatch"),
        (lambda: accuracy_gate("a", [], [], min_lower=0.5), "y_true must be a non-empty"),
        (lambda: improvement_gate("i", [0, 1], [0, 1], [0]), "length mismatch"),
        (lambda: noninferiority_gate("n", [[0]], [0], [0], margin=0.1), "y_true"),
        (lambda: macro_f1_gate("f", [0, 1], [0], min_lower=0.5), "length mismatch"),
        (lambda: macro_f1_gate("f", [3], [3], min_lower=0.5), "at least 2 labelled items, got 1"),
        (lambda: macro_f1_gate("f", [0, 10], [0, 1], min_lower=0.5), "num_classes=10"),
    ],
)
def test_gates_reject_bad_input_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _softmax(x: np.ndarray) -> np.ndarray:
    w = np.linspace(-1, 1, x.shape[1] * 10).reshape(x.shape[1], 10)
    z = x @ w
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


X = np.random.default_rng(0).random((40, 784)).astype(np.float32)


def _names_failed(gates):
    return [g.name.rsplit(".", 1)[-1] for g in gates if not g.passed]


def test_functional_gates_pass_a_sound_model():
    gates = functional_gates(_softmax, X)
    assert [g.passed for g in gates] == [True] * 5
    assert gates[0].name == "release.functional.output_shape"


def test_functional_gates_catch_each_broken_contract():
    assert _names_failed(functional_gates(lambda x: _softmax(x) * 1.01, X)) == [
        "probabilities_sum_to_one",
        "finite_on_edge_inputs",
    ]
    calls = iter(range(10**6))
    noisy = lambda x: _softmax(x + 1e-3 * next(calls))  # noqa: E731
    assert "deterministic" in _names_failed(functional_gates(noisy, X))

    def batch_dependent(x):
        p = _softmax(x)
        return p if len(x) == len(X) else np.roll(p, 1, axis=1)

    assert _names_failed(functional_gates(batch_dependent, X)) == ["batch_size_invariant"]

    def nan_on_blank(x):
        p = _softmax(x)
        p[x.sum(axis=1) == 0] = np.nan
        return p

    failed = functional_gates(nan_on_blank, X)
    assert _names_failed(failed) == ["finite_on_edge_inputs"]
    assert math.isinf(failed[-1].value)
    shape = functional_gates(lambda x: _softmax(x)[:, :9], X)
    assert len(shape) == 1
    assert not shape[0].passed


def test_soak_counts_predictions_batches_and_non_finite():
    calls = []

    def predict(x):
        calls.append(len(x))
        out = np.full((len(x), 10), 0.1)
        out[0, 0] = np.nan
        return out

    rss = iter([100.0, 103.5])
    seen = []
    r = soak(
        predict, X, predictions=1000, batch_size=64, rss_mb=lambda: next(rss), on_batch=seen.append
    )
    # One warm-up call (the 40-row pool), then 15 full batches cycling the pool and one of 40.
    assert calls[0] == 40
    assert calls[1:] == [64] * 15 + [40]
    assert (r.predictions, r.batches, r.non_finite) == (1000, 16, 16)
    assert sum(seen) == 1000
    assert (r.rss_start_mb, r.rss_end_mb) == (100.0, 103.5)
    assert len(r.latencies_ms) == 16
    assert all(t >= 0 for t in r.latencies_ms)


def test_soak_rejects_bad_sizes():
    with pytest.raises(ValueError, match="predictions and batch_size"):
        soak(_softmax, X, predictions=0, batch_size=1, rss_mb=lambda: 0.0)
    with pytest.raises(ValueError, match="pool is empty"):
        soak(_softmax, X[:0], predictions=1, batch_size=1, rss_mb=lambda: 0.0)


def test_stability_gates_judge_each_bound():
    lat = tuple(float(i) for i in range(1, 101))  # 1..100 ms
    r = SoakResult(10_000, 100, lat, 0, 500.0, 530.0)
    assert r.percentile(50) == pytest.approx(50.5)
    assert r.percentile(99) == pytest.approx(99.01)
    gates = stability_gates(r, min_predictions=10_000, max_p99_ms=99.5, max_rss_growth_mb=32)
    assert [g.passed for g in gates] == [True, True, True, True]
    gates = stability_gates(
        SoakResult(9_000, 90, lat, 3, 500.0, 600.0),
        min_predictions=10_000,
        max_p99_ms=50.0,
        max_rss_growth_mb=32,
    )
    assert [g.passed for g in gates] == [False, False, False, False]
    assert gates[3].value == pytest.approx(100.0)
    assert "p50 50.50 ms" in gates[2].detail
