"""Validation gates: pure functions from predictions and measurements to a verdict.

Every gate returns a frozen `GateResult` naming what was measured
(``value``), the bar it had to clear (``threshold``), the confidence interval
when the decision is statistical, and a one-line ``detail`` a reader of the
release report can act on. Gates never see a model: they take label and
prediction arrays, or a ``predict`` callable (NumPy in, probabilities out), so
this module imports the formulas layer, NumPy and the standard library (and
SciPy inside `macro_f1_gate`, for its bootstrap), never TensorFlow, and
can be copied into any project.

Statistical gates judge on an interval, not on a point estimate: an accuracy
of 0.96 measured on 100 images is weaker evidence than on 10,000, and the
Wilson lower bound (accuracy) or the bootstrap BCa lower bound (macro-F1)
says by how much.

Example:
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 20)
    >>> g = accuracy_gate("pretrain.accuracy", y, y, min_lower=0.9)
    >>> g.passed, g.value, round(g.interval[0], 4)
    (True, 1.0, 0.9812)
"""

from __future__ import annotations

import math
import statistics as _stats
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from release_spec.metrics import accuracy, f1_score
from release_spec.statistics import mcnemar_exact, paired_noninferiority, wilson_interval

__all__ = [
    "GateResult",
    "SoakResult",
    "accuracy_gate",
    "forgetting_gate",
    "functional_gates",
    "improvement_gate",
    "macro_f1_gate",
    "noninferiority_gate",
    "soak",
    "stability_gates",
]

Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.floating]]


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict.

    Attributes:
        name: dotted ``stage.gate`` name, e.g. ``"release.noninferiority"``.
        passed: the verdict.
        value: the measured figure the gate judged.
        threshold: the bar ``value`` was compared with (the rule is in ``detail``).
        interval: a confidence interval for the measured quantity, or None.
        detail: one line: the rule, the evidence, and what failed.
    """

    name: str
    passed: bool
    value: float
    threshold: float
    interval: tuple[float, float] | None
    detail: str

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the interval as a two-element list or null)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold,
            "interval": list(self.interval) if self.interval is not None else None,
            "detail": self.detail,
        }


def _labels(name: str, y: npt.ArrayLike) -> npt.NDArray[np.int64]:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of class labels")
    return arr.astype(np.int64)


def _same_length(**arrays: npt.NDArray[np.int64]) -> None:
    sizes = {k: v.size for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"length mismatch: {sizes}")


# --8<-- [start:accuracy_gate]
def accuracy_gate(
    name: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    min_lower: float,
    confidence: float = 0.95,
) -> GateResult:
    """Pass when the Wilson lower bound of the accuracy is at least ``min_lower``.

    >>> g = accuracy_gate("a", [0, 1, 1, 0], [0, 1, 0, 0], min_lower=0.5)
    >>> g.passed, g.value, [round(v, 3) for v in g.interval]
    (False, 0.75, [0.301, 0.954])
    """
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    _same_length(y_true=t, y_pred=p)
    acc = accuracy(t, p)
    lo, hi = wilson_interval(int(np.sum(t == p)), int(t.size), confidence=confidence)
    passed = lo >= min_lower
    return GateResult(
        name,
        passed,
        acc,
        min_lower,
        (lo, hi),
        f"accuracy {acc:.4f} on {t.size}, {confidence:.0%} Wilson interval [{lo:.4f}, {hi:.4f}]; "
        f"lower bound {'>=' if passed else '<'} {min_lower}",
    )


# --8<-- [end:accuracy_gate]


# --8<-- [start:macro_f1_gate]
def macro_f1_gate(
    name: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    min_lower: float,
    num_classes: int = 10,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> GateResult:
    """Pass when the lower end of a bootstrap interval of the macro-F1 is at least ``min_lower``.

    Macro-F1 weighs every class equally, so one class the model cannot
    recognise pulls it down even when overall accuracy looks fine. It has no
    closed-form interval, so the interval is bootstrapped
    (``scipy.stats.bootstrap``): ``n_resamples`` resamples of the
    (label, prediction) pairs, drawn with replacement and kept paired, each
    scored by ``release_spec.metrics.f1_score(average="macro")``; the
    resampling generator is ``numpy.random.default_rng(seed)``, so a run
    is reproducible. The interval is BCa (bias-corrected and accelerated):
    macro-F1 near its ceiling of 1 has a skewed, biased sampling distribution,
    which BCa corrects and the plain percentile interval does not. When BCa is
    undefined (every resample scoring the same, as for a perfect score) the
    percentile interval is used and ``detail`` says so; at a perfect score
    the bootstrap cannot show any spread, so the accuracy gate's Wilson
    interval is then the stricter guard.

    >>> y = np.repeat(np.arange(10), 12)
    >>> pred = y.copy()
    >>> pred[:6] = 1  # half of class 0 read as 1
    >>> g = macro_f1_gate("f", y, pred, min_lower=0.93)  # the point clears 0.93, the bound not
    >>> g.passed, round(g.value, 4), [round(v, 4) for v in g.interval]
    (False, 0.9467, [0.9035, 0.9831])
    """
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    _same_length(y_true=t, y_pred=p)
    if t.size < 2:
        raise ValueError(f"macro-F1 interval needs at least 2 labelled items, got {t.size}")
    # Imported here: only this gate needs SciPy, and importing it costs a few tenths of a second.
    from scipy import stats

    def statistic(yt: npt.NDArray[np.int64], yp: npt.NDArray[np.int64]) -> float:
        return f1_score(yt, yp, num_classes=num_classes, average="macro")

    f1 = statistic(t, p)
    rng = np.random.default_rng(seed)
    common: dict[str, Any] = {
        "paired": True,
        "vectorized": False,
        "confidence_level": confidence,
        "rng": rng,
    }
    boot = stats.bootstrap(
        (t, p), statistic, n_resamples=n_resamples, method="percentile", **common
    )
    method = "percentile (BCa undefined: every resample scored the same)"
    lo, hi = boot.confidence_interval
    if np.ptp(boot.bootstrap_distribution) > 0:
        # Re-uses the resamples above; BCa adds only the n leave-one-out jackknife scores.
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            bca = stats.bootstrap(
                (t, p), statistic, n_resamples=0, method="BCa", bootstrap_result=boot, **common
            )
        if np.all(np.isfinite(bca.confidence_interval)):
            method, (lo, hi) = "BCa", bca.confidence_interval
        else:
            method = "percentile (BCa undefined for these resamples)"
    lo, hi = float(lo), float(hi)
    passed = lo >= min_lower
    per_class = f1_score(t, p, num_classes=num_classes, average=None)
    k = int(np.argmin(per_class))
    return GateResult(
        name,
        passed,
        f1,
        min_lower,
        (lo, hi),
        f"macro-F1 {f1:.4f} on {t.size}, {confidence:.0%} bootstrap {method} interval "
        f"[{lo:.4f}, {hi:.4f}] ({n_resamples} paired resamples, seed {seed}); "
        f"lower bound {'>=' if passed else '<'} {min_lower} "
        f"(weakest class {k}: F1 {float(per_class[k]):.3f})",
    )


# --8<-- [end:macro_f1_gate]


# --8<-- [start:improvement_gate]
def improvement_gate(
    name: str,
    y_true: npt.ArrayLike,
    candidate_pred: npt.ArrayLike,
    baseline_pred: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> GateResult:
    """Pass when the candidate is significantly more accurate than the baseline.

    Both models answer the same items, so the comparison is paired: McNemar's
    exact one-sided test on the discordant items (``b`` only the candidate
    right, ``c`` only the baseline right). ``value`` is the p-value and
    ``threshold`` is ``alpha``; the accuracy gain is in ``detail``.

    >>> y = np.zeros(40, int)
    >>> cand, base = y.copy(), y.copy()
    >>> base[:12] = 1
    >>> cand[:2] = 1
    >>> g = improvement_gate("i", y, cand, base)
    >>> g.passed, round(g.value, 4)
    (True, 0.001)
    """
    t = _labels("y_true", y_true)
    c_pred, b_pred = (
        _labels("candidate_pred", candidate_pred),
        _labels("baseline_pred", baseline_pred),
    )
    _same_length(y_true=t, candidate_pred=c_pred, baseline_pred=b_pred)
    cand_ok, base_ok = c_pred == t, b_pred == t
    b = int(np.sum(cand_ok & ~base_ok))
    c = int(np.sum(~cand_ok & base_ok))
    p = mcnemar_exact(b, c, alternative="greater")
    gain = (b - c) / t.size
    passed = p <= alpha
    return GateResult(
        name,
        passed,
        p,
        alpha,
        None,
        f"accuracy gain {gain:+.4f} (candidate only right {b}, baseline only right {c}); "
        f"McNemar exact one-sided p = {p:.3g} {'<=' if passed else '>'} {alpha}",
    )


# --8<-- [end:improvement_gate]


# --8<-- [start:noninferiority_gate]
def noninferiority_gate(
    name: str,
    y_true: npt.ArrayLike,
    candidate_pred: npt.ArrayLike,
    reference_pred: npt.ArrayLike,
    *,
    margin: float,
    alpha: float = 0.05,
    reference: str = "production",
) -> GateResult:
    """Pass when the candidate's accuracy is shown to be at most ``margin`` below the reference.

    Paired non-inferiority on the same items (Tango's score test,
    ``statistics.paired_noninferiority``): the one-sided ``1 - alpha`` lower
    confidence bound of the accuracy difference must lie above ``-margin``.
    ``value`` is that lower bound, ``threshold`` is ``-margin``, and
    ``interval`` is ``(lower bound, 1)``: one-sided, its upper end is the
    trivial 1.

    >>> y = np.zeros(400, int)
    >>> g = noninferiority_gate("n", y, y, y, margin=0.02)
    >>> g.passed, g.threshold
    (True, -0.02)
    """
    t = _labels("y_true", y_true)
    c_pred, r_pred = (
        _labels("candidate_pred", candidate_pred),
        _labels("reference_pred", reference_pred),
    )
    _same_length(y_true=t, candidate_pred=c_pred, reference_pred=r_pred)
    r = paired_noninferiority(c_pred == t, r_pred == t, margin=margin, alpha=alpha)
    return GateResult(
        name,
        r.passed,
        r.lower_bound,
        -margin,
        (r.lower_bound, 1.0),
        f"accuracy difference vs {reference} {r.difference:+.4f} on {r.n} paired items "
        f"(candidate only right {r.candidate_only}, {reference} only right "
        f"{r.production_only}); {1 - alpha:.0%} lower bound {r.lower_bound:+.4f} "
        f"{'>' if r.passed else '<='} -{margin} (Tango score test, p = {r.p_value:.3g})",
    )


# --8<-- [end:noninferiority_gate]


def forgetting_gate(
    name: str,
    y_true: npt.ArrayLike,
    candidate_pred: npt.ArrayLike,
    pretrained_pred: npt.ArrayLike,
    *,
    margin: float,
    alpha: float = 0.05,
) -> GateResult:
    """No forgetting beyond ``margin`` on the source domain (non-inferiority vs pre-trained).

    >>> y = np.zeros(400, int)
    >>> forgetting_gate("f", y, y, y, margin=0.05).passed
    True
    """
    return noninferiority_gate(
        name,
        y_true,
        candidate_pred,
        pretrained_pred,
        margin=margin,
        alpha=alpha,
        reference="pre-trained",
    )


def _functional(name: str, deviation: float, tolerance: float, what: str) -> GateResult:
    passed = math.isfinite(deviation) and deviation <= tolerance
    return GateResult(
        name,
        passed,
        deviation,
        tolerance,
        None,
        f"{what}: largest deviation {deviation:.3g} {'<=' if passed else '>'} {tolerance:g}",
    )


# --8<-- [start:functional_gates]
def functional_gates(
    predict: Predict,
    x: npt.NDArray[np.float32],
    *,
    num_classes: int = 10,
    atol: float = 1e-5,
    batch_sizes: Sequence[int] = (1, 7, 64),
    prefix: str = "release.functional",
) -> tuple[GateResult, ...]:
    """Contract checks on a ``predict`` callable: shape, probabilities, determinism, edge inputs.

    Five gates, each reporting its largest deviation: the output shape is
    ``(len(x), num_classes)``; every row sums to 1 within ``atol``; a repeated
    call gives identical output; predicting in batches of each size in
    ``batch_sizes`` agrees with one call within ``atol``; the all-zero and
    all-one images give finite probabilities.

    >>> def uniform(x):
    ...     return np.full((len(x), 10), 0.1, np.float32)
    >>> [g.passed for g in functional_gates(uniform, np.zeros((8, 784), np.float32))]
    [True, True, True, True, True]
    """
    out = np.asarray(predict(x), dtype=np.float64)
    expected = (x.shape[0], num_classes)
    shape_ok = out.shape == expected
    gates = [
        GateResult(
            f"{prefix}.output_shape",
            shape_ok,
            float(out.shape[-1]) if out.ndim >= 1 else 0.0,
            float(num_classes),
            None,
            f"output shape {out.shape}, expected {expected}",
        )
    ]
    if not shape_ok:
        return tuple(gates)
    sums = np.abs(out.sum(axis=1) - 1.0)
    gates.append(
        _functional(
            f"{prefix}.probabilities_sum_to_one",
            float(np.max(sums)) if np.all(np.isfinite(sums)) else math.inf,
            atol,
            "|row sum - 1|",
        )
    )
    again = np.asarray(predict(x), dtype=np.float64)
    gates.append(
        _functional(
            f"{prefix}.deterministic", float(np.max(np.abs(again - out))), 0.0, "repeat call"
        )
    )
    worst = 0.0
    for bs in batch_sizes:
        parts = [np.asarray(predict(x[i : i + bs]), dtype=np.float64) for i in range(0, len(x), bs)]
        worst = max(worst, float(np.max(np.abs(np.concatenate(parts) - out))))
    gates.append(
        _functional(
            f"{prefix}.batch_size_invariant", worst, atol, f"batches of {list(batch_sizes)}"
        )
    )
    edges = np.stack([np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)])
    edge_out = np.asarray(predict(edges), dtype=np.float64)
    finite = bool(np.all(np.isfinite(edge_out)))
    edge_dev = float(np.max(np.abs(edge_out.sum(axis=1) - 1.0))) if finite else math.inf
    gates.append(
        _functional(
            f"{prefix}.finite_on_edge_inputs",
            edge_dev,
            atol,
            "all-zero and all-one images, |sum - 1|",
        )
    )
    return tuple(gates)


# --8<-- [end:functional_gates]


@dataclass(frozen=True)
class SoakResult:
    """Measurements of a soak run.

    Attributes:
        predictions: number of predictions made.
        batches: number of ``predict`` calls.
        latencies_ms: wall time per call, milliseconds.
        non_finite: count of NaN or infinite outputs.
        rss_start_mb: resident memory before the soak (after a warm-up call).
        rss_end_mb: resident memory after it.
    """

    predictions: int
    batches: int
    latencies_ms: tuple[float, ...]
    non_finite: int
    rss_start_mb: float
    rss_end_mb: float

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` in (0, 100), inclusive method, milliseconds."""
        qs = _stats.quantiles(self.latencies_ms, n=100, method="inclusive")
        return float(qs[min(98, max(0, round(q) - 1))])


# --8<-- [start:soak]
def soak(
    predict: Predict,
    pool: npt.NDArray[np.float32],
    *,
    predictions: int,
    batch_size: int,
    rss_mb: Callable[[], float],
    on_batch: Callable[[int], object] | None = None,
) -> SoakResult:
    """Call ``predict`` on consecutive batches cycling through ``pool`` until ``predictions``.

    ``rss_mb`` reads the process's resident memory (the workbench passes a
    psutil reader; this module stays standard-library). One warm-up call runs
    before the first RSS reading so lazy initialisation is not counted as growth.
    ``on_batch`` receives each batch's size (for a progress bar).
    """
    if predictions < 1 or batch_size < 1:
        raise ValueError(
            f"predictions and batch_size must be >= 1, got {predictions}, {batch_size}"
        )
    if len(pool) == 0:
        raise ValueError("the soak pool is empty")
    predict(pool[:batch_size])
    start = rss_mb()
    latencies: list[float] = []
    bad = done = offset = 0
    while done < predictions:
        n = min(batch_size, predictions - done)
        idx = (offset + np.arange(n)) % len(pool)
        batch = pool[idx]
        t0 = time.perf_counter()
        out = predict(batch)
        latencies.append((time.perf_counter() - t0) * 1e3)
        bad += int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        done += n
        offset = (offset + n) % len(pool)
        if on_batch is not None:
            on_batch(n)
    return SoakResult(done, len(latencies), tuple(latencies), bad, start, rss_mb())


# --8<-- [end:soak]


def stability_gates(
    result: SoakResult,
    *,
    min_predictions: int,
    max_p99_ms: float,
    max_rss_growth_mb: float,
    prefix: str = "release.stability",
) -> tuple[GateResult, ...]:
    """Judge a soak: enough predictions, no NaN, p99 latency and RSS growth bounded.

    >>> r = SoakResult(10_000, 100, (1.0,) * 99 + (9.0,), 0, 500.0, 502.0)
    >>> [g.passed for g in stability_gates(r, min_predictions=10_000, max_p99_ms=5.0,
    ...                                     max_rss_growth_mb=50.0)]
    [True, True, True, True]
    """
    p50, p99 = result.percentile(50), result.percentile(99)
    growth = result.rss_end_mb - result.rss_start_mb
    return (
        GateResult(
            f"{prefix}.soak_size",
            result.predictions >= min_predictions,
            float(result.predictions),
            float(min_predictions),
            None,
            f"{result.predictions} predictions in {result.batches} batches",
        ),
        GateResult(
            f"{prefix}.no_nan",
            result.non_finite == 0,
            float(result.non_finite),
            0.0,
            None,
            f"{result.non_finite} non-finite outputs",
        ),
        GateResult(
            f"{prefix}.latency_p99_ms",
            p99 <= max_p99_ms,
            p99,
            max_p99_ms,
            None,
            f"per-batch latency p50 {p50:.2f} ms, p99 {p99:.2f} ms "
            f"{'<=' if p99 <= max_p99_ms else '>'} {max_p99_ms} ms",
        ),
        GateResult(
            f"{prefix}.rss_growth_mb",
            growth <= max_rss_growth_mb,
            growth,
            max_rss_growth_mb,
            None,
            f"resident memory {result.rss_start_mb:.1f} -> {result.rss_end_mb:.1f} MB "
            f"(growth {growth:+.1f} MB, bound {max_rss_growth_mb} MB)",
        ),
    )
