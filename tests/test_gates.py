"""Gates: verdicts, figures and errors, without TensorFlow."""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import ndtr, ndtri
from sklearn.metrics import f1_score as sk_f1

from release_spec.metrics import f1_score
from release_spec.statistics import mcnemar_exact, paired_noninferiority, wilson_interval
from release_spec.strategy.gates import (
    GateResult,
    SoakResult,
    SoakSummary,
    SoakWindow,
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
        "split": None,
    }
    assert dataclasses.replace(g, split="source.val").to_dict()["split"] == "source.val"


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
        (lambda: accuracy_gate("a", [], [], min_lower=0.5), "y_true: expected a non-empty 1-D"),
        (lambda: accuracy_gate("a", [0, 1.5], [0, 1], min_lower=0.5), "y_true: expected integer"),
        (lambda: improvement_gate("i", [0, 1], [0, 1], ["a", "b"]), "baseline_pred: expected int"),
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


class VirtualClock:
    """Per-thread virtual time: a caller's clock moves only by the costs its own calls spend.

    Every caller then sees the same deterministic timeline whatever the thread
    scheduling or the machine's load, so no test depends on wall-clock time.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> float:
        return float(getattr(self._local, "t", 0.0))

    def spend(self, seconds: float) -> None:
        self._local.t = self() + seconds


class Leak:
    """Memory a fake model leaks, per caller; the callers are alike, so the process holds
    ``callers`` times what the reading caller leaked by its own virtual time."""

    def __init__(self, mb_per_call: float, callers: int = 4) -> None:
        self.mb, self.callers, self._local = mb_per_call, callers, threading.local()

    def call(self) -> None:
        self._local.n = self.calls() + 1

    def calls(self) -> int:
        return int(getattr(self._local, "n", 0))

    def rss(self, base: float = 500.0) -> float:
        return base + self.callers * self.mb * self.calls()


class Counter:
    def __init__(self) -> None:
        self.n, self._lock = 0, threading.Lock()

    def next(self) -> int:
        with self._lock:
            self.n += 1
            return self.n


SOAK_SECONDS = 3.0
# Binary fractions of a second (about 2 ms and 1 ms), so virtual time adds up exactly.
MODEL_S, REFERENCE_S = 2.0**-9, 2.0**-10
BOUNDS = {"max_rss_slope_mb_per_min": 16.0, "max_latency_drift": 1.5}


def _fake(clock: VirtualClock, cost=lambda t: MODEL_S, out=lambda x, n: _softmax(x), leak=None):
    """A predict function that spends ``cost(now)`` virtual seconds per call."""
    calls = Counter()

    def predict(x):
        n = calls.next()
        if leak is not None:
            leak.call()
        clock.spend(cost(clock()))
        return out(x, n)

    return predict


def _reference(clock: VirtualClock, cost=lambda t: REFERENCE_S):
    def reference(x):
        clock.spend(cost(clock()))

    return reference


def _run(predict, clock, *, reference=None, rss=lambda: 500.0, windows=6, **kw):
    args = {"seconds": SOAK_SECONDS, "max_predictions": 10**7, "batch_size": 8, "callers": 4}
    result = soak(
        predict,
        X,
        reference=reference or _reference(clock),
        rss_mb=rss,
        clock=clock,
        **{**args, **kw},
    )
    summary = summarise_soak(result, windows=windows)
    return result, summary, stability_gates(summary, **BOUNDS)


def test_soak_of_a_healthy_model_passes_every_gate():
    clock = VirtualClock()
    result, summary, gates = _run(_fake(clock), clock)
    assert _names_failed(gates) == []
    # 3 virtual seconds of (2 + 1) / 1024 s model + reference pairs: 1024 pairs per caller.
    assert (result.callers, result.stopped_by, result.errors, result.non_finite) == (
        4,
        "time",
        0,
        0,
    )
    assert summary.calls == 4096
    assert result.predictions == 4096 * 8
    assert summary.latency_drift == pytest.approx(1.0)
    assert summary.rss_slope_mb_per_min == 0.0
    assert [w.calls for w in summary.windows] == [680, 684, 684, 680, 684, 684]
    assert all(
        w.p50_ms == 1000 * MODEL_S and w.ratio == pytest.approx(2.0) for w in summary.windows
    )


def test_soak_uses_concurrent_caller_threads():
    clock, names = VirtualClock(), set()

    def predict(x):
        names.add(threading.current_thread().name)
        clock.spend(MODEL_S)
        return _softmax(x)

    _run(predict, clock)
    assert names == {"soak-0", "soak-1", "soak-2", "soak-3"}


def test_soak_leaking_memory_fails_the_slope_gate():
    clock, leak = VirtualClock(), Leak(0.001)
    # 1 kB a call at 4 x 1024 calls in 3 virtual seconds: 81.9 MB a minute.
    _, summary, gates = _run(_fake(clock, leak=leak), clock, rss=leak.rss)
    assert _names_failed(gates) == ["rss_slope_mb_per_min"]
    assert summary.rss_slope_mb_per_min == pytest.approx(81.9, rel=0.02)


def test_soak_one_allocation_step_is_not_a_leak():
    clock, leak = VirtualClock(), Leak(0.0)
    # A minute-long soak of 32 ms calls (1280 a caller); 4 MB allocated once, a third of the
    # way in. A before/after bound sees 4 MB of growth; the slope over six windows is a few
    # MB a minute, inside the bound.
    _, summary, gates = _run(
        _fake(clock, cost=lambda t: 16 * MODEL_S, leak=leak),
        clock,
        reference=_reference(clock, cost=lambda t: 16 * REFERENCE_S),
        rss=lambda: 500.0 + (4.0 if leak.calls() > 1280 // 3 else 0.0),
        seconds=60.0,
    )
    assert summary.calls == 4 * 1280
    assert _names_failed(gates) == []
    assert summary.rss_slope_mb_per_min == pytest.approx(5.5, abs=1.0)


def test_soak_returning_nan_after_n_calls_fails_the_nan_gate():
    clock = VirtualClock()

    def nan_late(x, n):
        p = _softmax(x)
        if n > 2500:
            p[0, 0] = np.nan
        return p

    _, summary, gates = _run(_fake(clock, out=nan_late), clock)
    assert _names_failed(gates) == ["no_nan"]
    # 4 warm-up calls (not checked) and 4096 checked ones: the last 1600 return a NaN each.
    assert summary.non_finite == 4100 - 2500


def test_soak_raising_in_one_caller_fails_the_error_gate():
    clock, seen = VirtualClock(), Counter()

    def predict(x):
        clock.spend(MODEL_S)
        if threading.current_thread().name == "soak-2" and seen.next() == 100:
            raise RuntimeError("boom")
        return _softmax(x)

    _, summary, gates = _run(predict, clock)
    assert _names_failed(gates) == ["no_errors"]
    assert summary.errors == 1
    assert summary.first_error == "RuntimeError: boom"
    assert "first: RuntimeError: boom" in gates[1].detail


def test_soak_model_slowing_down_relative_to_the_reference_fails_the_drift_gate():
    clock = VirtualClock()
    # The model's call grows from 2 ms to 6 ms over the soak; the reference stays at 1 ms.
    slowing = _fake(clock, cost=lambda t: MODEL_S * (1 + 2 * t / SOAK_SECONDS))
    _, summary, gates = _run(slowing, clock)
    assert _names_failed(gates) == ["latency_drift"]
    assert summary.latency_drift == pytest.approx(summary.raw_drift)
    assert summary.latency_drift > 2.0


def test_soak_machine_slowing_down_for_everyone_passes_the_drift_gate():
    clock = VirtualClock()
    # Load arrives halfway: every computation in the process takes three times as long.
    load = lambda t: 3.0 if t > SOAK_SECONDS / 2 else 1.0  # noqa: E731
    predict = _fake(clock, cost=lambda t: MODEL_S * load(t))
    reference = _reference(clock, cost=lambda t: REFERENCE_S * load(t))
    _, summary, gates = _run(predict, clock, reference=reference)
    assert _names_failed(gates) == []
    assert summary.raw_drift == pytest.approx(3.0)  # what an absolute or raw test would fail on
    assert summary.latency_drift == pytest.approx(1.0)


def test_soak_stops_at_the_prediction_budget():
    clock, sizes, seen = VirtualClock(), [], []

    def predict(x):
        sizes.append(len(x))
        clock.spend(MODEL_S)
        return _softmax(x)

    result = soak(
        predict,
        X,
        seconds=1000.0,
        max_predictions=1000,
        batch_size=64,
        callers=4,
        reference=_reference(clock),
        rss_mb=lambda: 100.0,
        clock=clock,
        on_batch=seen.append,
    )
    assert (result.predictions, result.stopped_by) == (1000, "count")
    assert sum(seen) == 1000
    # Four warm-up calls of one batch, then 15 batches of 64 and one of 40 (the budget's rest).
    assert sorted(sizes) == sorted([64] * 4 + [64] * 15 + [40])
    assert result.call_ms.size == 16
    assert np.all(result.call_ms == 1000 * MODEL_S)
    assert result.rss_mb.size >= 2


def test_soak_rejects_bad_arguments():
    common = {"reference": np.sum, "rss_mb": lambda: 0.0}
    ok = {"seconds": 1.0, "max_predictions": 10, "batch_size": 1, "callers": 4}
    for key, bad in (
        ("seconds", 0.0),
        ("seconds", math.nan),
        ("max_predictions", 0),
        ("batch_size", 0),
        ("callers", 0),
    ):
        with pytest.raises(ValueError, match=key):
            soak(_softmax, X, **{**ok, key: bad}, **common)
    with pytest.raises(ValueError, match="pool is empty"):
        soak(_softmax, X[:0], **ok, **common)


def _result(t, ms, ref_ms, rss, *, seconds=60.0):
    n = len(t)
    return SoakResult(
        seconds, 10**6, 4, 50, 50 * n, seconds, "time", t, ms, t, ref_ms, t, rss, 0, "", 0
    )


def test_summarise_soak_fits_the_rss_slope_and_the_drift_of_the_paired_ratio():
    t = (np.arange(1200) + 0.5) * 0.05  # a call every 50 ms, 200 in each 10-second window
    rss = 400.0 + 0.5 * t  # 30 MB a minute
    ms = np.where(t > 50.0, 4.0, 2.0)  # the model doubles its latency in the last window
    s = summarise_soak(_result(t, ms, np.full_like(t, 0.5), rss), windows=6)
    assert [w.calls for w in s.windows] == [200] * 6
    assert [w.start_s for w in s.windows] == pytest.approx([0, 10, 20, 30, 40, 50])
    assert s.rss_slope_mb_per_min == pytest.approx(30.0, rel=1e-3)
    assert [w.ratio for w in s.windows] == [4.0] * 5 + [8.0]
    assert (s.latency_drift, s.raw_drift) == (2.0, 2.0)
    assert s.windows[-1].p99_ms == 4.0
    assert s.to_dict()["windows"][0]["calls"] == 200
    with pytest.raises(ValueError, match="windows"):
        summarise_soak(_result(t, ms, ms, rss), windows=1)


def test_summarise_soak_without_rss_samples_gives_no_slope_and_the_gate_fails():
    t = np.linspace(0.05, 60.0, 600)
    r = dataclasses.replace(
        _result(t, np.ones_like(t), np.ones_like(t), t), rss_s=np.empty(0), rss_mb=np.empty(0)
    )
    s = summarise_soak(r, windows=6)
    assert math.isnan(s.rss_slope_mb_per_min)
    assert _names_failed(stability_gates(s, **BOUNDS)) == ["rss_slope_mb_per_min"]


def _window(k, calls=100, ratio=2.0, rss=400.0):
    return SoakWindow(k, 10.0 * k, 10.0 * k + 10, calls, 2.0, 3.0, 1.0, ratio, rss)


def _summary(windows, *, errors=0, non_finite=0, slope=0.0, drift=1.0):
    return SoakSummary(
        60.0,
        4,
        100_000,
        600,
        "time",
        errors,
        "E: x" if errors else "",
        non_finite,
        tuple(windows),
        slope,
        drift,
        1.0,
    )


def test_stability_gates_judge_each_bound():
    good = _summary([_window(k) for k in range(6)], slope=16.0, drift=1.5)
    gates = stability_gates(good, **BOUNDS)
    assert [g.name for g in gates] == [
        "release.stability.soak_size",
        "release.stability.no_errors",
        "release.stability.no_nan",
        "release.stability.rss_slope_mb_per_min",
        "release.stability.latency_drift",
    ]
    assert _names_failed(gates) == []  # each bound is inclusive
    bad = _summary(
        [_window(k, calls=4 if k == 3 else 100) for k in range(6)],
        errors=2,
        non_finite=5,
        slope=16.01,
        drift=1.51,
    )
    gates = stability_gates(bad, **BOUNDS)
    assert _names_failed(gates) == [
        "soak_size",
        "no_errors",
        "no_nan",
        "rss_slope_mb_per_min",
        "latency_drift",
    ]
    assert [g.value for g in gates] == [4.0, 2.0, 5.0, 16.01, 1.51]
    assert "window 3" in gates[0].detail
    nan_drift = _summary([_window(k) for k in range(6)], drift=math.nan)
    assert _names_failed(stability_gates(nan_drift, **BOUNDS)) == ["latency_drift"]
