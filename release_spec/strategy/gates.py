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

Examples:
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 20)
    >>> g = accuracy_gate("pretrain.accuracy", y, y, min_lower=0.9)
    >>> g.passed, g.value, round(g.interval.low, 4)
    (True, 1.0, 0.9812)
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from release_spec.metrics import accuracy, f1_score
from release_spec.statistics import (
    Interval,
    mcnemar_exact,
    paired_noninferiority,
    wilson_interval,
)
from release_spec.strategy._validate import class_labels

__all__ = [
    "GateResult",
    "SoakResult",
    "SoakSummary",
    "SoakWindow",
    "accuracy_gate",
    "forgetting_gate",
    "functional_gates",
    "improvement_gate",
    "is_test_split",
    "macro_f1_gate",
    "noninferiority_gate",
    "soak",
    "stability_gates",
    "summarise_soak",
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
        interval: a confidence interval for the measured quantity, or None (a plain
            ``(low, high)`` pair is stored as an `~release_spec.statistics.Interval`).
        detail: one line: the rule, the evidence, and what failed.
        split: the labelled data split the gate read (``"source.val"``), or None
            for a gate that reads none; see `is_test_split`.
    """

    name: str
    passed: bool
    value: float
    threshold: float
    # Annotated as the pair it unpacks to, so a caller may pass (low, high); it is
    # stored as an Interval either way.
    interval: tuple[float, float] | None
    detail: str
    split: str | None = None

    def __post_init__(self) -> None:
        if self.interval is not None and not isinstance(self.interval, Interval):
            object.__setattr__(self, "interval", Interval(*self.interval))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the interval as a two-element list or null)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold,
            "interval": list(self.interval) if self.interval is not None else None,
            "detail": self.detail,
            "split": self.split,
        }


def is_test_split(split: str | None) -> bool:
    """True when ``split`` names a test split: ``"test"`` or ``"<domain>.test"``.

    A test split is read once, by the final gate. A gate whose failure drives
    a retry must read validation data, or the retries tune on the test set;
    `release_spec.strategy.stages.run_stage` refuses such a gate with this check.

    Examples:
        >>> is_test_split("source.test"), is_test_split("source.val"), is_test_split(None)
        (True, False, False)
    """
    return split is not None and (split == "test" or split.endswith(".test"))


def _labels(**arrays: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], ...]:
    """Each array as class labels (checked in order, named by its keyword), all one length."""
    labels = {name: class_labels(name, values) for name, values in arrays.items()}
    sizes = {name: v.size for name, v in labels.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"length mismatch: {sizes}")
    return tuple(labels.values())


# --8<-- [start:accuracy_gate]
def accuracy_gate(
    name: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    min_lower: float,
    confidence: float = 0.95,
    split: str | None = None,
) -> GateResult:
    """Pass when the Wilson lower bound of the accuracy is at least ``min_lower``.

    Examples:
        >>> g = accuracy_gate("a", [0, 1, 1, 0], [0, 1, 0, 0], min_lower=0.5)
        >>> g.passed, g.value, [round(v, 3) for v in g.interval]
        (False, 0.75, [0.301, 0.954])
    """
    t, p = _labels(y_true=y_true, y_pred=y_pred)
    acc = accuracy(t, p)
    lo, hi = wilson_interval(int(np.sum(t == p)), int(t.size), confidence=confidence)
    passed = lo >= min_lower
    return GateResult(
        name,
        passed,
        acc,
        min_lower,
        Interval(lo, hi),
        f"accuracy {acc:.4f} on {t.size}, {confidence:.0%} Wilson interval [{lo:.4f}, {hi:.4f}]; "
        f"lower bound {'>=' if passed else '<'} {min_lower}",
        split,
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
    split: str | None = None,
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

    Examples:
        >>> y = np.repeat(np.arange(10), 12)
        >>> pred = y.copy()
        >>> pred[:6] = 1  # half of class 0 read as 1
        >>> g = macro_f1_gate("f", y, pred, min_lower=0.93)  # the point clears 0.93, the bound not
        >>> g.passed, round(g.value, 4), [round(v, 4) for v in g.interval]
        (False, 0.9467, [0.9035, 0.9831])
    """
    t, p = _labels(y_true=y_true, y_pred=y_pred)
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
        Interval(lo, hi),
        f"macro-F1 {f1:.4f} on {t.size}, {confidence:.0%} bootstrap {method} interval "
        f"[{lo:.4f}, {hi:.4f}] ({n_resamples} paired resamples, seed {seed}); "
        f"lower bound {'>=' if passed else '<'} {min_lower} "
        f"(weakest class {k}: F1 {float(per_class[k]):.3f})",
        split,
    )


# --8<-- [end:macro_f1_gate]


def improvement_gate(
    name: str,
    y_true: npt.ArrayLike,
    candidate_pred: npt.ArrayLike,
    baseline_pred: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    split: str | None = None,
) -> GateResult:
    """Pass when the candidate is significantly more accurate than the baseline.

    Both models answer the same items, so the comparison is paired: McNemar's
    exact one-sided test on the discordant items (``b`` only the candidate
    right, ``c`` only the baseline right). ``value`` is the p-value and
    ``threshold`` is ``alpha``; the accuracy gain is in ``detail``.

    Examples:
        >>> y = np.zeros(40, int)
        >>> cand, base = y.copy(), y.copy()
        >>> base[:12] = 1
        >>> cand[:2] = 1
        >>> g = improvement_gate("i", y, cand, base)
        >>> g.passed, round(g.value, 4)
        (True, 0.001)
    """
    t, c_pred, b_pred = _labels(
        y_true=y_true, candidate_pred=candidate_pred, baseline_pred=baseline_pred
    )
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
        split,
    )


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
    split: str | None = None,
) -> GateResult:
    """Pass when the candidate's accuracy is shown to be at most ``margin`` below the reference.

    Paired non-inferiority on the same items (Tango's score test,
    ``statistics.paired_noninferiority``): the one-sided ``1 - alpha`` lower
    confidence bound of the accuracy difference must lie above ``-margin``.
    ``value`` is that lower bound, ``threshold`` is ``-margin``, and
    ``interval`` is ``(lower bound, 1)``: one-sided, its upper end is the
    trivial 1.

    Examples:
        >>> y = np.zeros(400, int)
        >>> g = noninferiority_gate("n", y, y, y, margin=0.02)
        >>> g.passed, g.threshold
        (True, -0.02)
    """
    t, c_pred, r_pred = _labels(
        y_true=y_true, candidate_pred=candidate_pred, reference_pred=reference_pred
    )
    r = paired_noninferiority(c_pred == t, r_pred == t, margin=margin, alpha=alpha)
    return GateResult(
        name,
        r.passed,
        r.lower_bound,
        -margin,
        Interval(r.lower_bound, 1.0),
        f"accuracy difference vs {reference} {r.difference:+.4f} on {r.n} paired items "
        f"(candidate only right {r.candidate_only}, {reference} only right "
        f"{r.production_only}); {1 - alpha:.0%} lower bound {r.lower_bound:+.4f} "
        f"{'>' if r.passed else '<='} -{margin} (Tango score test, p = {r.p_value:.3g})",
        split,
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
    split: str | None = None,
) -> GateResult:
    """No forgetting beyond ``margin`` on the source domain (non-inferiority vs pre-trained).

    Its failure drives a retry of fine-tuning, so it reads the source
    *validation* split: `release_spec.strategy.stages.run_stage` refuses a test split.

    Examples:
        >>> y = np.zeros(400, int)
        >>> forgetting_gate("f", y, y, y, margin=0.05, split="source.val").passed
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
        split=split,
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

    Examples:
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


#: The soak's reference workload: called with the batch the model has just answered.
Reference = Callable[[npt.NDArray[np.float32]], object]


@dataclass(frozen=True)
class SoakResult:
    """Raw measurements of a `soak`; `summarise_soak` cuts them into time windows.

    Times are seconds since the soak started (after the warm-up), read from
    the soak's clock; latencies are milliseconds. Call ``i`` of
    ``call_end_s``/``call_ms`` and of ``reference_end_s``/``reference_ms`` form a
    pair: the same caller timed the reference workload on the same batch right
    after that model call.

    Attributes:
        seconds: the soak's time budget.
        max_predictions: its prediction budget.
        callers: concurrent callers (threads).
        batch_size: rows per ``predict`` call.
        predictions: predictions attempted (rows handed to ``predict``).
        elapsed_s: from the start to the end of the last call.
        stopped_by: ``"time"`` or ``"count"``, the budget that ended the soak.
        call_end_s: when each successful pair's model call ended.
        call_ms: how long it took.
        reference_end_s: when the pair's reference computation ended.
        reference_ms: how long it took.
        rss_s: when each resident-memory sample was read.
        rss_mb: the samples, MB.
        errors: exceptions raised in any caller (warm-up included).
        first_error: the first one, ``"Type: message"`` (empty when none).
        non_finite: NaN or infinite values in the outputs.
    """

    seconds: float
    max_predictions: int
    callers: int
    batch_size: int
    predictions: int
    elapsed_s: float
    stopped_by: str
    call_end_s: npt.NDArray[np.float64]
    call_ms: npt.NDArray[np.float64]
    reference_end_s: npt.NDArray[np.float64]
    reference_ms: npt.NDArray[np.float64]
    rss_s: npt.NDArray[np.float64]
    rss_mb: npt.NDArray[np.float64]
    errors: int
    first_error: str
    non_finite: int


class _SoakRun:
    """The callers' shared, lock-protected counters (one soak's mutable state)."""

    def __init__(self, seconds: float, max_calls: int, rss_samples: int) -> None:
        self.t0 = 0.0
        self.slots = self.claimed = self.offset = self.n_rss = 0
        self.errors = self.non_finite = 0
        self.first_error = self.stopped_by = ""
        self.next_rss_s, self.next_rss_slot = 0.0, 0
        self.rss_every_s, self.rss_every_slot = (
            seconds / rss_samples,
            max(1, max_calls // rss_samples),
        )

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"


# --8<-- [start:soak]
def soak(
    predict: Predict,
    pool: npt.NDArray[np.float32],
    *,
    seconds: float,
    max_predictions: int,
    batch_size: int,
    callers: int,
    reference: Reference,
    rss_mb: Callable[[], float],
    clock: Callable[[], float] = time.perf_counter,
    rss_samples: int = 240,
    on_batch: Callable[[int], object] | None = None,
) -> SoakResult:
    """Call ``predict`` from ``callers`` threads until ``seconds`` pass or ``max_predictions``.

    Each caller takes the next batch of ``batch_size`` rows cycling through
    ``pool``, times ``predict`` on it, checks its output for NaN/inf, then
    times ``reference`` on the same batch: a fixed computation whose cost
    cannot drift, so the pair measures the model against the machine as it
    is at that moment (see `stability_gates`). An exception in any caller is
    counted (the caller goes on). Resident memory (``rss_mb``, a psutil
    reader in the workbench) is sampled about ``rss_samples`` times over the
    time budget, and as often over the prediction budget.

    Before the clock starts, every caller makes one warm-up call of each and
    the timing buffers are allocated and written, so lazy initialisation,
    per-thread allocator arenas and the buffers themselves are not counted as
    growth. ``clock`` is injectable so tests can drive time without sleeping;
    ``on_batch`` receives each batch's size (for a progress bar).

    Examples:
        >>> def uniform(x):
        ...     return np.full((len(x), 10), 0.1, np.float32)
        >>> r = soak(uniform, np.zeros((8, 784), np.float32), seconds=0.05, max_predictions=400,
        ...          batch_size=4, callers=4, reference=np.sum, rss_mb=lambda: 100.0)
        >>> (r.callers, r.errors, r.non_finite,
        ...  r.predictions <= 400, r.stopped_by in ("time", "count"))
        (4, 0, 0, True, True)
    """
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds}")
    for key, v in (
        ("max_predictions", max_predictions),
        ("batch_size", batch_size),
        ("callers", callers),
        ("rss_samples", rss_samples),
    ):
        if v < 1:
            raise ValueError(f"{key} must be >= 1, got {v}")
    if len(pool) == 0:
        raise ValueError("the soak pool is empty")
    max_calls = -(-max_predictions // batch_size)
    # np.full writes every page now: buffers filled during the soak would read as growth.
    call_end, call_ms, ref_end, ref_ms = (np.full(max_calls, np.nan) for _ in range(4))
    rss_s, rss_v = np.full(2 * rss_samples + 2, np.nan), np.full(2 * rss_samples + 2, np.nan)
    run, lock = _SoakRun(seconds, max_calls, rss_samples), threading.Lock()

    def start() -> None:
        run.t0 = clock()

    barrier = threading.Barrier(callers, action=start)

    def caller() -> None:
        warm = pool[np.arange(batch_size) % len(pool)]
        try:
            predict(warm)
            reference(warm)
        except Exception as exc:
            with lock:
                run.error(exc)
        barrier.wait()
        while True:
            with lock:
                now = clock() - run.t0
                if run.claimed >= max_predictions or now >= seconds:
                    if not run.stopped_by:  # the first caller to stop reads the final RSS
                        run.stopped_by = "count" if run.claimed >= max_predictions else "time"
                        rss_s[run.n_rss], rss_v[run.n_rss] = now, rss_mb()
                        run.n_rss += 1
                    return
                slot, n, first = (
                    run.slots,
                    min(batch_size, max_predictions - run.claimed),
                    run.offset,
                )
                run.slots, run.claimed = slot + 1, run.claimed + n
                run.offset = (first + n) % len(pool)
                if (
                    now >= run.next_rss_s or slot >= run.next_rss_slot
                ) and run.n_rss < rss_s.size - 1:
                    rss_s[run.n_rss], rss_v[run.n_rss] = now, rss_mb()
                    run.n_rss += 1
                    run.next_rss_s, run.next_rss_slot = (
                        now + run.rss_every_s,
                        slot + run.rss_every_slot,
                    )
                if on_batch is not None:
                    on_batch(n)
            batch = pool[(first + np.arange(n)) % len(pool)]
            try:
                t = clock()
                out = np.asarray(predict(batch), dtype=np.float64)
                e = clock()
                r = clock()
                reference(batch)
                f = clock()
            except Exception as exc:
                with lock:
                    run.error(exc)
                continue
            call_end[slot], call_ms[slot] = e - run.t0, (e - t) * 1e3
            ref_end[slot], ref_ms[slot] = f - run.t0, (f - r) * 1e3
            bad = int(out.size - np.count_nonzero(np.isfinite(out)))
            if bad:
                with lock:
                    run.non_finite += bad

    threads = [threading.Thread(target=caller, name=f"soak-{k}") for k in range(callers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = np.isfinite(call_end[: run.slots]) & np.isfinite(ref_end[: run.slots])
    ends = ref_end[: run.slots][ok]
    elapsed = float(ends.max()) if ends.size else 0.0
    return SoakResult(
        seconds=float(seconds),
        max_predictions=max_predictions,
        callers=callers,
        batch_size=batch_size,
        predictions=run.claimed,
        elapsed_s=elapsed,
        stopped_by=run.stopped_by,
        call_end_s=call_end[: run.slots][ok],
        call_ms=call_ms[: run.slots][ok],
        reference_end_s=ends,
        reference_ms=ref_ms[: run.slots][ok],
        rss_s=rss_s[: run.n_rss].copy(),
        rss_mb=rss_v[: run.n_rss].copy(),
        errors=run.errors,
        first_error=run.first_error,
        non_finite=run.non_finite,
    )


# --8<-- [end:soak]


@dataclass(frozen=True)
class SoakWindow:
    """One time window of a soak.

    Attributes:
        index: 0 for the first window.
        start_s: window start, seconds since the soak started.
        end_s: window end.
        calls: model calls (each paired with a reference timing) ending in the window.
        p50_ms: median model-call latency.
        p99_ms: 99th percentile of model-call latency.
        reference_p50_ms: median latency of the reference workload.
        ratio: median over the window's pairs of model latency / reference latency.
        rss_mb: median resident memory sampled in the window (NaN when none).
    """

    index: int
    start_s: float
    end_s: float
    calls: int
    p50_ms: float
    p99_ms: float
    reference_p50_ms: float
    ratio: float
    rss_mb: float


@dataclass(frozen=True)
class SoakSummary:
    """A soak cut into windows, with the two trends `stability_gates` judges.

    Attributes:
        seconds: elapsed time of the soak.
        callers: concurrent callers.
        predictions: predictions attempted.
        calls: successful model calls.
        stopped_by: ``"time"`` or ``"count"``.
        errors: exceptions in the callers.
        first_error: the first one (empty when none).
        non_finite: NaN or infinite output values.
        windows: the windows, in time order.
        rss_slope_mb_per_min: least-squares slope of the windows' resident
            memory against their mid-times (NaN with fewer than two windows
            holding a sample).
        latency_drift: last window's ``ratio`` / first window's ``ratio``
            (NaN when either is missing).
        raw_drift: last window's ``p50_ms`` / first window's (reported, not judged).
    """

    seconds: float
    callers: int
    predictions: int
    calls: int
    stopped_by: str
    errors: int
    first_error: str
    non_finite: int
    windows: tuple[SoakWindow, ...]
    rss_slope_mb_per_min: float
    latency_drift: float
    raw_drift: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the report's ``soak``); windows as a list of dicts."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "windows"}
        out["windows"] = [asdict(w) for w in self.windows]
        return out


def _median(a: npt.NDArray[np.float64]) -> float:
    return float(np.median(a)) if a.size else math.nan


def summarise_soak(result: SoakResult, *, windows: int = 6) -> SoakSummary:
    """Cut a soak into ``windows`` equal time windows; fit the memory slope and latency drift.

    Examples:
        >>> t = np.linspace(0.1, 60.0, 600)
        >>> r = SoakResult(60.0, 10**6, 4, 50, 30_000, 60.0, "time", t, np.full(600, 2.0),
        ...                t, np.full(600, 1.0), t, 500.0 + t / 6, 0, "", 0)  # 10 MB a minute
        >>> s = summarise_soak(r, windows=6)
        >>> len(s.windows), round(s.rss_slope_mb_per_min, 3), s.latency_drift, s.windows[0].ratio
        (6, 10.0, 1.0, 2.0)
    """
    if windows < 2:
        raise ValueError(f"windows must be >= 2, got {windows}")
    # Calls that started before the time budget ran out and ended after it belong to the
    # last window; a soak ended by its prediction budget spans what it took.
    span = min(result.elapsed_s, result.seconds) if result.elapsed_s > 0 else result.seconds
    edges = np.linspace(0.0, span, windows + 1)

    def which(t: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = np.clip(np.floor(t / span * windows), 0, windows - 1).astype(
            np.int64
        )
        return out

    w_call, w_rss = which(result.call_end_s), which(result.rss_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        paired = result.call_ms / result.reference_ms
    rows = []
    for k in range(windows):
        m = w_call == k
        lat = result.call_ms[m]
        rows.append(
            SoakWindow(
                index=k,
                start_s=float(edges[k]),
                end_s=float(edges[k + 1]),
                calls=int(m.sum()),
                p50_ms=_median(lat),
                p99_ms=float(np.percentile(lat, 99)) if lat.size else math.nan,
                reference_p50_ms=_median(result.reference_ms[m]),
                ratio=_median(paired[m]),
                rss_mb=_median(result.rss_mb[w_rss == k]),
            )
        )
    have = [w for w in rows if math.isfinite(w.rss_mb)]
    slope = math.nan
    if len(have) >= 2:
        x = np.array([(w.start_s + w.end_s) / 120.0 for w in have])  # mid-times, minutes
        y = np.array([w.rss_mb for w in have])
        slope = float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2))
    first, last = rows[0], rows[-1]
    return SoakSummary(
        seconds=result.elapsed_s,
        callers=result.callers,
        predictions=result.predictions,
        calls=int(result.call_ms.size),
        stopped_by=result.stopped_by,
        errors=result.errors,
        first_error=result.first_error,
        non_finite=result.non_finite,
        windows=tuple(rows),
        rss_slope_mb_per_min=slope,
        latency_drift=last.ratio / first.ratio if first.ratio > 0 else math.nan,
        raw_drift=last.p50_ms / first.p50_ms if first.p50_ms > 0 else math.nan,
    )


# --8<-- [start:stability_gates]
def stability_gates(
    summary: SoakSummary,
    *,
    max_rss_slope_mb_per_min: float,
    max_latency_drift: float,
    min_window_calls: int = 5,
    prefix: str = "release.stability",
) -> tuple[GateResult, ...]:
    """Judge a soak: enough calls per window, no error, no NaN, no memory or latency trend.

    Memory growth is a slope, not a before/after difference: one allocation
    step (a cache filled once) moves the end point as much as a leak does,
    but only a leak keeps climbing window after window; the slope is the
    least-squares fit through every window's median resident memory.

    Latency is never compared with a number of milliseconds: on a shared
    machine that figure measures the neighbours. Nor is the raw ratio of the
    last window's median latency to the first's enough: a machine whose load
    changes during the soak changes that ratio as well. So each caller times
    a fixed reference workload right after every model call, on the same
    batch, and the drift judged is that of the paired ratio model/reference:
    the last window's median ratio over the first window's. Load that slows
    the whole process slows both members of a pair and cancels; a model that
    slows down by itself (a growing cache, a leak of work) raises the ratio.
    What load can still move is the part it does not share, e.g. contention
    that hurts multi-threaded kernels more than the reference, so the bound
    leaves room (the default plan allows 1.5); the raw drift is reported
    beside it. The check is one-sided: getting faster (warm caches) passes.

    Examples:
        >>> w = [SoakWindow(k, 10.0 * k, 10.0 * k + 10, 500, 2.0, 3.0, 1.0, 2.0, 400.0)
        ...      for k in range(6)]
        >>> s = SoakSummary(60.0, 4, 100_000, 3000, "time", 0, "", 0, tuple(w), 0.0, 1.0, 1.0)
        >>> [g.passed for g in stability_gates(s, max_rss_slope_mb_per_min=8.0,
        ...                                    max_latency_drift=1.5)]
        [True, True, True, True, True]
    """
    fewest = min(summary.windows, key=lambda w: w.calls)
    size_ok = fewest.calls >= min_window_calls
    slope, drift = summary.rss_slope_mb_per_min, summary.latency_drift
    slope_ok = math.isfinite(slope) and slope <= max_rss_slope_mb_per_min
    drift_ok = math.isfinite(drift) and drift <= max_latency_drift
    first, last = summary.windows[0], summary.windows[-1]
    rss = [w.rss_mb for w in summary.windows if math.isfinite(w.rss_mb)]
    span = f"{rss[0]:.1f} -> {rss[-1]:.1f} MB" if rss else "no samples"
    return (
        GateResult(
            f"{prefix}.soak_size",
            size_ok,
            float(fewest.calls),
            float(min_window_calls),
            None,
            f"{summary.predictions} predictions, {summary.calls} calls by {summary.callers} "
            f"callers in {summary.seconds:.1f} s (stopped by {summary.stopped_by}); fewest "
            f"calls in a window {fewest.calls} (window {fewest.index}) "
            f"{'>=' if size_ok else '<'} {min_window_calls}",
        ),
        GateResult(
            f"{prefix}.no_errors",
            summary.errors == 0,
            float(summary.errors),
            0.0,
            None,
            f"{summary.errors} exceptions in the callers"
            + (f", first: {summary.first_error}" if summary.first_error else ""),
        ),
        GateResult(
            f"{prefix}.no_nan",
            summary.non_finite == 0,
            float(summary.non_finite),
            0.0,
            None,
            f"{summary.non_finite} non-finite output values",
        ),
        GateResult(
            f"{prefix}.rss_slope_mb_per_min",
            slope_ok,
            slope,
            max_rss_slope_mb_per_min,
            None,
            f"resident memory slope {slope:+.2f} MB/min (least squares over {len(rss)} "
            f"window medians, {span}) {'<=' if slope_ok else 'not <='} "
            f"{max_rss_slope_mb_per_min:g} MB/min",
        ),
        GateResult(
            f"{prefix}.latency_drift",
            drift_ok,
            drift,
            max_latency_drift,
            None,
            f"median latency / reference, last window over first: {last.ratio:.3f} / "
            f"{first.ratio:.3f} = {drift:.3f} {'<=' if drift_ok else 'not <='} "
            f"{max_latency_drift:g} (raw median {first.p50_ms:.2f} -> {last.p50_ms:.2f} ms, "
            f"x{summary.raw_drift:.2f}, not judged)",
        ),
    )


# --8<-- [end:stability_gates]
