"""The release report: report.json, report.md and the PNG figures.

``report.json`` (``schema_version`` 1) is a
`release_spec.workbench.report_schema.Report` written by `write_report`; its
JSON Schema is published with the site (``release/report-schema.json``). It
holds, at the top level:

* ``outcome``: ``released`` | ``unchanged`` (the fine-tuned candidate has
  production's weights: nothing registered or rolled out) | ``stopped`` (an
  offline gate failed) | ``held`` (the rollout ended without evidence either
  way: the live traffic ran out before non-inferiority was shown) |
  ``rolled_back`` (the rollout found evidence of harm); see `OUTCOMES`;
* ``scenario``, ``seed``, ``started`` (ISO 8601 UTC), ``seconds`` (wall time);
* ``stages``: one object per stage run, in order, each with ``name``,
  ``state``, ``history`` (states passed through), ``gates`` (the final
  attempt's gates: ``name``, ``passed``, ``value``, ``threshold``,
  ``interval`` as ``[lower, upper]`` or null, ``detail``, ``split`` (the
  labelled split the gate read, e.g. ``source.val``, or null); a non-finite
  ``value``, such as an infinite deviation, is written as null), ``attempts``
  (every attempt: ``number``, ``reason``, ``hyperparameters``, ``passed``,
  ``gates``, ``figures``, ``diagnosis``, ``seconds``), ``skipped`` (release
  steps not run) and ``notes``;
* ``failed_gates``: names of the gates that failed in the final attempts;
* ``production``: ``version`` and ``sha256`` in production after the run,
  ``before`` (production when the run started, null on a new store),
  ``baseline_promoted`` and ``candidate_promoted``;
* ``candidate``: the registered candidate's ``version`` and ``sha256`` and
  ``identical_to_production`` (true for ``unchanged``: then the version and
  sha256 are production's, nothing new was registered), or null;
* ``released_model``: when released, its ``target_test_accuracy`` with a
  Wilson ``interval`` at ``confidence`` on ``n`` test images; else null;
* ``soak`` (null when the soak did not run): ``seconds`` (elapsed),
  ``callers``, ``predictions``, ``calls``, ``stopped_by`` (``time`` |
  ``count``), ``errors``, ``first_error``, ``non_finite``,
  ``rss_slope_mb_per_min``, ``latency_drift`` (last window's median
  candidate/reference latency ratio over the first's), ``raw_drift`` and
  ``windows`` (per window: ``index``, ``start_s``, ``end_s``, ``calls``,
  ``p50_ms``, ``p99_ms``, ``reference_p50_ms``, ``ratio``, ``rss_mb``);
* ``rollout`` (null when the release stage did not reach it): ``status``
  (``completed`` | ``aborted``), ``candidate``, ``production``, ``alpha``,
  ``margin``, ``steps`` (``share``, ``min_canary_requests``,
  ``max_bake_minutes``), ``forecast`` (the planner: ``baseline_error``,
  ``regression`` and per analysed step ``step``, ``share``,
  ``expected_canary_requests``, ``required_canary_requests``,
  ``min_canary_requests``, ``warning``), ``live_requests``, ``live_class_counts``,
  ``requests_served``, final ``counts`` (``canary_requests``,
  ``canary_errors``, ``baseline_requests``, ``baseline_errors``), final
  ``p_value`` (always-valid) and ``upper_bound`` (on canary minus baseline
  error rate), ``verdict`` (``completed`` | ``harm`` | ``undecided``, see
  `release_spec.workbench.release.rollout_verdict`), ``rolled_back`` (on harm) and
  ``held`` (undecided): each ``step``, ``share``, ``reason`` and
  ``canary_requests`` (served before the decision), or null,
  ``events`` (``kind``, ``look``, ``minutes``, ``step``, ``share_before``,
  ``share_after``, ``reason``, ``p_value``, ``upper_bound``, ``counts``) and
  ``timeline`` (per look: ``look``, ``minutes``, ``share``, ``p_value``,
  ``upper_bound``);
* ``monitoring`` (null without a rollout): the ``model`` monitored,
  ``thresholds``, ``drift`` per feature summary (``psi``, ``ks_statistic``,
  ``ks_p_value``, ``ks_p_adjusted``, ``histogram`` with ``edges``,
  ``reference`` and ``live`` fractions), ``recall`` (one row per window and
  class) and ``alerts`` (``kind``, ``severity``, ``subject``, ``value``,
  ``threshold``, ``message``);
* ``data`` (sha256 ``hashes`` and ``sizes`` of every split), ``plan`` (the
  plan used), ``versions`` and ``figures`` (file names, next to the report).

Every file is written with `release_spec.store.atomic_write` (temporary file, fsync,
``os.replace``, fsync of the directory).
Matplotlib is used with the Agg backend and imported only when drawing.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from release_spec.store import atomic_write
from release_spec.strategy.stages import TrainingCurves
from release_spec.workbench.gate_rules import gate_rule
from release_spec.workbench.report_schema import Report, to_json

__all__ = [
    "OUTCOMES",
    "outcome_summary",
    "plot_confusion_matrices",
    "plot_drift",
    "plot_gate_summary",
    "plot_rollout",
    "plot_training_curves",
    "render_markdown",
    "write_report",
]


def _figure_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(curves: Mapping[str, Sequence[TrainingCurves]]) -> bytes:
    """Training and validation accuracy per epoch: a panel per stage, a line pair per attempt."""
    plt = _pyplot()
    stages = [s for s, c in curves.items() if c]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(5.2 * max(1, len(stages)), 3.6))
    axes = np.atleast_1d(axes)
    for ax, stage in zip(axes, stages, strict=False):
        for i, c in enumerate(curves[stage], start=1):
            epochs = np.arange(1, len(c.train_accuracy) + 1)
            (line,) = ax.plot(epochs, c.train_accuracy, label=f"attempt {i} train")
            ax.plot(epochs, c.val_accuracy, "--", color=line.get_color(), label=f"attempt {i} val")
        ax.set_title(stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _figure_bytes(fig)


def plot_confusion_matrices(matrices: Mapping[str, npt.NDArray[np.int64]]) -> bytes:
    """One heat map per model (rows: true class, columns: predicted class)."""
    plt = _pyplot()
    n = max(1, len(matrices))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0))
    axes = np.atleast_1d(axes)
    for ax, (name, cm) in zip(axes, matrices.items(), strict=False):
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            if v:
                colour = "white" if v > cm.max() / 2 else "black"
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=colour)
        ax.set_title(f"{name}: target test")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(cm.shape[1]))
        ax.set_yticks(range(cm.shape[0]))
    return _figure_bytes(fig)


def plot_gate_summary(report: Mapping[str, Any]) -> bytes:
    """Every final gate of every stage as a pass/fail row."""
    plt = _pyplot()
    rows = [(st["name"], g) for st in report["stages"] for g in st["gates"]]
    fig, ax = plt.subplots(figsize=(9.0, 0.36 * max(3, len(rows)) + 1.2))
    # Each bar is the gate's headroom: how far the compared figure lies from its
    # threshold, on the passing side (right) or the failing side (left), relative
    # to the threshold and clipped to +-1; the text gives the figure and the rule.
    for i, (_, g) in enumerate(rows):
        rule = gate_rule(g)
        colour = "#2e7d32" if g["passed"] else "#c62828"
        ax.barh(i, rule.headroom, color=colour, height=0.6)
        ax.text(
            1.04,
            i,
            f"{'pass' if g['passed'] else 'FAIL'}: {rule.text}",
            va="center",
            fontsize=9,
            clip_on=False,
        )
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([g["name"] for _, g in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.tick_params(axis="x", labelsize=9)
    ax.set_xlabel(
        "headroom: (figure − threshold) / |threshold| on the passing side, clipped to ±1",
        fontsize=9,
    )
    ax.set_title(f"gates: outcome {report['outcome']}", fontsize=10)
    fig.subplots_adjust(left=0.34, right=0.62)
    return _figure_bytes(fig)


def plot_rollout(rollout: Mapping[str, Any]) -> bytes:
    """Look by look: the candidate's traffic share, the judge's always-valid p-value, and
    the confidence-sequence upper bound on the error-rate difference against the margin."""
    plt = _pyplot()
    t = rollout["timeline"]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(7.5, 7.0), sharex=True)
    # Each look's share held over the batch that ended at it; then the outcome.
    end = 100.0 if rollout["status"] == "completed" else 0.0
    minutes = [0.0, *t["minutes"], t["minutes"][-1] if t["minutes"] else 0.0]
    share = [t["share"][0] if t["share"] else 0.0, *t["share"], end]
    a1.step(minutes, share, where="pre", color="#3949ab")
    a1.set_ylabel("traffic on the\ncandidate (%)")
    a1.set_ylim(-3, 103)
    a1.set_title(f"rollout of {rollout['candidate']}: {rollout['status']}")
    # A look's p-value and bound hold until the next look: steps, not slopes.
    a2.plot(
        t["minutes"],
        t["p_value"],
        color="#c62828",
        drawstyle="steps-post",
        label="always-valid p-value",
    )
    a2.axhline(rollout["alpha"], ls="--", color="0.5", label=f"alpha = {rollout['alpha']:g}")
    a2.set_yscale("log")
    a2.set_ylabel("judge p-value")
    a2.legend(fontsize=8)
    ub = np.asarray(t["upper_bound"], dtype=np.float64)
    a3.plot(
        t["minutes"],
        ub,
        color="#2e7d32",
        drawstyle="steps-post",
        label="upper bound, canary − baseline error",
    )
    a3.axhline(rollout["margin"], ls="--", color="0.5", label=f"margin = {rollout['margin']:g}")
    finite = ub[np.isfinite(ub)]
    if finite.size:
        # The whole bound and the margin in view, whatever their size.
        lo = min(float(finite.min()), 0.0, rollout["margin"])
        hi = max(float(finite.max()), rollout["margin"])
        pad = 0.05 * (hi - lo) or 0.01
        a3.set_ylim(lo - pad, hi + pad)
    a3.set_ylabel("error-rate\ndifference")
    a3.set_xlabel("minutes of live traffic")
    a3.legend(fontsize=8)
    for ax in (a1, a2, a3):
        ax.grid(alpha=0.3)
    rb = rollout.get("rolled_back")
    if rb:
        x = t["minutes"][-1] if t["minutes"] else 0.0
        for ax in (a1, a2, a3):
            ax.axvline(x, color="#c62828", lw=0.8)
        a1.annotate(
            f"rolled back at step {rb['step']} ({rb['share']:g} %)",
            (x, 50),
            fontsize=8,
            ha="right",
        )
    return _figure_bytes(fig)


def plot_drift(monitoring: Mapping[str, Any]) -> bytes:
    """Reference vs live histogram of each feature summary, titled with its PSI and KS distance."""
    plt = _pyplot()
    drift = monitoring["drift"]
    fig, axes = plt.subplots(1, max(1, len(drift)), figsize=(3.0 * max(1, len(drift)), 2.8))
    axes = np.atleast_1d(axes)
    th = monitoring["thresholds"]
    for ax, d in zip(axes, drift, strict=False):
        h = d["histogram"]
        edges = np.asarray(h["edges"])
        centre, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        ax.bar(centre, h["reference"], width, alpha=0.5, label="training")
        ax.bar(centre, h["live"], width, alpha=0.5, label="live")
        psi = (
            "alert"
            if d["psi"] >= th["psi_alert"]
            else "warning"
            if d["psi"] >= th["psi_warning"]
            else "ok"
        )
        # The KS rule of release_spec.strategy.monitoring: significant and large enough.
        ks_alert = (
            d["ks_p_adjusted"] <= th["ks_alpha"] and d["ks_statistic"] >= th["ks_min_statistic"]
        )
        worst = "alert" if ks_alert or psi == "alert" else psi
        ax.set_title(
            f"{d['feature']}: {worst}\nPSI {d['psi']:.3f} ({psi}), "
            f"KS {d['ks_statistic']:.3f} ({'alert' if ks_alert else 'ok'})",
            fontsize=9,
        )
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    return _figure_bytes(fig)


def _rollout_markdown(r: Mapping[str, Any]) -> list[str]:
    c = r["counts"]
    lines = [
        "",
        "## Phased rollout",
        "",
        f"Candidate `{r['candidate']}` against production `{r['production']}` on "
        f"{r['live_requests']} live requests ({r['requests_served']} served before the end): "
        f"**{r['status']}**. Steps "
        + " → ".join(f"{s['share']:g} %" for s in r["steps"])
        + f"; anytime-valid judge at alpha {r['alpha']:g}, promotion margin {r['margin']:g}.",
        "",
        f"Final counts: canary {c['canary_errors']}/{c['canary_requests']} errors, baseline "
        f"{c['baseline_errors']}/{c['baseline_requests']}; always-valid p-value "
        f"{r['p_value']:.3g}; upper bound on the error-rate difference {_fmt(r['upper_bound'])}.",
    ]
    fc = r.get("forecast")
    if fc:
        lines += [
            "",
            f"Planner: to detect {fc['baseline_error']:.3f} → "
            f"{fc['baseline_error'] + fc['regression']:.3f} with 80 % power, a fixed-horizon "
            "test needs "
            + "; ".join(
                f"{f['required_canary_requests']} canary requests at {f['share']:g} % "
                f"(the bake brings about {f['expected_canary_requests']:.0f})"
                for f in fc["steps"]
            )
            + ".",
        ]
        lines += [f"- Warning: {f['warning']}" for f in fc["steps"] if f["warning"]]
    if r["rolled_back"]:
        rb = r["rolled_back"]
        lines += [
            "",
            f"**Rolled back at step {rb['step']} ({rb['share']:g} % canary)**: {rb['reason']}. "
            "Production was not changed.",
        ]
    if r.get("held"):
        h = r["held"]
        lines += [
            "",
            f"**Held at step {h['step']} ({h['share']:g} % canary)**, then taken back: "
            f"{h['reason']}. No evidence of harm, but the canary was not shown non-inferior "
            "either: more live traffic (or a larger first share) would decide. Production was "
            "not changed.",
        ]
    lines += [
        "",
        "| look | minutes | step | share | event | p-value | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in r["events"]:
        after = "production" if e["kind"] == "complete" else f"{e['share_after']:g} %"
        lines.append(
            f"| {e['look']} | {e['minutes']:.1f} | {e['step']} | {e['share_before']:g} % → "
            f"{after} | {e['kind']} | {e['p_value']:.3g} | {e['reason']} |"
        )
    return lines


def _monitoring_markdown(m: Mapping[str, Any]) -> list[str]:
    lines = [
        "",
        "## Monitoring",
        "",
        f"Model `{m['model']}` on the live pool; reference: {m['reference']}.",
        "",
        "| feature summary | PSI | KS distance | KS p (Holm) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {d['feature']} | {d['psi']:.4f} | {d['ks_statistic']:.4f} | {d['ks_p_adjusted']:.3g} |"
        for d in m["drift"]
    ]
    th = m["thresholds"]
    lines += [
        "",
        f"A feature alerts on PSI at or above {th['psi_alert']:g} (a warning from "
        f"{th['psi_warning']:g}), or on a KS test whose Holm-adjusted p is at most "
        f"{th['ks_alpha']:g} *and* whose distance is at least {th['ks_min_statistic']:g}: "
        "with thousands of live requests even a negligible shift has a tiny p-value, so "
        "the distance decides.",
        "",
        f"Alerts: {len(m['alerts'])}",
        "",
    ]
    lines += [f"- **{a['severity']}** ({a['kind']}): {a['message']}" for a in m["alerts"]]
    return lines


def _soak_markdown(s: Mapping[str, Any]) -> list[str]:
    """The soak's figures: budget used, errors, NaNs, memory slope, latency per window."""
    first = f" (first: {s['first_error']})" if s["first_error"] else ""
    lines = [
        "",
        "## Soak",
        "",
        f"{_fmt(s['seconds'])} s (stopped by {s['stopped_by']}), {s['callers']} concurrent "
        f"callers, {s['predictions']} predictions in {s['calls']} calls; {s['errors']} "
        f"exceptions{first}; {s['non_finite']} non-finite output values.",
        "",
        f"Resident memory slope {_fmt(s['rss_slope_mb_per_min'])} MB/min (least squares over "
        f"the windows). Latency drift {_fmt(s['latency_drift'])}: the median ratio of the "
        "candidate's latency to the reference workload's (production's model, timed by the same "
        "caller on the same batch) in the last window over the first; the raw median latency "
        f"changed by a factor {_fmt(s['raw_drift'])} (reported, not judged).",
        "",
        "| window | seconds | calls | p50 ms | p99 ms | reference p50 ms | ratio | RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {w['index']} | {w['start_s']:.1f}–{w['end_s']:.1f} | {w['calls']} "
        f"| {_fmt(w['p50_ms'])} | {_fmt(w['p99_ms'])} | {_fmt(w['reference_p50_ms'])} "
        f"| {_fmt(w['ratio'])} | {_fmt(w['rss_mb'])} |"
        for w in s["windows"]
    ]
    return lines


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        # A count stored as a float (soak_size 10000.0) reads as an integer, not 1e+04.
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def _interval(iv: Sequence[float] | None) -> str:
    return "–" if iv is None else f"[{iv[0]:.4f}, {iv[1]:.4f}]"


#: What each outcome means, in the words of report.md and the command line's summary.
OUTCOMES = {
    "released": "every gate and every rollout step passed; the candidate is production",
    "unchanged": "no change: the fine-tuned candidate has the same weights as production, "
    "so nothing was registered or rolled out",
    "stopped": "stopped by an offline gate before any live traffic; production unchanged",
    "held": "the rollout ended before the candidate was shown non-inferior (the live "
    "traffic ran out, or a bake ended undecided); no evidence of harm either; the canary "
    "was taken back and production is unchanged",
    "rolled_back": "rolled back on evidence of harm during the rollout; production unchanged",
}


def outcome_summary(report: Mapping[str, Any]) -> str:
    """One sentence saying what a run's outcome means, with the step and exposure if any.

    Examples:
        >>> outcome_summary({"outcome": "stopped"})
        'stopped by an offline gate before any live traffic; production unchanged'
        >>> end = {"step": 0, "share": 1.0, "canary_requests": 11}
        >>> outcome_summary({"outcome": "rolled_back", "rollout": {"rolled_back": end}})[-47:]
        'at step 0 (1 % canary) after 11 canary requests'
    """
    text = OUTCOMES[report["outcome"]]
    rollout = report.get("rollout") or {}
    end = rollout.get("rolled_back") or rollout.get("held")
    if end:
        text += (
            f", at step {end['step']} ({end['share']:g} % canary) after "
            f"{end['canary_requests']} canary requests"
        )
    return text


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human-readable report (figures linked by relative path)."""
    prod = report["production"]
    lines = [
        f"# Release report: {report['outcome']}",
        "",
        f"**Outcome**: {outcome_summary(report)}.",
        "",
        f"Scenario `{report['scenario']}`, seed {report['seed']}, started {report['started']}, "
        f"{report['seconds']:.1f} s.",
        "",
        f"**Production**: `{prod['version'] or 'none'}` (sha256 `{prod['sha256'] or '-'}`); "
        f"before the run: `{prod['before'] or 'none (new store)'}`; candidate promoted: "
        f"{'yes' if prod['candidate_promoted'] else 'no'}.",
        "",
    ]
    rm = report.get("released_model")
    if rm:
        lines += [
            f"**Released model** `{rm['version']}`: accuracy on the target-domain test set "
            f"{rm['target_test_accuracy']:.4f}, {rm['confidence']:.0%} Wilson interval "
            f"{_interval(rm['interval'])} (n = {rm['n']}).",
            "",
        ]
    if report["failed_gates"]:
        lines += ["**Failed gates**: " + ", ".join(f"`{g}`" for g in report["failed_gates"]), ""]
    lines += ["## Stages", "", "| stage | state | attempts |", "|---|---|---|"]
    lines += [
        f"| {st['name']} | {st['state']} | {len(st['attempts'])} |" for st in report["stages"]
    ]
    for st in report["stages"]:
        lines += [
            "",
            f"### {st['name']}: {st['state']}",
            "",
            "| gate | result | value | passes when | interval | split read |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{g['name']}` | {'pass' if g['passed'] else '**FAIL**'} | {_fmt(g['value'])} "
            f"| {gate_rule(g).rule} | {_interval(g['interval'])} "
            f"| {g.get('split') or '–'} |"
            for g in st["gates"]
        ]
        lines.append("")
        lines += [f"- `{g['name']}`: {g['detail']}" for g in st["gates"]]
        if len(st["attempts"]) > 1 or st["name"] != "release":
            lines += ["", "Attempts:", ""]
            for a in st["attempts"]:
                hp = a["hyperparameters"] or {}
                hps = ", ".join(f"{k} {v}" for k, v in hp.items())
                verdict = "passed" if a["passed"] else "failed"
                diag = a["diagnosis"]
                lines.append(
                    f"{a['number']}. {verdict} in {a['seconds']:.1f} s — {a['reason']}. "
                    f"Hyperparameters: {hps}."
                    + (f" Diagnosis: {diag['cause']} ({diag['evidence']})." if diag else "")
                )
        if st["skipped"]:
            lines += ["", "Skipped steps: " + ", ".join(st["skipped"])]
        if st["notes"]:
            lines += ["", *[f"Note: {n}" for n in st["notes"]]]
    if report.get("soak"):
        lines += _soak_markdown(report["soak"])
    if report.get("rollout"):
        lines += _rollout_markdown(report["rollout"])
    if report.get("monitoring"):
        lines += _monitoring_markdown(report["monitoring"])
    lines += ["", "## Figures", ""]
    lines += [f"![{name[:-4].replace('_', ' ')}]({name})" for name in report["figures"]]
    return "\n".join(lines) + "\n"


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = data[key]
    assert isinstance(section, Mapping)
    return section


def write_report(
    report: Report,
    out_dir: Path,
    *,
    curves: Mapping[str, Sequence[TrainingCurves]],
    matrices: Mapping[str, npt.NDArray[np.int64]],
) -> Report:
    """Write report.json, report.md and the figures into ``out_dir``; return the report written.

    This function owns the figure list: the training curves, confusion
    matrices and gate summary always, the rollout timeline and the drift
    histograms when the report has a rollout and monitoring. The report
    returned is ``report`` with ``figures`` naming them, as written.
    The figures and report.md are drawn from the report's values as they are
    (an infinite deviation reads ``inf``); report.json writes a non-finite
    float as null.
    """
    drawers: dict[str, Callable[[Mapping[str, Any]], bytes]] = {
        "training_curves.png": lambda _: plot_training_curves(curves),
        "confusion_matrices.png": lambda _: plot_confusion_matrices(matrices),
        "gate_summary.png": plot_gate_summary,
    }
    if report.rollout is not None:
        drawers["rollout.png"] = lambda data: plot_rollout(_section(data, "rollout"))
    if report.monitoring is not None:
        drawers["drift.png"] = lambda data: plot_drift(_section(data, "monitoring"))
    report = replace(report, figures=tuple(drawers))
    data = to_json(report, null_non_finite=False)
    assert isinstance(data, dict)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n"
    files = {"report.json": text.encode(), "report.md": render_markdown(data).encode()}
    files.update({name: draw(data) for name, draw in drawers.items()})
    for name, content in files.items():
        atomic_write(out_dir / name, content)
    return report
