"""The report's figures and gate table say what the run found (issue 10 item 4).

Each figure function returns PNG bytes; the tests capture the Matplotlib
figure before it is saved and read its axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import release_spec.workbench.report as rp
from release_spec.workbench.gate_rules import gate_rule


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plot functions draw, in order (closed after reading)."""
    drawn: list[Any] = []
    real = rp._figure_bytes

    def keep(fig: Any) -> bytes:
        fig.canvas.draw()
        drawn.append(fig)
        return real(fig)

    monkeypatch.setattr(rp, "_figure_bytes", keep)
    return drawn


def _gate(name: str, value: float, threshold: float, detail: str, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "passed": kw.get("passed", True),
        "value": value,
        "threshold": threshold,
        "interval": kw.get("interval"),
        "detail": detail,
        "split": None,
    }


GATES = [
    _gate(
        "pretrain.accuracy",
        0.9533,
        0.88,
        "accuracy 0.9533 on 107, 95% Wilson interval [0.8952, 0.9799]; lower bound >= 0.88",
        interval=[0.8952, 0.9799],
    ),
    _gate("finetune.improvement", 9.3e-10, 0.05, "McNemar exact one-sided p = 9.31e-10 <= 0.05"),
    _gate(
        "finetune.no_forgetting",
        -0.0003,
        -0.05,
        "difference +0.0374 on 107 paired items; 95% lower bound -0.0003 > -0.05 (p = 0.0017)",
        interval=[-0.0003, 1.0],
    ),
    _gate(
        "release.stability.rss_slope_mb_per_min",
        0.02,
        16.0,
        "slope +0.02 MB/min (least squares, 754.0 -> 754.0 MB) <= 16 MB/min",
    ),
    _gate(
        "release.stability.soak_size",
        10000.0,
        5.0,
        "745100 predictions; fewest calls in a window 10000 (window 5) >= 5",
    ),
    _gate("release.functional.output_shape", 10.0, 10.0, "output shape (179, 10), expected"),
    _gate(
        "release.stability.latency_drift",
        2.5,
        1.5,
        "median latency ratio 2.5 <= 1.5 (raw 5.89 -> 9.81 ms, not judged)",
        passed=False,
    ),
]


@pytest.mark.parametrize(
    ("index", "rule", "headroom"),
    [
        (0, "lower bound ≥ 0.88", (0.8952 - 0.88) / 0.88),
        (1, "value ≤ 0.05", 1.0),
        (2, "lower bound > -0.05", (0.05 - 0.0003) / 0.05),
        (3, "value ≤ 16", (16 - 0.02) / 16),
        (4, "value ≥ 5", 1.0),
        (5, "value = 10", 0.0),
        (6, "value ≤ 1.5", -2 / 3),
    ],
)
def test_gate_rule_gives_the_direction(index: int, rule: str, headroom: float) -> None:
    r = gate_rule(GATES[index])
    assert r.rule == rule
    assert r.headroom == pytest.approx(headroom)


def test_gate_table_states_direction_and_prints_counts_as_integers() -> None:
    assert rp._fmt(10000.0) == "10000"
    assert rp._fmt(0.9533) == "0.9533"
    assert rp._fmt(1.5e-05) == "1.5e-05"
    report = {
        "outcome": "stopped",
        "scenario": "default",
        "seed": 0,
        "started": "2026-12-02T00:00:00+00:00",
        "seconds": 1.0,
        "production": {
            "version": None,
            "sha256": None,
            "before": None,
            "candidate_promoted": False,
        },
        "released_model": None,
        "failed_gates": ["release.stability.latency_drift"],
        "stages": [
            {
                "name": "release",
                "state": "failed",
                "gates": GATES,
                "attempts": [],
                "skipped": [],
                "notes": [],
            }
        ],
        "figures": [],
    }
    md = rp.render_markdown(report)
    assert "| gate | result | value | passes when | interval | split read |" in md
    assert "| `release.stability.soak_size` | pass | 10000 | value ≥ 5 |" in md
    assert "| `finetune.improvement` | pass | 9.3e-10 | value ≤ 0.05 |" in md
    assert "1e+04" not in md


def test_gate_summary_bars_show_headroom(figures: list[Any]) -> None:
    rp.plot_gate_summary({"outcome": "stopped", "stages": [{"name": "x", "gates": GATES}]})
    (fig,) = figures
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == len(GATES)
    assert len(set(np.round(widths, 6))) > 2  # not all the same width
    assert min(widths) < 0  # the failed gate extends to the left
    texts = [t.get_text() for t in ax.texts]
    assert "FAIL: value 2.5, needs ≤ 1.5" in texts
    # One label per bar, none smaller than 9 pt.
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [g["name"] for g in GATES]
    assert min(t.get_fontsize() for t in [*ax.texts, *ax.get_yticklabels()]) >= 9


def _rollout(upper_bound: list[float], rolled_back: bool) -> dict[str, Any]:
    n = len(upper_bound)
    return {
        "candidate": "v0002",
        "status": "rolled_back" if rolled_back else "completed",
        "alpha": 0.05,
        "margin": 0.03,
        "rolled_back": {"step": 0, "share": 1.0, "canary_requests": 17} if rolled_back else None,
        "timeline": {
            "look": list(range(1, n + 1)),
            "minutes": [0.2 * (i + 1) for i in range(n)],
            "share": [1.0] * n,
            "p_value": list(np.geomspace(1.0, 0.01, n)),
            "upper_bound": upper_bound,
        },
    }


@pytest.mark.parametrize(
    "bounds", [[1.0, 0.8, 0.6, 0.45], [0.9, 0.2, -0.1, -0.15], [-0.2, -0.21, -0.22, -0.23]]
)
def test_rollout_bound_panel_shows_the_bound_and_steps(
    figures: list[Any], bounds: list[float]
) -> None:
    rp.plot_rollout(_rollout(bounds, rolled_back=bounds[-1] > 0.3))
    (fig,) = figures
    _, pvalues, bound_ax = fig.axes
    lo, hi = bound_ax.get_ylim()
    assert lo <= min(min(bounds), 0.03)
    assert hi >= max(max(bounds), 0.03)
    assert pvalues.lines[0].get_drawstyle() == "steps-post"
    assert bound_ax.lines[0].get_drawstyle() == "steps-post"


def _monitoring(ks_p: float, ks: float, psi: float) -> dict[str, Any]:
    edges = list(np.linspace(0, 1, 11))
    return {
        "model": "v0002",
        "reference": "training inputs",
        "thresholds": {
            "psi_warning": 0.1,
            "psi_alert": 0.25,
            "ks_alpha": 0.01,
            "ks_min_statistic": 0.1,
        },
        "drift": [
            {
                "feature": "ink_fraction",
                "psi": psi,
                "ks_statistic": ks,
                "ks_p_value": ks_p,
                "ks_p_adjusted": ks_p,
                "histogram": {"edges": edges, "reference": [0.1] * 10, "live": [0.1] * 10},
            }
        ],
        "alerts": [],
    }


@pytest.mark.parametrize(
    ("ks_p", "ks", "psi", "title"),
    [
        (1e-30, 0.3, 0.02, "ink_fraction: alert\nPSI 0.020 (ok), KS 0.300 (alert)"),
        (1e-30, 0.05, 0.02, "ink_fraction: ok\nPSI 0.020 (ok), KS 0.050 (ok)"),
        (0.5, 0.3, 0.12, "ink_fraction: warning\nPSI 0.120 (warning), KS 0.300 (ok)"),
        (1e-9, 0.2, 0.3, "ink_fraction: alert\nPSI 0.300 (alert), KS 0.200 (alert)"),
    ],
)
def test_drift_titles_reflect_psi_and_ks(
    figures: list[Any], ks_p: float, ks: float, psi: float, title: str
) -> None:
    rp.plot_drift(_monitoring(ks_p, ks, psi))
    (fig,) = figures
    assert fig.axes[0].get_title() == title


def test_monitoring_section_explains_tiny_ks_p_values_without_alerts() -> None:
    text = "\n".join(rp._monitoring_markdown(_monitoring(6e-19, 0.05, 0.02)))
    assert "| ink_fraction | 0.0200 | 0.0500 | 6e-19 |" in text
    explained = text.index("the distance decides")
    assert explained < text.index("Alerts: 0")
    assert "at least 0.1" in text
