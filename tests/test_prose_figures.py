"""Figures quoted in the pages' prose equal the data the build renders.

Tables and figures are generated at build time from ``docs/data/*.json`` and
from the build's own reference run; the sentences around them quote some of
those numbers by hand. Each test below recomputes the quoted text from the
same data and fails when a page no longer says it, so a new benchmark, sweep,
rule comparison or reference run cannot leave stale prose behind.

The data-file tests are fast. The reference-run tests read the build's cached
run (``docs/site_tools/executed.py``: the same directory, ``docs/release/run/``, the same
key); when it holds no run for the current sources they start it, as
the build would (about two minutes), so they are marked ``slow``.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"


def page_text(rel: str) -> str:
    """The page with its line breaks and runs of spaces folded to one space."""
    return re.sub(r"\s+", " ", (ROOT / "docs" / rel).read_text("utf-8"))


def assert_quotes(rel: str, phrases: list[str]) -> None:
    text = page_text(rel)
    missing = [p for p in phrases if p not in text]
    assert not missing, f"docs/{rel} no longer quotes its data; expected: {missing}"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text("utf-8"))


def thousands(n: float) -> str:
    return f"{round(n):,}"


# -- bench.json --------------------------------------------------------------


def bench_row(subject: str, peer: str) -> dict[str, Any]:
    rows = [r for r in load("bench.json")["rows"] if r["subject"] == subject and r["peer"] == peer]
    assert len(rows) == 1, f"bench.json: {len(rows)} rows for {subject!r} vs {peer!r}"
    return rows[0]


READ_PASS = "read pass (np.add.reduce x2)"
ADAM_OUT = "optimizers: adam_step (float32, out=)"


def test_metrics_page_quotes_bench_ratios() -> None:
    cm = bench_row("metrics: confusion matrix + macro P/R/F1", READ_PASS)["ratio"]
    acc = bench_row("metrics: accuracy", READ_PASS)["ratio"]
    assert_quotes(
        "formulas/metrics.md",
        [
            f"costs about {cm:.1f}× one read pass over both label vectors",
            f"costs about {acc:.1f}× a read pass",
        ],
    )


def test_benchmarks_page_quotes_bench_json() -> None:
    eager = bench_row(ADAM_OUT, "keras Adam.apply_gradients (eager)")
    xla = bench_row(ADAM_OUT, "keras Adam.apply_gradients (XLA jit)")
    assert_quotes(
        "benchmarks.md",
        [
            f"({eager['ratio']:.2f}× in the committed run)",
            f"XLA-compiled Keras is about {xla['ratio']:.1f}× faster",
            f"takes about {eager['memory_floor_out_ms']:.0f} ms on one thread",
            f"against {eager['peer_ms']:.0f} ms for eager Keras",
        ],
    )


# -- seeds.json --------------------------------------------------------------


def test_reference_release_page_quotes_the_seed_sweep() -> None:
    seeds = load("seeds.json")
    runs = seeds["runs"]
    n = len(seeds["seeds"])
    summary = seeds["summary"]
    default = [r for r in runs if r["scenario"] == "default" and r["accuracy"] is not None]
    worst = min(default, key=lambda r: r["accuracy"])
    mean = sum(r["accuracy"] for r in default) / len(default)
    rolled = [
        r["exposure"]["canary_requests"]
        for r in runs
        if r["scenario"] == "live-regression" and r["outcome"] == "rolled_back"
    ]
    rolled.sort()
    mid = len(rolled) // 2
    median = rolled[mid] if len(rolled) % 2 else (rolled[mid - 1] + rolled[mid]) / 2
    assert_quotes(
        "release/reference-release.md",
        [
            f"stopped on {summary['regression']} of {n}",
            f"released on {summary['default']} of {n} with a lowest accuracy of "
            f"{worst['accuracy']:.3f} (seed {worst['seed']}, "
            f"{round(worst['accuracy'] * worst['n'])} of {worst['n']} images",
            f"mean {mean:.3f})",
            f"rolled back on {summary['live-regression']} of {n} (after {rolled[0]} to "
            f"{rolled[-1]} canary requests, median {median:g})",
        ],
    )


# -- rules.json --------------------------------------------------------------


def test_phased_rollout_page_quotes_the_rule_comparison() -> None:
    rules = load("rules.json")
    rate = {(r["rule"], r["scenario"]): r["rollback_rate"] for r in rules["results"]}
    median = {(r["rule"], r["scenario"]): r["median_intervals"] for r in rules["results"]}
    healthy = ("none-1", "none-5", "none-20", "shared-spikes", "no-traffic")

    def pct(x: float) -> str:
        return f"{100 * x:.1f}".rstrip("0").rstrip(".") + " %"

    assert_quotes(
        "strategy/phased-rollout.md",
        [
            f"regression ({median['flagger', 'regression']:g} minutes), like the sequential",
            f"took a median of {median['argo', 'regression']:g} to roll back",
            f"so {100 * rate['argo', 'shared-spikes']:.0f} % of the healthy canaries",
            f"(false rollbacks at most {pct(max(rate['kayenta', s] for s in healthy))})",
            f"{median['kayenta', 'regression']:g} minutes to catch the regression",
            f"(at most {pct(max(rate['sequential', s] for s in healthy))}) and rolls the "
            f"regression back in a median of {median['sequential', 'regression']:g}",
            f"rolls back {100 * rate['sequential', 'canary-blips']:.0f} % of those rollouts",
        ],
    )


# -- the build's reference run ------------------------------------------------


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    """report.json of the run the build embeds (the build's cache, run if missing)."""
    tools = str(ROOT / "docs" / "site_tools")
    sys.path.insert(0, tools)
    try:
        run_dir = importlib.import_module("executed").reference_run()
        yield json.loads((run_dir / "report.json").read_text("utf-8"))
    finally:
        sys.path.remove(tools)


def _gate(report: dict[str, Any], name: str) -> dict[str, Any]:
    for stage in report["stages"]:
        for gate in stage["gates"]:
            if gate["name"] == name:
                return gate  # type: ignore[no-any-return]
    raise AssertionError(f"report.json has no gate {name!r}")


def _only_right(detail: str) -> tuple[int, int]:
    m = re.search(r"only right (\d+), \S*(?: v\d+)? ?only right (\d+)", detail)
    assert m, detail
    return int(m.group(1)), int(m.group(2))


@pytest.mark.slow
def test_reference_release_page_quotes_the_builds_run(report: dict[str, Any]) -> None:
    released = report["released_model"]
    lo, hi = released["interval"]
    n = released["n"]
    acc = released["target_test_accuracy"]
    ni = _gate(report, "release.noninferiority")
    cand_only, prod_only = _only_right(ni["detail"])
    production_acc = acc - (cand_only - prod_only) / n
    pre_acc = _gate(report, "pretrain.accuracy")
    pre_f1 = _gate(report, "pretrain.macro_f1")
    weakest = re.search(r"weakest class (\d+): F1 (\d\.\d\d)", pre_f1["detail"])
    assert weakest
    improvement = _gate(report, "finetune.improvement")
    imp_cand, imp_base = _only_right(improvement["detail"])
    ft_f1 = _gate(report, "finetune.macro_f1")
    rollout = report["rollout"]
    counts = rollout["counts"]
    assert_quotes(
        "release/reference-release.md",
        [
            f"accuracy **{acc:.3f}** on the {n} target-domain test images, 95 % Wilson "
            f"interval **[{lo:.3f}, {hi:.3f}]**",
            f"the pre-trained baseline scored {production_acc:.3f} on the same images",
            f"validation accuracy {pre_acc['value']:.3f} (Wilson "
            f"[{pre_acc['interval'][0]:.3f}, {pre_acc['interval'][1]:.3f}]) and macro-F1 "
            f"{pre_f1['value']:.3f}, 95 % BCa interval "
            f"**[{pre_f1['interval'][0]:.3f}, {pre_f1['interval'][1]:.3f}]** "
            f"(weakest class {weakest.group(1)}, F1 {float(weakest.group(2)):.2f})",
            f"improvement p = {improvement['value']:.0e}".replace("e-0", "e-") + f" ({imp_cand} "
            "images only the candidate gets right, "
            + ("none" if imp_base == 0 else str(imp_base))
            + " only the pre-trained model)",
            f"target macro-F1 {ft_f1['value']:.3f} (BCa lower bound {ft_f1['interval'][0]:.3f})",
            f"100 % in {thousands(rollout['requests_served'])} of the "
            f"{thousands(rollout['live_requests'])} live requests (canary "
            f"{counts['canary_errors']} errors in {thousands(counts['canary_requests'])} "
            f"requests, production {thousands(counts['baseline_errors'])} in "
            f"{thousands(counts['baseline_requests'])})",
        ],
    )


@pytest.mark.slow
def test_phased_rollout_page_quotes_the_builds_run(report: dict[str, Any]) -> None:
    rollout = report["rollout"]
    counts = rollout["counts"]
    steps = rollout["steps"][:-1]
    forecast = rollout["forecast"]
    first_promotion = next(e for e in rollout["events"] if e["kind"] == "promote")
    per_look = report["plan"]["phased_rollout"]["batch_size"]

    def join(values: list[str]) -> str:
        return ", ".join(values[:-1]) + " and " + values[-1]

    assert_quotes(
        "strategy/phased-rollout.md",
        [
            "with at least "
            + join([thousands(s["min_canary_requests"]) for s in steps])
            + " canary requests",
            "The bakes (" + join([f"{s['max_bake_minutes']:g}" for s in steps]) + " minutes)",
            f"production errs {100 * forecast['baseline_error']:.1f} % on target validation",
            "the steps need "
            + join([thousands(s["required_canary_requests"]) for s in forecast["steps"]])
            + " canary requests against "
            + join([thousands(s["expected_canary_requests"]) for s in forecast["steps"]])
            + " in their bakes",
            f"the candidate ({100 * counts['canary_errors'] / counts['canary_requests']:.1f} % "
            f"live error, {counts['canary_errors']} of {thousands(counts['canary_requests'])}, "
            "against the pre-trained production's "
            f"{100 * counts['baseline_errors'] / counts['baseline_requests']:.1f} %)",
            f"walks through every step in {thousands(rollout['requests_served'])} requests, "
            f"the first one taking {thousands(first_promotion['look'] * per_look)} of them",
        ],
    )
