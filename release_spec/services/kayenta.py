"""Kayenta remote judge: a ``CanaryJudgeResult`` from a ``metricSetPairList``.

Pairing convention. A metric's *kind* is the last word of its name, case-insensitive,
after a space, ``_``, ``-``, ``.`` or ``:`` (or the whole name): ``requests``,
``errors`` or ``slow`` (e.g. ``checkout requests``, ``checkout_errors``,
``checkout:slow``). The words before it and the pair's ``tags`` form the *family*;
a family's ``errors`` (and optional ``slow``) series are judged against its
``requests`` series. Each series' values are per-interval counts (e.g. Prometheus
``increase(...[step])``); the i-th values of every series of a family form look i, and
a missing value (``null``/NaN) counts as 0.

Each family is judged by a `release_spec.strategy.judge.CanaryJudge`, with ``alpha`` split
equally over the families. Settings come from
``canaryConfig.judge.judgeConfigurations`` (``alpha``, ``margin``, ``slow_margin``,
``min_canary_requests``), defaulting to the `release_spec.strategy.judge.JudgeConfig` defaults
and ``slow_margin = margin``.

Result. ``errors``/``slow`` metrics are classified ``High`` when their test rejects,
else ``Pass``; ``requests`` metrics are ``Pass`` and muted (they are denominators, not
judgements); a metric of no known kind, or a kind without its family's requests, is
``Nodata`` and does not score. A group (and the run) scores 0 when any of its judged
metrics is ``High``, 100 when the judge promotes all its families, and the marginal
threshold otherwise ("continue": not yet shown within the margin), so Kayenta reads
reject as Fail, promote as Pass and continue as Marginal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from release_spec.services.rollouts import InvalidError
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig, Verdict

__all__ = ["JUDGE_NAME", "judge_metric_set_pairs", "metric_kind"]

JUDGE_NAME = "release-spec-sequential-judge"
_KIND = re.compile(r"^(?:(?P<family>.*?)[\s_\-.:]+)?(?P<kind>requests|errors|slow)$", re.IGNORECASE)


def metric_kind(name: str) -> tuple[str, str] | None:
    """``(family, kind)`` of a metric name, or None when it follows no convention.

    Examples:
        >>> metric_kind("checkout_errors"), metric_kind("Requests"), metric_kind("latency")
        (('checkout', 'errors'), ('', 'requests'), None)
    """
    m = _KIND.match(name.strip())
    if m is None:
        return None
    return (m.group("family") or "").strip(), m.group("kind").lower()


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object (absent: empty), else InvalidError naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidError(f"{where} must be an object")
    return value


def _series(pair: Mapping[str, Any], arm: str, where: str) -> list[int]:
    values = _object(pair.get("values"), f"{where}.values").get(arm)
    if not isinstance(values, list):
        raise InvalidError(f"{where}.values.{arm} must be a list of counts")
    out = []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(0)
        # At most 2**53, as a look's counts: past it floats no longer tell n from n + 1.
        elif isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 2**53:
            out.append(round(v))
        else:
            raise InvalidError(
                f"{where}.values.{arm}[{i}] must be a count in [0, 2**53], got {v!r}"
            )
    return out


def _config(body: Mapping[str, Any], families: int) -> JudgeConfig:
    canary_config = _object(body.get("canaryConfig"), "canaryConfig")
    judge = _object(canary_config.get("judge"), "canaryConfig.judge")
    raw = dict(_object(judge.get("judgeConfigurations"), "canaryConfig.judge.judgeConfigurations"))
    try:
        alpha = float(raw.get("alpha", JudgeConfig.alpha))
        margin = float(raw.get("margin", JudgeConfig.margin))
        slow = float(raw.get("slow_margin", margin))
        return JudgeConfig(
            alpha=alpha / max(1, families),
            margin=margin,
            slow_margin=slow,
            min_canary_requests=int(raw.get("min_canary_requests", 0)),
        )
    except (TypeError, ValueError) as e:
        raise InvalidError(f"canaryConfig.judge.judgeConfigurations: {e}") from None


def _judge_family(cfg: JudgeConfig, series: dict[str, dict[str, list[int]]]) -> Verdict:
    if "slow" not in series:
        cfg = JudgeConfig(cfg.alpha, cfg.margin, None, cfg.min_canary_requests)
    judge = CanaryJudge(cfg)
    looks = max(len(s[arm]) for s in series.values() for arm in ("control", "experiment"))
    verdict = judge.verdict

    def at(kind: str, arm: str, i: int) -> int:
        values = series.get(kind, {}).get(arm, [])
        return values[i] if i < len(values) else 0

    for i in range(looks):
        arms = []
        for arm in ("experiment", "control"):
            n = at("requests", arm, i)
            e, s = at("errors", arm, i), at("slow", arm, i)
            if e > n or s > n:
                raise InvalidError(
                    f"metricSetPairList: at step {i} the {arm} has more errors/slow ({e}/{s}) "
                    f"than requests ({n})"
                )
            arms.append(ArmCounts(n, e, s))
        verdict = judge.update(arms[0], arms[1])
    return verdict


def judge_metric_set_pairs(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CanaryJudgeResult`` for a Kayenta remote-judge request body.

    Raises:
        InvalidError: a missing or malformed field, named.

    Examples:
        >>> pair = lambda name, c, e: {"name": name, "id": name, "tags": {},
        ...     "values": {"control": c, "experiment": e}}
        >>> result = judge_metric_set_pairs({
        ...     "canaryConfig": {"metrics": [{"name": "requests", "groups": ["http"]},
        ...                                  {"name": "errors", "groups": ["http"]}]},
        ...     "scoreThresholds": {"pass": 95, "marginal": 75},
        ...     "metricSetPairList": [pair("requests", [9000, 9000], [1000, 1000]),
        ...                           pair("errors", [90, 90], [100, 110])]})
        >>> result["score"]["classification"], [r["classification"] for r in result["results"]]
        ('Fail', ['Pass', 'High'])
    """
    pairs = body.get("metricSetPairList")
    if not isinstance(pairs, list):
        raise InvalidError("metricSetPairList must be a list")
    thresholds = _object(body.get("scoreThresholds"), "scoreThresholds")
    try:
        pass_at = float(thresholds.get("pass", 95.0))
        marginal_at = float(thresholds.get("marginal", 75.0))
    except (TypeError, ValueError):
        raise InvalidError("scoreThresholds.pass and .marginal must be numbers") from None
    if not (math.isfinite(pass_at) and math.isfinite(marginal_at)):
        raise InvalidError("scoreThresholds.pass and .marginal must be finite numbers")
    groups_of: dict[str, list[str]] = {}
    metrics = _object(body.get("canaryConfig"), "canaryConfig").get("metrics") or []
    if not isinstance(metrics, list):
        raise InvalidError("canaryConfig.metrics must be a list")
    for metric in metrics:
        if isinstance(metric, Mapping) and isinstance(metric.get("name"), str):
            groups = metric.get("groups") or []
            if not isinstance(groups, list):
                raise InvalidError(f"canaryConfig.metrics: groups of {metric['name']!r} not a list")
            groups_of[metric["name"]] = [str(g) for g in groups]

    Key = tuple[str, tuple[tuple[str, str], ...]]
    families: dict[Key, dict[str, tuple[int, dict[str, list[int]]]]] = {}
    kinds: list[tuple[str, str] | None] = []
    keys: list[Key | None] = []
    for i, pair in enumerate(pairs):
        where = f"metricSetPairList[{i}]"
        if not isinstance(pair, Mapping) or not isinstance(pair.get("name"), str):
            raise InvalidError(f"{where}.name must be a string")
        tags = pair.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise InvalidError(f"{where}.tags must be an object")
        kind = metric_kind(pair["name"])
        kinds.append(kind)
        if kind is None:
            keys.append(None)
            continue
        key = (kind[0], tuple(sorted((str(k), str(v)) for k, v in tags.items())))
        keys.append(key)
        series = {arm: _series(pair, arm, where) for arm in ("control", "experiment")}
        fam = families.setdefault(key, {})
        if kind[1] in fam:
            raise InvalidError(f"{where}: a second {kind[1]!r} series for the same name and tags")
        fam[kind[1]] = (i, series)

    judged = {k: f for k, f in families.items() if "requests" in f}
    cfg = _config(body, len(judged))
    verdicts = {
        key: _judge_family(cfg, {kind: s for kind, (_, s) in fam.items()})
        for key, fam in judged.items()
    }

    results = []
    group_outcomes: dict[str, list[str]] = {}
    for i, (pair, kind, family) in enumerate(zip(pairs, kinds, keys, strict=True)):
        tags = pair.get("tags") or {}
        verdict = None if family is None else verdicts.get(family)
        muted = False
        if kind is None:
            cls, why = "Nodata", "not judged: the name must end in requests, errors or slow"
        elif verdict is None:
            cls, why = "Nodata", "not judged: no requests series with the same name prefix and tags"
        elif kind[1] == "requests":
            cls, why, muted = "Pass", "request counts (the denominator of errors and slow)", True
        else:
            mv = next((m for m in verdict.metrics if m.name == kind[1]), None)
            if mv is None:
                cls, why = "Nodata", "not judged"
            else:
                cls = "High" if mv.decision == "reject" else "Pass"
                why = (
                    f"{mv.decision}: p = {mv.p_value:.3g}, canary minus baseline rate in "
                    f"[{mv.bounds.low:.4f}, {mv.bounds.high:.4f}]"
                )
                outcome = "reject" if mv.decision == "reject" else verdict.decision
                for g in groups_of.get(pair["name"], []) or ["default"]:
                    group_outcomes.setdefault(g, []).append(outcome)
        results.append(
            {
                "name": pair["name"],
                "id": pair.get("id", str(i)),
                "tags": dict(tags),
                "classification": cls,
                "classificationReason": why,
                "groups": groups_of.get(pair["name"], []),
                "experimentMetadata": {},
                "controlMetadata": {},
                "resultMetadata": {},
                "critical": False,
                "muted": muted,
            }
        )

    def score(outcomes: list[str]) -> float:
        if any(o == "reject" for o in outcomes):
            return 0.0
        if outcomes and all(o == "promote" for o in outcomes):
            return 100.0
        return marginal_at

    def classify(s: float) -> str:
        return "Pass" if s >= pass_at else "Marginal" if s >= marginal_at else "Fail"

    group_scores = [
        {
            "name": g,
            "score": score(o),
            "classification": classify(score(o)),
            "classificationReason": "",
        }
        for g, o in sorted(group_outcomes.items())
    ]
    all_outcomes = [o for os_ in group_outcomes.values() for o in os_]
    overall = score(all_outcomes)
    reasons = "; ".join(v.reason for v in verdicts.values()) or "no family to judge"
    return {
        "judgeName": JUDGE_NAME,
        "results": results,
        "groupScores": group_scores,
        "score": {
            "score": overall,
            "classification": classify(overall),
            "classificationReason": reasons,
        },
    }
