"""The home page's pipeline figure, drawn with matplotlib at build time (mkdocs-gen-files).

Written as ``assets/pipeline.svg`` into the site (text kept as text, so it
scales and can be searched and translated). One data unit is one point, so
the 11-pt labels stay about 11 px at the page's column width.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

matplotlib.rcParams["svg.hashsalt"] = "release-spec"  # the same SVG ids in every build

W, H = 720, 430
INK, RED, GREY = "#263238", "#c62828", "#546e7a"
STAGE = ("#e8eaf6", "#3949ab")
GATE = ("#fff8e1", "#f9a825")
PROD = ("#e8f5e9", "#2e7d32")
BAD = ("#ffebee", RED)


def _box(ax, x0, x1, yc, h, title, sub, colours, pill=False):
    fill, edge = colours
    style = f"round,pad=0,rounding_size={h / 2 if pill else 6}"
    ax.add_patch(FancyBboxPatch((x0, yc - h / 2), x1 - x0, h, boxstyle=style, fc=fill, ec=edge))
    xc = (x0 + x1) / 2
    ax.text(xc, yc + (8 if sub else 0), title, ha="center", va="center", weight="bold", color=INK)
    if sub:
        ax.text(xc, yc - 9, sub, ha="center", va="center", color=INK, size=11)


def _arrow(ax, a, b, colour=GREY, dashed=False, rad=0.0):
    ax.add_patch(
        FancyArrowPatch(
            a,
            b,
            arrowstyle="-|>",
            mutation_scale=12,
            color=colour,
            lw=1.4,
            linestyle="--" if dashed else "-",
            connectionstyle=f"arc3,rad={rad}",
        )
    )


def draw() -> str:
    """The figure as SVG text."""
    with plt.rc_context({"svg.fonttype": "none", "font.size": 11, "font.family": "sans-serif"}):
        fig = plt.figure(figsize=(W / 72, H / 72))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, W)
        ax.set_ylim(0, H)
        ax.axis("off")
        # Training stages, each followed by its gate; a failed gate goes to optimisation.
        _box(
            ax,
            120,
            570,
            395,
            44,
            "Iterative optimisation",
            "locate the problem → adjust the parameters → retrain (bounded attempts)",
            BAD,
        )
        row = 290
        _box(ax, 10, 140, row, 52, "1 Pre-training", "source domain", STAGE)
        _box(ax, 165, 255, row, 52, "gate", "learns at all?", GATE, pill=True)
        _box(ax, 280, 410, row, 52, "2 Fine-tuning", "target domain", STAGE)
        _box(ax, 435, 525, row, 52, "gate", "fit to ship?", GATE, pill=True)
        for a, b in ((140, 165), (255, 280), (410, 435)):
            _arrow(ax, (a, row), (b, row))
        for gate_x, stage_x in ((210, 75), (480, 345)):
            _arrow(ax, (gate_x, row + 26), (gate_x, 373), RED)
            ax.text(gate_x + 5, 352, "fail", color=RED, size=11)
            _arrow(ax, (gate_x - 30, 373), (stage_x, row + 26), GREY, dashed=True, rad=0.25)
        ax.text(120, 352, "retrain", color=GREY, size=11, ha="right")
        # The release stage: three offline gates, then the phased rollout.
        top, mid = 220, 165
        ax.add_patch(
            FancyBboxPatch(
                (10, 115),
                700,
                top - 115,
                boxstyle="round,pad=0,rounding_size=8",
                fc="none",
                ec=STAGE[1],
                ls="--",
            )
        )
        ax.text(
            20,
            top - 16,
            "3 Release: offline gates (test split read once), then live traffic",
            weight="bold",
            color=STAGE[1],
        )
        ax.plot([525, 600], [row, row], color=GREY, lw=1.4)
        ax.text(562, row + 6, "pass", color=GREY, size=11, ha="center")
        _arrow(ax, (600, row), (600, top), rad=0)
        gates = [
            (15, 120, "functional", "output contract"),
            (135, 235, "performance", "vs production"),
            (255, 355, "stability", "soak"),
        ]
        for x0, x1, title, sub in gates:
            _box(ax, x0, x1, mid, 46, title, sub, GATE, pill=True)
        _box(ax, 385, 570, mid, 50, "phased rollout", "1 → 5 → 25 → 50 → 100 %", STAGE)
        _box(ax, 595, 700, mid, 50, "Production", "new version", PROD)
        for a, b in ((120, 135), (235, 255), (355, 385), (570, 595)):
            _arrow(ax, (a, mid), (b, mid))
        # Failures of the release stage.
        _box(ax, 20, 355, 55, 40, "stop: the stage fails", "nothing is served", BAD)
        for x in (67, 185, 305):
            _arrow(ax, (x, mid - 23), (x, 75), RED)
        ax.text(72, 95, "fail", color=RED, size=11)
        _box(ax, 385, 570, 55, 40, "Monitoring", "sequential judge per look", STAGE)
        _arrow(ax, (477, mid - 25), (477, 75))
        _box(ax, 595, 700, 55, 40, "Rollback", "canary share → 0", BAD)
        _arrow(ax, (570, 55), (595, 55), RED)
        ax.text(582, 80, "regression", color=RED, size=11, ha="center")
        ax.text(
            W / 2,
            12,
            "Every version lives in the model registry; a rollback restores the previous one.",
            ha="center",
            color=GREY,
            size=11,
        )
        buf = io.StringIO()
        fig.savefig(buf, format="svg", transparent=True, metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


if __name__ in {"__main__", "<run_path>"}:  # run by mkdocs-gen-files
    import mkdocs_gen_files

    with mkdocs_gen_files.open("assets/pipeline.svg", "w") as f:
        f.write(draw())
