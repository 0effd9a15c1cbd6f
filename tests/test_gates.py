"""Gates: verdicts, figures and errors, without TensorFlow."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    g = macro_f1_gate("pretrain.macro_f1", y, pred, min_f1=0.9)
    # Class 3: F1 0; class 4: P = 0.5, R = 1 -> 2/3; others 1. Mean = (8 + 2/3) / 10.
    assert g.value == pytest.approx((8 + 2 / 3) / 10)
    assert not g.passed
    assert "weakest class 3" in g.detail
    assert g.interval is None


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


def test_gates_module_does_not_import_tensorflow():
    code = (
        "import sys, release_spec.gates, release_spec.stages, release_spec.plan; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
