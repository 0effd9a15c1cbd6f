"""The site's macros (mkdocs-macros-plugin): tables and boxes generated from data.

A page opts in with ``render_macros: true`` in its front matter and calls

- ``{{ verified_by("eq-adam") }}``: the tests that verify an equation;
- ``{{ coverage_table() }}``: every equation id, where it is shown, implemented, tested;
- ``{{ bench_results() }}``, ``{{ rules_results() }}``, ``{{ seeds_table("seeds.json") }}``:
  ``docs/data/*.json`` as tables (a note saying how to produce a missing file);
- ``{{ data("name.json") }}``: any ``docs/data`` file, for a table written in Jinja.

The spec index (``tests/spec_index.py``) is read once per build, and the build
**fails** when an equation anchored on a page (``{#eq-...}``) or named in a
``verified_by`` call has no implementation (a ``Spec: eq-...`` docstring line)
or no test (``@pytest.mark.spec``).
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DATA = DOCS / "data"
sys.path.insert(0, str(ROOT / "tests"))
from spec_index import KINDS, Implementation, SpecTest, implementations, spec_tests  # noqa: E402

ANCHOR = re.compile(r"^#{1,6} .*\{[^}\n]*#(eq-[a-z0-9]+(?:-[a-z0-9]+)*)[^}\n]*\}\s*$", re.MULTILINE)
VERIFIED_BY = re.compile(r"""verified_by\(\s*["'](eq-[a-z0-9-]+)["']\s*\)""")
_BOUND = re.compile(r"^(<=|>=)\s*([0-9.eE+-]+)x")


class SpecIndex:
    """Equations shown on pages, their implementations and their tests; checked complete."""

    def __init__(self, docs: Path = DOCS) -> None:
        self.shown: dict[str, list[str]] = {}
        named: dict[str, list[str]] = {}
        for path in sorted(docs.rglob("*.md")):
            if len(path.suffixes) > 1:  # a translation (page.zh.md) shows the same ids
                continue
            uri = path.relative_to(docs).as_posix()
            text = re.sub(r"^(```|~~~).*?^\1", "", path.read_text("utf-8"), flags=re.M | re.S)
            for eq in ANCHOR.findall(text):
                self.shown.setdefault(eq, []).append(uri)
            for eq in VERIFIED_BY.findall(text):
                named.setdefault(eq, []).append(uri)
        self.impls: dict[str, list[Implementation]] = implementations(ROOT / "release_spec")
        self.tests: dict[str, list[SpecTest]] = spec_tests(ROOT / "tests")
        problems = []
        for eq in sorted(set(self.shown) | set(named)):
            pages = ", ".join(sorted(set(self.shown.get(eq, []) + named.get(eq, []))))
            if eq not in self.impls:
                problems.append(f"{eq} (on {pages}) has no implementation: no 'Spec: {eq}'")
            if not self.tests.get(eq):
                problems.append(f"{eq} (on {pages}) has no test marked @pytest.mark.spec({eq!r})")
        if problems:
            raise ValueError("Spec coverage incomplete:\n  " + "\n  ".join(problems))

    def sorted_tests(self, eq: str) -> list[SpecTest]:
        """Parity first, then properties, then error handling; by file and line within."""

        def order(t: SpecTest) -> tuple[int, str, int]:
            return (KINDS.index(t.kind) if t.kind in KINDS else len(KINDS), _rel(t.path), t.line)

        return sorted(self.tests.get(eq, []), key=order)

    def verified_by(self, eq: str) -> str:
        if eq not in self.impls or not self.tests.get(eq):
            raise ValueError(f"verified_by({eq!r}): no implementation or no test")
        tests = self.sorted_tests(eq)
        impls = ", ".join(_impl_ref(i) for i in self.impls[eq])
        lines = [f'!!! success "Verified by — {len(tests)} tests for `{eq}` (generated)"', ""]
        lines += [f"    Implemented by {impls}.", ""]
        lines += [f"    - {_test_line(t)}" for t in tests]
        return "\n".join(lines) + "\n"

    def coverage_table(self, page_uri: str) -> str:
        ids = sorted(set(self.shown) | set(self.impls) | set(self.tests))
        rows, details = [], []
        for eq in ids:
            here = posixpath.dirname(page_uri) or "."
            shown = "<br>".join(
                f"[{p.removesuffix('.md')}]({posixpath.relpath(p, here)}#{eq})"
                for p in sorted(set(self.shown.get(eq, [])))
            )
            impl = "<br>".join(_impl_ref(i) for i in self.impls.get(eq, [])) or "**none**"
            tests = self.sorted_tests(eq)
            counts = {k: sum(t.kind == k for t in tests) for k in KINDS}
            summary = " · ".join(f"{k} {n}" for k, n in counts.items() if n) or "**none**"
            rows.append(f"| `{eq}` | {shown or '*not on a page*'} | {impl} | {summary} |")
            details.append(f'??? note "`{eq}`: {len(tests)} tests"\n')
            details += [f"    - {_test_line(t)}" for t in tests]
            details.append("")
        n_tests = sum(len(v) for v in self.tests.values())
        return (
            f"**{len(ids)} equation ids, {n_tests} spec-marked tests.** "
            "Generated at build time from the pages, the docstrings and the test markers.\n\n"
            "| id | shown on | implemented by | tests by kind |\n|---|---|---|---|\n"
            + "\n".join(rows)
            + "\n\n## Tests by equation\n\n"
            + "\n".join(details)
            + "\n"
        )


def _rel(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def _impl_ref(impl: Implementation) -> str:
    return f"[`{impl.module}.{impl.qualname}`][{impl.module}.{impl.qualname}]"


def _test_line(t: SpecTest) -> str:
    where = _rel(t.path)
    return f"**{t.kind}** — `{where}::{t.qualname.replace('.', '::')}` (`{where}:{t.line}`)"


def _missing(path: Path, command: str, what: str) -> str:
    return (
        f'!!! note "No {what} committed yet"\n\n'
        f"    `docs/data/{path.name}` does not exist. Run `{command}` (it writes the file), "
        "commit it, and rebuild the site.\n"
    )


# Benchmarks (docs/data/bench.json, written by `nox -s bench`).


def headroom(row: dict[str, Any]) -> float:
    """Factor by which a benchmark target is met: >= 1 met, < 1 missed.

    >>> headroom({"target": "<= 3x peer", "ratio": 1.5})
    2.0
    """
    m = _BOUND.match(str(row["target"]))
    if m is None:
        raise ValueError(f"benchmark target not understood: {row['target']!r}")
    bound, ratio = float(m.group(2)), float(row["ratio"])
    return bound / ratio if m.group(1) == "<=" else ratio / bound


def ratio_with_target(row: dict[str, Any]) -> str:
    """The measured ratio and its bound, in the target's own words.

    >>> ratio_with_target({"target": "<= 3x read pass", "ratio": 2.2489})
    '2.25× (≤ 3×)'
    >>> ratio_with_target({"target": ">= 25x faster than sklearn", "ratio": 55.95})
    '55.95× faster (≥ 25×)'
    """
    m = _BOUND.match(str(row["target"]))
    if m is None:
        raise ValueError(f"benchmark target not understood: {row['target']!r}")
    faster = " faster" if "faster" in str(row["target"]) else ""
    op = "≤" if m.group(1) == "<=" else "≥"
    return f"{float(row['ratio']):.2f}×{faster} ({op} {float(m.group(2)):g}×)"


def bench_figure(rows: list[dict[str, Any]]) -> str:
    """Horizontal bars of each target's headroom on a log axis, as inline SVG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "release-spec"  # the same SVG ids in every build
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    values = [headroom(r) for r in rows]
    with plt.rc_context({"svg.fonttype": "none", "font.size": 11, "text.color": "#546e7a"}):
        fig, ax = plt.subplots(figsize=(7.2, 0.62 * len(rows) + 1.1))
        y = range(len(rows))
        ax.barh(y, values, color=["#2e7d32" if v >= 1 else "#c62828" for v in values])
        ax.set_xscale("log")
        # One label a decade, written as a ratio; no minor labels (they overlapped).
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}×"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(1.0, color="#546e7a", linestyle="--", linewidth=1)
        # A subject can be measured against several peers: each bar names both.
        ax.set_yticks(list(y), [f"{r['subject']}\nvs {r['peer']}" for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("headroom: bound ÷ measured ratio (log scale; ≥ 1× = target met)")
        for i, v in enumerate(values):
            ax.annotate(f"{v:.2f}×", (v, i), xytext=(4, 0), textcoords="offset points", va="center")
        ax.tick_params(colors="#546e7a")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        lo, hi = min(values), max(values)
        left, right = min(0.5, lo / 1.5), max(2.0, hi * 2.5)
        ax.set_xlim(left, right)
        ax.set_xticks([t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if left <= t <= right])
        buf = io.StringIO()
        fig.savefig(
            buf, format="svg", bbox_inches="tight", transparent=True, metadata={"Date": None}
        )
        plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    return re.sub(r"\n\s*\n", "\n", svg).replace("<svg ", '<svg class="bench-figure" ', 1)


def bench_results(path: Path = DATA / "bench.json") -> str:
    if not path.is_file():
        return _missing(path, "python -m nox -s bench", "benchmark results")
    data = json.loads(path.read_text(encoding="utf-8"))
    rows, m = data["rows"], data["machine"]
    missed = [r["subject"] for r in rows if not r["met"]]
    verdict = (
        f"All {len(rows)} targets met."
        if not missed
        else f"{len(missed)} of {len(rows)} targets missed: {', '.join(missed)}."
    )
    # Four columns, so that the table fits the article's column: each pair on one cell,
    # the target in the ratio's own terms (its peer is the row's peer).
    table = [
        "| subject vs peer | medians (ms) | ratio (target) | headroom |",
        "|---|--:|--:|--:|",
    ]
    table += [
        f"| `{r['subject']}`<br>vs `{r['peer']}` | {r['subject_ms']:.3f}<br>{r['peer_ms']:.3f} "
        f"| {ratio_with_target(r)} | {headroom(r):.2f}× {'met' if r['met'] else '**missed**'} |"
        for r in rows
    ]
    return (
        f"Results of `{data.get('generated', '?')}` on {m['cpus']} CPUs, {m['platform']}, "
        f"Python {m['python']}, NumPy {m['numpy']}; medians of {data['repeats']} runs. "
        f"{verdict}\n\n" + "\n".join(table) + f"\n\n<figure>\n{bench_figure(rows)}\n"
        "<figcaption>Headroom per target: the factor by which the measured ratio beats "
        "its bound (below 1×: missed).</figcaption>\n</figure>\n"
    )


# Rollback rules compared (docs/data/rules.json, `release-spec simulate --rules all --json`).

RULE_NAMES = {
    "argo": "Argo Rollouts",
    "flagger": "Flagger",
    "kayenta": "Kayenta",
    "sequential": "sequential",
}


def rules_cell(result: dict[str, Any]) -> str:
    """``rolled back % · median intervals`` (a dash when nothing was rolled back).

    >>> rules_cell({"rollback_rate": 0.0186, "median_intervals": 67.0})
    '1.9 % · 67'
    >>> rules_cell({"rollback_rate": 0.0, "median_intervals": None})
    '0.0 % · –'
    """
    median = result["median_intervals"]
    return f"{100 * result['rollback_rate']:.1f} % · {'–' if median is None else f'{median:g}'}"


def rules_results(path: Path = DATA / "rules.json") -> str:
    if not path.is_file():
        command = "release-spec simulate --rules all --json docs/data/rules.json"
        return _missing(path, command, "rule comparison")
    data = json.loads(path.read_text(encoding="utf-8"))
    s, rules = data["settings"], [r["name"] for r in data["rules"]]
    results = {(r["rule"], r["scenario"]): r for r in data["results"]}
    table = [
        "| scenario | " + " | ".join(RULE_NAMES.get(r, r) for r in rules) + " |",
        "|---|" + "--:|" * len(rules),
    ]
    for sc in data["scenarios"]:
        label = sc["label"] + (" — **a rollback is right**" if sc["regression"] else "")
        table.append(
            f"| {label} | {' | '.join(rules_cell(results[(r, sc['name'])]) for r in rules)} |"
        )
    settings = "\n".join(f"- {r['label']}." for r in data["rules"])
    return (
        f"`{data['generated']}`: {data['runs']:,} simulated rollouts per scenario (seed "
        f"{data['seed']}), each {s['intervals']} intervals of {s['requests_per_interval']:,} "
        f"requests with a canary share of {s['canary_fraction']:g} (about "
        f"{s['canary_fraction'] * s['requests_per_interval']:,.0f} canary requests an "
        f"interval); every rule sees the same draws. Settings:\n\n{settings}\n\n"
        "Each cell: rollouts rolled back · median intervals until the rollback (over the "
        "rollouts rolled back). Outside the regression row every rollback is a false one.\n\n"
        + "\n".join(table)
        + "\n"
    )


# The reference release's seed sweep (docs/data/seeds.json, written by `nox -s seeds`).


def _seed_row(r: dict[str, Any]) -> str:
    acc = "–"
    if r["accuracy"] is not None:
        lo, hi = r["interval"]
        acc = f"{r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"
    e = r["exposure"]
    exposure = (
        "–" if e is None else f"{e['canary_requests']:,} (step {e['step']}, {e['share']:g} %)"
    )
    # One gate a line: two gate names side by side made the table wider than the column.
    failed = "<br>".join(f"`{g}`" for g in r["failed_gates"]) or "–"
    return (
        f"| {r['seed']} | {r['scenario']} | {r['outcome']} ({r['exit_code']}) "
        f"| {acc} | {failed} | {exposure} |"
    )


def seeds_table(name: str = "seeds.json", data_dir: Path = DATA) -> str:
    path = data_dir / name
    if not path.is_file():
        return _missing(path, "python -m nox -s seeds", "seed sweep")
    data = json.loads(path.read_text(encoding="utf-8"))
    n = len(data["seeds"])
    tally = "; ".join(
        f"`{s}` ended `{want}` on **{data['summary'][s]} of {n}** seeds"
        for s, want in data["expected"].items()
    )
    overrides = ", ".join(
        f"`{table}.{key} = {value}`"
        for table, values in data["plan"]["overrides"].items()
        for key, value in values.items()
    )
    problems = data["problems"]
    verdict = (
        "Every run met the claim."
        if not problems
        else "**Claims that failed**: " + "; ".join(problems) + "."
    )
    note = f" ({data['note']})" if data.get("note") else ""
    table = [
        "| seed | scenario | outcome (exit) | accuracy [95 % Wilson] | failed gates | canary "
        "requests |",
        "|--:|---|---|---|---|--:|",
        *(_seed_row(r) for r in data["runs"]),
    ]
    return (
        f"`{data['generated']}` ({data['seconds'] / 60:.0f} min{note}), seeds "
        f"{data['seeds'][0]}–{data['seeds'][-1]}: {tally}. The lowest target-domain test "
        f"accuracy of a released model was **{data['min_default_accuracy']:.3f}** "
        f"(claim: ≥ {data['accuracy_claim']:g}). {verdict} Plan: the embedded default with "
        f"{overrides or 'no change'} ({data['plan']['why']}). Canary requests: those the "
        "candidate served before the rollout's decision, at the step and share where it "
        "was taken.\n\n" + "\n".join(table) + "\n"
    )


def define_env(env: Any) -> None:
    """Register the macros (called by mkdocs-macros-plugin once per build)."""
    index = SpecIndex()
    env.macro(index.verified_by, "verified_by")
    env.macro(lambda: index.coverage_table(env.page.file.src_uri), "coverage_table")
    env.macro(bench_results)
    env.macro(rules_results)
    env.macro(seeds_table)
    env.macro(lambda name: json.loads((DATA / name).read_text(encoding="utf-8")), "data")
