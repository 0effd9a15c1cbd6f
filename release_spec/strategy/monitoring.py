"""Monitoring a released model: input drift and per-class recall, with recorded alerts.

Two questions are asked of live traffic, with thresholds from the plan:

* **Has the input moved away from the training data?** For each feature
  summary (a scalar per request, such as an image's mean intensity), the
  population stability index (eq-psi) against the reference sample and a
  two-sample Kolmogorov–Smirnov test (eq-ks). The KS p-values of all
  summaries are corrected together with Holm's step-down procedure (eq-holm),
  and a KS alert also needs a statistic above a floor, because with
  thousands of requests a negligible shift is already "significant".
* **Has the model got worse on some class?** Live requests are cut into
  consecutive windows; in each, every class with enough support is tested for
  a recall lower than its reference recall (a one-sided two-proportion z-test
  on the misses), and the class p-values of the window are Holm-corrected, so
  each window raises a false alert with probability at most alpha.

Every finding becomes a frozen `Alert` that the release report lists.
Strategy layer: the standard library and ``release_spec.statistics`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from release_spec.statistics import (
    holm,
    ks_two_sample,
    population_stability_index,
    two_proportion_z_test,
)
from release_spec.strategy._validate import OPEN_FRACTION, Range, class_labels

__all__ = [
    "Alert",
    "ClassRecall",
    "FeatureDrift",
    "MonitoringReport",
    "MonitoringThresholds",
    "input_drift",
    "monitor",
    "recall_windows",
]


@dataclass(frozen=True)
class MonitoringThresholds:
    """Alert thresholds (the plan's ``[monitoring]`` table).

    Args:
        psi_warning: PSI at or above this is a warning (0.1 is the common reading).
        psi_alert: PSI at or above this is an alert (0.25).
        psi_bins: number of quantile bins of the reference sample for PSI.
        ks_alpha: family-wise level of the Holm-corrected KS tests over the summaries.
        ks_min_statistic: smallest KS distance worth an alert.
        recall_alpha: family-wise level of the Holm-corrected recall tests in a window.
        recall_window: live requests per window.
        min_class_support: requests of a class a window needs before its recall is tested.
    """

    # One default per knob: the plan file's ``[monitoring]`` takes these
    # (`release_spec.strategy.plan.MonitoringPlan`). A window of 2,000 requests (not
    # 200) gives each of ten classes about 200, enough for the one-sided recall test
    # to see a drop of ten points at Holm's level; a class needs 20 of them (not 10)
    # before its recall is tested at all, below which a z-test's normal
    # approximation is poor.
    psi_warning: float = 0.1
    psi_alert: float = 0.25
    psi_bins: int = 10
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.1
    recall_alpha: float = 0.05
    recall_window: int = 2000
    min_class_support: int = 20

    def __post_init__(self) -> None:
        _POSITIVE.check("psi_warning", self.psi_warning)
        _POSITIVE.check("psi_alert", self.psi_alert)
        if self.psi_warning > self.psi_alert:
            raise ValueError(
                f"psi_warning: expected at most psi_alert ({self.psi_alert!r}), "
                f"got {self.psi_warning!r}"
            )
        Range(int, 2, None).check("psi_bins", self.psi_bins)
        OPEN_FRACTION.check("ks_alpha", self.ks_alpha)
        OPEN_FRACTION.check("recall_alpha", self.recall_alpha)
        Range(float, 0, 1).check("ks_min_statistic", self.ks_min_statistic)
        Range(int, 1, None).check("recall_window", self.recall_window)
        Range(int, 1, None).check("min_class_support", self.min_class_support)


_POSITIVE = Range(float, 0, None, closed="neither")


@dataclass(frozen=True)
class Alert:
    """One monitoring finding, for the report."""

    kind: Literal["drift", "recall"]
    severity: Literal["warning", "alert"]
    subject: str
    value: float
    threshold: float
    message: str


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature summary between the reference and the live sample."""

    feature: str
    psi: float
    ks_statistic: float
    ks_p_value: float
    ks_p_adjusted: float


@dataclass(frozen=True)
class ClassRecall:
    """Recall of one class in one live window against its reference recall."""

    window: int
    start: int
    end: int
    label: int
    support: int
    recall: float
    reference_recall: float
    p_value: float
    p_adjusted: float
    alert: bool


@dataclass(frozen=True)
class MonitoringReport:
    """Everything monitoring measured, and the alerts it raised."""

    drift: tuple[FeatureDrift, ...]
    recall: tuple[ClassRecall, ...]
    alerts: tuple[Alert, ...]


def input_drift(
    reference: Mapping[str, Sequence[float]],
    live: Mapping[str, Sequence[float]],
    thresholds: MonitoringThresholds | None = None,
) -> tuple[FeatureDrift, ...]:
    """PSI and Holm-corrected KS for every feature summary.

    Examples:
        >>> ref = {"mean": [i / 100 for i in range(100)]}
        >>> d, = input_drift(ref, {"mean": [i / 100 + 0.5 for i in range(100)]})
        >>> d.ks_statistic, d.psi > 0.25
        (0.5, True)
    """
    t = thresholds or MonitoringThresholds()
    if not reference:
        raise ValueError("no feature summaries to compare")
    if set(reference) != set(live):
        raise ValueError(
            f"reference and live summaries differ: {sorted(set(reference) ^ set(live))}"
        )
    names = sorted(reference)
    psis = [population_stability_index(reference[n], live[n], bins=t.psi_bins) for n in names]
    ks = [ks_two_sample(reference[n], live[n]) for n in names]
    adjusted = holm([r.p_value for r in ks], alpha=t.ks_alpha).adjusted
    return tuple(
        FeatureDrift(n, psi, r.statistic, r.p_value, adj)
        for n, psi, r, adj in zip(names, psis, ks, adjusted, strict=True)
    )


def recall_windows(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    *,
    reference_true: Sequence[int],
    reference_pred: Sequence[int],
    num_classes: int,
    thresholds: MonitoringThresholds | None = None,
) -> tuple[ClassRecall, ...]:
    """Per-class recall in consecutive live windows, tested against the reference recall.

    The reference (e.g. the validation set) gives each class's misses out of
    its support; in each window a class with at least ``min_class_support``
    requests is tested one-sidedly for a higher miss rate (eq-two-proportion-z),
    and the window's p-values are Holm-corrected (eq-holm). A trailing partial
    window is analysed if it holds at least half a window.

    Examples:
        >>> ref_t = [0] * 100 + [1] * 100
        >>> ref_p = [0] * 95 + [1] * 5 + [1] * 95 + [0] * 5
        >>> live_t, live_p = [0] * 50 + [1] * 50, [0] * 48 + [1] * 2 + [0] * 25 + [1] * 25
        >>> rows = recall_windows(live_t, live_p, reference_true=ref_t, reference_pred=ref_p,
        ...                       num_classes=2, thresholds=MonitoringThresholds(recall_window=100))
        >>> [(r.label, r.recall, r.alert) for r in rows]
        [(0, 0.96, False), (1, 0.5, True)]
    """
    t = thresholds or MonitoringThresholds()
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels, y_pred {len(y_pred)}")
    if len(reference_true) != len(reference_pred):
        raise ValueError(
            f"reference_true has {len(reference_true)} labels, reference_pred {len(reference_pred)}"
        )
    yt, yp, rt, rp = (
        class_labels(name, values, num_classes=num_classes).tolist()
        for name, values in (
            ("y_true", y_true),
            ("y_pred", y_pred),
            ("reference_true", reference_true),
            ("reference_pred", reference_pred),
        )
    )
    ref_support, ref_misses = _support_and_misses(rt, rp, num_classes)
    rows: list[ClassRecall] = []
    w = t.recall_window
    for k, start in enumerate(range(0, len(yt), w)):
        end = min(start + w, len(yt))
        if end - start < max(1, w // 2):
            break
        support, misses = _support_and_misses(yt[start:end], yp[start:end], num_classes)
        tested = [
            c for c in range(num_classes) if support[c] >= t.min_class_support and ref_support[c]
        ]
        if not tested:
            continue
        p = [
            float(two_proportion_z_test(misses[c], support[c], ref_misses[c], ref_support[c]))
            for c in tested
        ]
        h = holm(p, alpha=t.recall_alpha)
        for c, pv, adj, rej in zip(tested, p, h.adjusted, h.reject, strict=True):
            rows.append(
                ClassRecall(
                    window=k,
                    start=start,
                    end=end,
                    label=c,
                    support=support[c],
                    recall=1 - misses[c] / support[c],
                    reference_recall=1 - ref_misses[c] / ref_support[c],
                    p_value=pv,
                    p_adjusted=adj,
                    alert=rej,
                )
            )
    return tuple(rows)


def _support_and_misses(
    y_true: Sequence[int], y_pred: Sequence[int], num_classes: int
) -> tuple[list[int], list[int]]:
    """Per class: its requests, and how many of them the model got wrong."""
    support = [0] * num_classes
    misses = [0] * num_classes
    for a, b in zip(y_true, y_pred, strict=True):
        support[a] += 1
        misses[a] += a != b
    return support, misses


def _alerts(
    drift: Sequence[FeatureDrift], recall: Sequence[ClassRecall], t: MonitoringThresholds
) -> tuple[Alert, ...]:
    out: list[Alert] = []
    for d in drift:
        if d.psi >= t.psi_warning:
            severe = d.psi >= t.psi_alert
            out.append(
                Alert(
                    "drift",
                    "alert" if severe else "warning",
                    d.feature,
                    d.psi,
                    t.psi_alert if severe else t.psi_warning,
                    f"PSI of {d.feature!r} is {d.psi:.3f} "
                    f"(>= {t.psi_alert if severe else t.psi_warning:g})",
                )
            )
        if d.ks_p_adjusted <= t.ks_alpha and d.ks_statistic >= t.ks_min_statistic:
            out.append(
                Alert(
                    "drift",
                    "alert",
                    d.feature,
                    d.ks_statistic,
                    t.ks_min_statistic,
                    f"KS distance of {d.feature!r} is {d.ks_statistic:.3f}, "
                    f"Holm-adjusted p = {d.ks_p_adjusted:.2g} <= {t.ks_alpha:g}",
                )
            )
    for r in recall:
        if r.alert:
            out.append(
                Alert(
                    "recall",
                    "alert",
                    f"class {r.label}",
                    r.recall,
                    r.reference_recall,
                    f"recall of class {r.label} in window {r.window} (requests {r.start}-"
                    f"{r.end - 1}) is {r.recall:.3f} vs {r.reference_recall:.3f} on the "
                    f"reference, Holm-adjusted p = {r.p_adjusted:.2g} <= {t.recall_alpha:g}",
                )
            )
    return tuple(out)


def monitor(
    *,
    reference_summaries: Mapping[str, Sequence[float]],
    live_summaries: Mapping[str, Sequence[float]],
    y_true: Sequence[int],
    y_pred: Sequence[int],
    reference_true: Sequence[int],
    reference_pred: Sequence[int],
    num_classes: int,
    thresholds: MonitoringThresholds | None = None,
) -> MonitoringReport:
    """Drift, recall windows and the alerts they raise, in one report."""
    t = thresholds or MonitoringThresholds()
    drift = input_drift(reference_summaries, live_summaries, t)
    recall = recall_windows(
        y_true,
        y_pred,
        reference_true=reference_true,
        reference_pred=reference_pred,
        num_classes=num_classes,
        thresholds=t,
    )
    return MonitoringReport(drift, recall, _alerts(drift, recall, t))
