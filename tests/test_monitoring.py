"""Monitoring: input drift (PSI, Holm-corrected KS) and per-class recall windows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from release_spec.strategy.monitoring import (
    MonitoringReport,
    MonitoringThresholds,
    input_drift,
    monitor,
    recall_windows,
)

RNG_SEED = 20261129


def _summaries(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, list[float]]:
    return {
        "mean_intensity": list(rng.normal(0.3 + shift, 0.05, n)),
        "ink_fraction": list(rng.beta(2, 5, n)),
    }


def _predictions(
    rng: np.random.Generator, n: int, miss: list[float]
) -> tuple[list[int], list[int]]:
    """Labels uniform over the classes; a class-k request is missed with probability miss[k]."""
    k = len(miss)
    y = rng.integers(0, k, n)
    wrong = rng.random(n) < np.asarray(miss)[y]
    pred = np.where(wrong, (y + 1) % k, y)
    return [int(v) for v in y], [int(v) for v in pred]


def _drift_monitor(
    ref: dict[str, list[float]],
    live: dict[str, list[float]],
    thresholds: MonitoringThresholds | None = None,
) -> MonitoringReport:
    """`monitor` on these summaries, with one live request (too few for a recall window)."""
    return monitor(
        reference_summaries=ref,
        live_summaries=live,
        y_true=[0],
        y_pred=[0],
        reference_true=[0, 1],
        reference_pred=[0, 1],
        num_classes=2,
        thresholds=thresholds,
    )


def test_input_drift_no_shift_raises_no_alert() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref, live = _summaries(rng, 2000), _summaries(rng, 1000)
    report = _drift_monitor(ref, live)
    assert [d.feature for d in report.drift] == ["ink_fraction", "mean_intensity"]
    assert all(d.psi < 0.1 for d in report.drift)
    assert report.alerts == ()


def test_input_drift_shift_is_flagged_by_psi_and_ks() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref, live = _summaries(rng, 2000), _summaries(rng, 1000, shift=0.05)
    drift = {d.feature: d for d in input_drift(ref, live)}
    moved, still = drift["mean_intensity"], drift["ink_fraction"]
    # The KS statistic is scipy's; the Holm adjustment over two tests literally.
    ks = stats.ks_2samp(ref["mean_intensity"], live["mean_intensity"])
    assert moved.ks_statistic == pytest.approx(ks.statistic, abs=1e-12)
    p = sorted([moved.ks_p_value, still.ks_p_value])
    assert min(moved.ks_p_value, still.ks_p_value) * 2 == pytest.approx(
        min(moved.ks_p_adjusted, still.ks_p_adjusted)
    )
    assert max(moved.ks_p_adjusted, still.ks_p_adjusted) == pytest.approx(
        min(1.0, max(2 * p[0], p[1]))
    )
    assert moved.psi > 0.25
    assert still.psi < 0.1
    report = _drift_monitor(ref, live)
    kinds = sorted((a.subject, a.severity, a.message.split()[0]) for a in report.alerts)
    assert kinds == [("mean_intensity", "alert", "KS"), ("mean_intensity", "alert", "PSI")]


def test_psi_warning_between_thresholds() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref, live = _summaries(rng, 4000), _summaries(rng, 4000, shift=0.012)
    (d,) = [d for d in input_drift(ref, live) if d.feature == "mean_intensity"]
    t = MonitoringThresholds(psi_warning=d.psi * 0.9, psi_alert=d.psi * 1.1, ks_alpha=1e-300)
    report = _drift_monitor(ref, live, t)
    (alert,) = report.alerts
    assert alert.severity == "warning"
    assert alert.value == pytest.approx(d.psi)


def test_input_drift_rejects_mismatched_features() -> None:
    with pytest.raises(ValueError, match="differ"):
        input_drift({"a": [1.0, 2.0]}, {"b": [1.0, 2.0]})
    with pytest.raises(ValueError, match="no feature"):
        input_drift({}, {})


def test_recall_windows_flag_only_the_degraded_class_and_window() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref_t, ref_p = _predictions(rng, 5000, [0.05] * 5)
    ok_t, ok_p = _predictions(rng, 1000, [0.05] * 5)
    bad_t, bad_p = _predictions(rng, 500, [0.05, 0.05, 0.05, 0.6, 0.05])
    rows = recall_windows(
        ok_t + bad_t,
        ok_p + bad_p,
        reference_true=ref_t,
        reference_pred=ref_p,
        num_classes=5,
        thresholds=MonitoringThresholds(recall_window=500),
    )
    flagged = {(r.window, r.label) for r in rows if r.alert}
    assert flagged == {(2, 3)}
    r = next(r for r in rows if (r.window, r.label) == (2, 3))
    y, p = np.asarray(bad_t), np.asarray(bad_p)
    assert r.support == int(np.sum(y == 3))
    assert r.recall == pytest.approx(float(np.mean(p[y == 3] == 3)))
    ry, rp = np.asarray(ref_t), np.asarray(ref_p)
    assert r.reference_recall == pytest.approx(float(np.mean(rp[ry == 3] == 3)))
    assert (r.start, r.end) == (1000, 1500)
    assert r.p_adjusted <= 0.05


def test_recall_windows_skip_thin_classes_and_short_tail() -> None:
    rows = recall_windows(
        [0] * 30 + [1] * 5 + [0] * 10,
        [0] * 30 + [0] * 5 + [0] * 10,
        reference_true=[0, 1] * 50,
        reference_pred=[0, 1] * 50,
        num_classes=2,
        thresholds=MonitoringThresholds(recall_window=35, min_class_support=10),
    )
    # Class 1 has 5 < 10 requests; the 10-request tail is under half a window.
    assert [(r.window, r.label, r.support) for r in rows] == [(0, 0, 30)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 1], "y_pred": [0]}, "y_true has 2"),
        ({"y_true": [0, 5], "y_pred": [0, 1]}, "outside"),
        ({"y_true": [0, 1.5], "y_pred": [0, 1]}, "integer"),
    ],
)
def test_recall_windows_reject_bad_labels(kwargs: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recall_windows(
            **kwargs,  # type: ignore[arg-type]
            reference_true=[0, 1],
            reference_pred=[0, 1],
            num_classes=2,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"psi_warning": 0.3, "psi_alert": 0.2}, "psi_warning"),
        ({"ks_alpha": 0.0}, "ks_alpha"),
        ({"recall_window": 0}, "recall_window"),
        ({"psi_bins": 1}, "psi_bins"),
    ],
)
def test_thresholds_reject_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MonitoringThresholds(**kwargs)  # type: ignore[arg-type]


def test_alerts_are_frozen_values() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref, live = _summaries(rng, 500), _summaries(rng, 500, shift=0.1)
    report = _drift_monitor(ref, live)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.alerts[0].severity = "warning"  # type: ignore[misc]
