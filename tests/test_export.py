"""`release-spec export`: Argo Rollouts and Flagger manifests, checked against the published CRDs.

Two kinds of checks:

* **Schema**: every generated object is validated against the
  ``spec.versions[].schema.openAPIV3Schema`` of the vendored CRD
  (``tests/data/contracts/``, provenance in its README) by `k8s_validator`,
  which is JSON Schema Draft 4 (OpenAPI 3.0 schemas are its dialect) plus the
  Kubernetes structural-schema rules that plain JSON Schema does not know:

  - ``x-kubernetes-int-or-string: true``: the value must be an integer or a
    string. Argo's CRDs also spell this as ``anyOf: [integer, string]``, but
    Flagger's ``service.targetPort`` carries *only* the extension, so a plain
    validator accepts anything there.
  - Unknown fields: the API server *prunes* fields a structural schema does not
    declare (and ``kubectl``'s default strict field validation rejects them),
    so a misspelt ``succesCondition`` would silently vanish and leave a metric
    without its success condition. Plain JSON Schema allows extra properties;
    here an object schema without ``additionalProperties`` and without
    ``x-kubernetes-preserve-unknown-fields: true`` allows no undeclared key.
    The root ``metadata`` (declared as a bare ``object``; the API server checks
    it as ObjectMeta) gets a small ObjectMeta schema: DNS-1123 name and
    namespace, string labels and annotations.
  - ``nullable: true``: null is allowed besides the declared type.
  - ``x-kubernetes-list-type: set`` / ``map``: items (or their
    ``x-kubernetes-list-map-keys``) must be unique.
  - Not evaluated: ``x-kubernetes-validations`` (CEL). The two rules in these
    CRDs are Argo's "``.spec.selector`` is immutable" (compares with the old
    object; only on update) and a Flagger Gateway-API ``backendRef`` rule (a
    field we do not write). ``format`` is not asserted, as Draft 4 does not
    by default (Flagger's ``format: url`` and ``format: string`` are not
    among the formats the API server checks either).

* **Semantics**: the weights are the plan's shares, ``count`` x ``interval``
  covers each bake, the conditions are the intended ``expr`` strings, and
  Argo's own metric assessment (ported below from ``analysis/analysis.go``)
  turns "promote" into success, "reject" into failure and an undecided bake
  into Inconclusive (the rollout pauses: the plan's "hold").
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from release_spec.cli import EXIT_OK, EXIT_USAGE, main
from release_spec.services.export import (
    ExportOptions,
    argo_manifests,
    export,
    flagger_manifests,
    look_interval_seconds,
    weights,
)
from release_spec.strategy.judge import ArmCounts
from release_spec.strategy.plan import load_plan, parse_plan

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "tests" / "data" / "contracts"
GENERATED = ROOT / "docs" / "integrations" / "generated"

# --------------------------------------------------------------------------- the validator

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": _DNS_SUBDOMAIN, "maxLength": 253},
        "namespace": {"type": "string", "pattern": _DNS_LABEL, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _structural(node: Any) -> Any:
    """A CRD schema rewritten so that Draft 4 enforces the Kubernetes rules (see the module)."""
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _structural(v) for k, v in node.items()}
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _int_or_string(
    validator: Any, flag: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    # bool is an int in Python, not in Kubernetes' IntOrString.
    if flag and (isinstance(instance, bool) or not isinstance(instance, int | str)):
        yield ValidationError(f"{instance!r} is not an integer or a string (int-or-string)")


def _list_map_keys(
    validator: Any, keys: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(instance, list):
        return
    seen: set[tuple[Any, ...]] = set()
    for item in instance:
        if isinstance(item, dict):
            key = tuple(repr(item.get(k)) for k in keys)
            if key in seen:
                yield ValidationError(f"duplicate list-map key {keys} = {key}")
            seen.add(key)


K8sValidator = jsonschema.validators.extend(
    Draft4Validator,
    {
        "x-kubernetes-int-or-string": _int_or_string,
        "x-kubernetes-list-map-keys": _list_map_keys,
    },
)


@functools.cache
def _crd(path: str, kind: str) -> tuple[str, dict[str, Any]]:
    """(apiVersion, openAPIV3Schema) of the served, stored version of ``kind`` in a CRD file."""
    with open(CONTRACTS / path, encoding="utf-8") as f:
        docs = [d for d in yaml.load_all(f, Loader=yaml.CSafeLoader) if d]
    (crd,) = [d for d in docs if d["spec"]["names"]["kind"] == kind]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return f"{crd['spec']['group']}/{version['name']}", version["schema"]["openAPIV3Schema"]


CRDS = {
    "Rollout": "argo-rollouts-rollout-crd.yaml",
    "AnalysisTemplate": "argo-rollouts-analysis-template-crd.yaml",
    "Canary": "flagger-crd.yaml",
}


@functools.cache
def k8s_validator(kind: str) -> Any:
    """A validator for ``kind`` with the Kubernetes rules of the module docstring."""
    _, schema = _crd(CRDS[kind], kind)
    schema = _structural(copy.deepcopy(schema))
    schema["properties"]["metadata"] = _OBJECT_META
    K8sValidator.check_schema(schema)
    return K8sValidator(schema)


def schema_errors(obj: Mapping[str, Any]) -> list[str]:
    """Every schema violation of a generated object, as "path: message" lines."""
    kind = obj.get("kind")
    if kind not in CRDS:
        return [f"kind: no vendored CRD for {kind!r}"]
    api, _ = _crd(CRDS[kind], kind)
    errors = [] if obj.get("apiVersion") == api else [f"apiVersion: {obj.get('apiVersion')!r}"]
    for e in k8s_validator(kind).iter_errors(obj):
        errors.append(f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}")
    return errors


def _manifests(target: str, plan: Any = None, options: ExportOptions | None = None) -> list[Any]:
    plan = plan or load_plan().phased_rollout
    build = argo_manifests if target == "argo" else flagger_manifests
    return build(plan, options)


# --------------------------------------------------------------------------- schema checks


def test_vendored_contracts_match_the_sums_in_their_readme():
    readme = (CONTRACTS / "README.md").read_text("utf-8")
    sums = {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)}
    assert set(sums) == {p.name for p in CONTRACTS.iterdir() if p.name != "README.md"}
    for name, digest in sums.items():
        assert hashlib.sha256((CONTRACTS / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("target", ["argo", "flagger"])
def test_default_plan_manifests_validate_against_the_crds(target):
    objects = _manifests(target)
    assert [o["kind"] for o in objects] == (
        ["AnalysisTemplate"] * 4 + ["Rollout"] if target == "argo" else ["Canary"]
    )
    for obj in objects:
        assert schema_errors(obj) == [], obj["metadata"]["name"]


def test_custom_options_and_plan_validate_against_the_crds():
    plan = parse_plan(
        {
            "phased_rollout": {
                "steps": _steps([2.0, 10.0, 30.0], [50, 100, 200], [7.5, 3.0, 0.5]),
                "batch_size": 50,
                "requests_per_minute": 90.0,
            }
        }
    ).phased_rollout
    options = ExportOptions(
        service_url="https://judge.example.org/base",
        prometheus_url="http://thanos-query.monitoring:10902",
        name="llm-gateway",
        namespace="ml-serving",
        target="llm-gateway-v2",
        port=9000,
        requests_metric="llm_requests_total",
        errors_metric="llm_failures_total",
        timeout_seconds=5,
    )
    for target in ("argo", "flagger"):
        for obj in _manifests(target, plan, options):
            assert schema_errors(obj) == []
            assert obj["metadata"]["namespace"] == "ml-serving"


@pytest.mark.parametrize(
    ("target", "kind", "path", "bad", "expect"),
    [
        # Wrong types in typed fields: an int32 weight given as a string, a step-weight list
        # of strings, a look count that is a float (int-or-string: neither), a bool.
        (
            "argo",
            "Rollout",
            ("spec", "strategy", "canary", "steps", 0, "setWeight"),
            "25",
            "is not of type 'integer'",
        ),
        ("argo", "AnalysisTemplate", ("spec", "metrics", 0, "count"), 1.5, "int-or-string"),
        (
            "argo",
            "AnalysisTemplate",
            ("spec", "metrics", 0, "inconclusiveLimit"),
            True,
            "int-or-string",
        ),
        (
            "argo",
            "AnalysisTemplate",
            ("spec", "metrics", 0, "provider", "web", "timeoutSeconds"),
            "10",
            "is not of type 'integer'",
        ),
        (
            "flagger",
            "Canary",
            ("spec", "analysis", "stepWeights", 0),
            "1",
            "is not of type 'number'",
        ),
        ("flagger", "Canary", ("spec", "analysis", "interval"), "12 seconds", "does not match"),
        (
            "flagger",
            "Canary",
            ("spec", "analysis", "webhooks", 0, "type"),
            "pre-rolout",
            "is not one of",
        ),
        # int-or-string with no anyOf beside it: only the extension rejects a list.
        ("flagger", "Canary", ("spec", "service", "targetPort"), [8080], "int-or-string"),
        # A misspelt field, which the API server would prune without a word.
        (
            "argo",
            "AnalysisTemplate",
            ("spec", "metrics", 0, "succesCondition"),
            "true",
            "Additional properties",
        ),
        (
            "flagger",
            "Canary",
            ("spec", "analysis", "stepWeight", "x"),
            None,
            "Additional properties",
        ),
        ("argo", "Rollout", ("metadata", "name"), "Model_Server", "does not match"),
    ],
)
def test_a_broken_manifest_fails_validation(target, kind, path, bad, expect):
    obj = copy.deepcopy(next(o for o in _manifests(target) if o["kind"] == kind))
    assert schema_errors(obj) == []
    if path[-1] == "x":  # an unknown key next to known ones
        obj["spec"]["analysis"]["stepWeightz"] = 5
    else:
        node = obj
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
    errors = schema_errors(obj)
    assert errors, f"{path} = {bad!r} passed"
    assert any(expect in e for e in errors), errors


def test_plain_json_schema_misses_what_the_kubernetes_rules_catch():
    # Why the extensions matter: Draft 4 alone accepts a pruned typo and a list port.
    canary = copy.deepcopy(_manifests("flagger")[0])
    canary["spec"]["service"]["targetPort"] = [8080]
    canary["spec"]["analysis"]["stepWeightz"] = 5
    _, schema = _crd(CRDS["Canary"], "Canary")
    assert list(Draft4Validator(schema).iter_errors(canary)) == []
    assert len(schema_errors(canary)) == 2


# --------------------------------------------------------------------------- semantics


# Argo Rollouts' measurement and metric assessment, ported from
# utils/evaluate/evaluate.go (EvaluateResult) and analysis/analysis.go
# (assessMetricStatus, assessMetricFailureInconclusiveOrError) at the vendored commit,
# for one web metric whose measurements all complete without error.
_CONDITION = re.compile(r'^result == "([a-z]+)"$')


def _holds(condition: str, result: str) -> bool:
    match = _CONDITION.match(condition)
    assert match, f"not the intended expr form: {condition!r}"
    return result == match.group(1)


def _measurement_phase(metric: Mapping[str, Any], result: str) -> str:
    if _holds(metric["failureCondition"], result):
        return "Failed"
    if _holds(metric["successCondition"], result):
        return "Successful"
    return "Inconclusive"


def _assess(metric: Mapping[str, Any], results: Sequence[str]) -> tuple[str, int]:
    """The metric's phase after the measurements, and how many were taken."""
    failed = inconclusive = consecutive_success = 0
    count = int(metric["count"])
    for taken, result in enumerate(results, start=1):
        phase = _measurement_phase(metric, result)
        failed += phase == "Failed"
        inconclusive += phase == "Inconclusive"
        consecutive_success = consecutive_success + 1 if phase == "Successful" else 0
        if failed > int(metric.get("failureLimit", 0)) >= 0:
            return "Failed", taken
        if inconclusive > int(metric.get("inconclusiveLimit", 0)):
            return "Inconclusive", taken
        limit = int(metric.get("consecutiveSuccessLimit", 0))
        if limit > 0 and consecutive_success >= limit:
            return "Successful", taken
        if taken >= count:
            # Count reached with failureLimit >= 0 and a success limit: Inconclusive.
            return ("Inconclusive" if limit > 0 else "Successful"), taken
    return "Running", len(results)


def _metrics() -> list[dict[str, Any]]:
    return [t["spec"]["metrics"][0] for t in _manifests("argo") if t["kind"] == "AnalysisTemplate"]


@pytest.mark.parametrize("decision", ["continue", "promote", "reject"])
def test_conditions_are_the_intended_expressions(decision):
    for metric in _metrics():
        assert metric["successCondition"] == 'result == "promote"'
        assert metric["failureCondition"] == 'result == "reject"'
        assert metric["provider"]["web"]["jsonPath"] == "{$.decision}"
        assert _holds(metric["successCondition"], decision) is (decision == "promote")
        assert _holds(metric["failureCondition"], decision) is (decision == "reject")
        assert (
            _measurement_phase(metric, decision)
            == {
                "continue": "Inconclusive",
                "promote": "Successful",
                "reject": "Failed",
            }[decision]
        )


def test_argo_assessment_promotes_rejects_and_holds_as_the_plan_says():
    for metric in _metrics():
        n = int(metric["count"])
        # "continue" at every look but the last: never aborts, never ends the step.
        assert _assess(metric, ["continue"] * (n - 1)) == ("Running", n - 1)
        assert _assess(metric, ["continue"] * (n - 1) + ["promote"]) == ("Successful", n)
        assert _assess(metric, ["continue", "promote"]) == ("Successful", 2)
        assert _assess(metric, ["continue", "continue", "reject"]) == ("Failed", 3)
        # The bake ends undecided: Inconclusive, which pauses the rollout ("hold").
        assert _assess(metric, ["continue"] * n) == ("Inconclusive", n)


def test_argo_metrics_pass_the_controllers_own_validation():
    # utils/analysis/factory.go ValidateMetric, the rules that apply to these metrics.
    for metric in _metrics():
        count = int(metric["count"])
        failure, success = int(metric["failureLimit"]), int(metric["consecutiveSuccessLimit"])
        assert count >= failure + success
        assert count >= int(metric["inconclusiveLimit"]) >= 0
        assert re.fullmatch(r"[1-9][0-9]*s", metric["interval"])


def _steps(shares: list[float], minimum: list[int], bakes: list[float]) -> list[dict[str, Any]]:
    """``[[phased_rollout.steps]]`` tables from one list per key."""
    return [
        {"share_pct": s, "min_canary_requests": n, "max_bake_minutes": b}
        for s, n, b in zip(shares, minimum, bakes, strict=True)
    ]


def _plan(**rollout: Any) -> Any:
    return parse_plan({"phased_rollout": rollout}).phased_rollout


PLANS = [
    {},  # the default plan
    {
        "steps": _steps([2.0, 10.0, 30.0], [50, 100, 200], [7.5, 3.0, 0.5]),
        "batch_size": 50,
        "requests_per_minute": 90.0,
    },
    {
        "steps": _steps([10.0, 100.0], [10, 0], [0.1, 1.0]),
        "batch_size": 1,
        "requests_per_minute": 1_000_000.0,
    },
]


@pytest.mark.parametrize("raw", PLANS)
def test_weights_are_the_shares_and_looks_cover_each_bake(raw):
    plan = _plan(**raw)
    shares = [s.share_pct for s in plan.steps]
    minimum = [s.min_canary_requests for s in plan.steps]
    bakes = [s.max_bake_minutes for s in plan.steps]
    analysed = [int(s) for s in (shares[:-1] if shares[-1] == 100.0 else shares)]
    argo, flagger = _manifests("argo", plan), _manifests("flagger", plan)
    assert weights(argo[-1]) == analysed
    assert weights(flagger[0]) == analysed
    interval = look_interval_seconds(plan)
    assert interval == max(1, math.ceil(60 * plan.batch_size / plan.requests_per_minute))
    templates = {t["metadata"]["name"]: t for t in argo[:-1]}
    steps = argo[-1]["spec"]["strategy"]["canary"]["steps"]
    assert len(steps) == 2 * len(analysed)
    waits = []
    for i, (weight_step, analysis_step) in enumerate(zip(steps[::2], steps[1::2], strict=True)):
        assert weight_step == {"setWeight": analysed[i]}
        (ref,) = analysis_step["analysis"]["templates"]
        metric = templates[ref["templateName"]]["spec"]["metrics"][0]
        assert metric["interval"] == f"{interval}s"
        wait = int(metric.get("initialDelay", "0s")[:-1])
        waits.append(wait)
        count, bake = int(metric["count"]), 60 * bakes[i]
        # The looks cover the bake, with no more than one look to spare.
        assert wait + count * interval >= bake
        assert count == 1 or wait + (count - 1) * interval < bake
        if i == 0:
            # The judge itself holds the first promotion until this many canary requests.
            assert wait == 0
            assert metric["provider"]["web"]["jsonBody"]["min_canary_requests"] == minimum[0]
        else:
            # A later step's first look comes once its minimum has arrived at the plan's
            # traffic (canary requests per second = share % of requests_per_minute / 60).
            per_second = shares[i] / 100 * plan.requests_per_minute / 60
            assert wait * per_second >= minimum[i] > (wait - 1) * per_second
    # Flagger: one interval per step, long enough for every step's minimum.
    flagger_interval = int(flagger[0]["spec"]["analysis"]["interval"][:-1])
    assert flagger_interval == max([interval, *waits])


def test_every_call_carries_the_same_judge_settings():
    # The service refuses changed settings once looks are counted: every step's
    # measurement and every Flagger hook must send the same body.
    plan = load_plan().phased_rollout
    *templates, _ = _manifests("argo")
    bodies = [t["spec"]["metrics"][0]["provider"]["web"]["jsonBody"] for t in templates]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["alpha"] == plan.alpha
    assert bodies[0]["margin"] == plan.margin
    assert bodies[0]["metrics"] == ["errors", "slow"]
    assert bodies[0]["slow_margin"] == plan.slow_margin
    assert bodies[0]["slo_seconds"] == plan.latency_slo_ms / 1000
    hash_ = 'namespace="default",rollouts_pod_template_hash="{{args.%s-hash}}"'
    assert bodies[0]["prometheus"] == {
        "url": "http://prometheus.monitoring.svc:9090",
        "canary": {
            "requests": "model_requests_total{" + hash_ % "canary" + "}",
            "errors": "model_errors_total{" + hash_ % "canary" + "}",
            "slow": "model_slow_requests_total{" + hash_ % "canary" + "}",
        },
        "baseline": {
            "requests": "model_requests_total{" + hash_ % "stable" + "}",
            "errors": "model_errors_total{" + hash_ % "stable" + "}",
            "slow": "model_slow_requests_total{" + hash_ % "stable" + "}",
        },
    }
    (canary,) = _manifests("flagger")
    configs = {h["metadata"]["config"] for h in canary["spec"]["analysis"]["webhooks"]}
    assert len(configs) == 1
    flagger_body = json.loads(configs.pop())
    pods = 'namespace="default",pod=~"model-server%s-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"'
    assert flagger_body == {
        **bodies[0],
        "prometheus": {
            "url": "http://prometheus.monitoring.svc:9090",
            "canary": {
                "requests": "model_requests_total{" + pods % "" + "}",
                "errors": "model_errors_total{" + pods % "" + "}",
                "slow": "model_slow_requests_total{" + pods % "" + "}",
            },
            "baseline": {
                "requests": "model_requests_total{" + pods % "-primary" + "}",
                "errors": "model_errors_total{" + pods % "-primary" + "}",
                "slow": "model_slow_requests_total{" + pods % "-primary" + "}",
            },
        },
    }


def test_flagger_pod_patterns_tell_the_canary_from_the_primary():
    # PromQL regex matchers are anchored at both ends, as fullmatch is.
    canary, primary = (
        re.compile(f"model-server{tail}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)") for tail in ("", "-primary")
    )
    assert canary.fullmatch("model-server-7d9c8b6f5-x2x4q")
    assert not canary.fullmatch("model-server-primary-7d9c8b6f5-x2x4q")
    assert primary.fullmatch("model-server-primary-7d9c8b6f5-x2x4q")
    assert not primary.fullmatch("model-server-7d9c8b6f5-x2x4q")


def test_the_rollout_id_is_the_canary_pod_template_hash():
    *templates, rollout = _manifests("argo")
    for t in templates:
        assert t["spec"]["args"] == [{"name": "canary-hash"}, {"name": "stable-hash"}]
        url = t["spec"]["metrics"][0]["provider"]["web"]["url"]
        assert url == (
            "http://release-spec-judge.release-spec.svc:8080"
            "/v1/rollouts/model-server-{{args.canary-hash}}/measure"
        )
    for step in rollout["spec"]["strategy"]["canary"]["steps"][1::2]:
        assert step["analysis"]["args"] == [
            {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
        ]


def test_flagger_webhooks_call_the_judge():
    options = ExportOptions(service_url="http://judge:8000")
    (canary,) = _manifests("flagger", options=options)
    hooks = canary["spec"]["analysis"]["webhooks"]
    for hook in hooks:
        assert hook["url"] == f"http://judge:8000/v1/flagger/{hook['type']}"
        assert set(hook["metadata"]) == {"config"}
    assert [h["type"] for h in hooks] == [
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "rollback",
    ]
    assert canary["spec"]["analysis"]["threshold"] == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {
                "steps": _steps([1.0, 2.5, 100.0], [1, 1, 0], [1.0, 1.0, 1.0]),
            },
            r"^phased_rollout\.steps\[1\]\.share_pct: .*whole-percent weights, got 2\.5$",
        ),
        ({"on_inconclusive": "rollback"}, r"^phased_rollout\.on_inconclusive: .*got 'rollback'$"),
        ({"margin": 0.0}, r"^phased_rollout\.margin: the judge needs a margin > 0, got 0$"),
        ({"slow_margin": 0.0}, r"^phased_rollout\.slow_margin: the judge needs a margin > 0"),
    ],
)
def test_what_the_controllers_cannot_express_is_refused_by_plan_key(raw, message):
    plan = _plan(**raw)
    for target in ("argo", "flagger"):
        with pytest.raises(ValueError, match=message):
            _manifests(target, plan)


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"name": "Bad_Name"}, "name:"),
        ({"name": "a" * 49}, "name:"),
        ({"namespace": "-x"}, "namespace:"),
        ({"target": ""}, "target:"),
        ({"service_url": "judge:8000"}, "service_url:"),
        ({"service_url": "http://judge/"}, "service_url:"),
        ({"prometheus_url": "ftp://p"}, "prometheus_url:"),
        ({"requests_metric": "requests total"}, "requests_metric:"),
        ({"errors_metric": 'x{a="b"}'}, "errors_metric:"),
        ({"slow_metric": "9slow"}, "slow_metric:"),
        ({"rollout_id": "a/b"}, "rollout_id:"),
        ({"rollout_id": ""}, "rollout_id:"),
        ({"port": 0}, "port:"),
        ({"interval_seconds": 0}, "interval_seconds:"),
        ({"timeout_seconds": 0}, "timeout_seconds:"),
    ],
)
def test_bad_options_name_the_option(kwargs, names):
    with pytest.raises(ValueError, match=f"^{names}"):
        ExportOptions(**kwargs)


# --------------------------------------------------------------------------- the service


def _resolve(text: str, args: Mapping[str, str]) -> str:
    # Argo substitutes {{args.NAME}} in the metric's JSON (utils/template/template.go).
    return re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)], text)


class _FakePrometheus:
    """The judge's ``fetch``: records the sources it is asked for, returns set counts."""

    def __init__(self) -> None:
        self.canary, self.baseline = ArmCounts(0, 0), ArmCounts(0, 0)
        self.sources: list[Any] = []

    def __call__(self, source: Any, start: float, end: float) -> tuple[ArmCounts, ArmCounts]:
        self.sources.append(source)
        return self.canary, self.baseline


@pytest.fixture
def judge(tmp_path):
    from fastapi.testclient import TestClient

    from release_spec.services.app import create_app
    from release_spec.services.store import SQLiteStore

    prometheus = _FakePrometheus()
    now = [1_000.0]

    def clock() -> float:
        now[0] += 12.0
        return now[0]

    store = SQLiteStore(tmp_path / "judge.db")
    with TestClient(create_app(store, fetch=prometheus, clock=clock)) as client:
        yield client, prometheus
    store.close()


def _argo_measure(client: Any, template: Mapping[str, Any], args: Mapping[str, str]) -> str:
    """One measurement as Argo's web provider takes it; the measurement's phase."""
    metric = json.loads(_resolve(json.dumps(template["spec"]["metrics"][0]), args))
    web = metric["provider"]["web"]
    path = web["url"].removeprefix("http://release-spec-judge.release-spec.svc:8080")
    response = client.request(web["method"], path, json=web["jsonBody"])
    assert response.status_code == 200, response.text  # anything else is an Error
    assert web["jsonPath"] == "{$.decision}"
    return _measurement_phase(metric, response.json()["decision"])


def test_argo_measurements_drive_the_judge_service(judge):
    client, prometheus = judge
    *templates, _ = _manifests("argo")
    args = {"canary-hash": "6d4f8b9c7", "stable-hash": "58c9d7f6b"}
    # The first measurement creates the rollout (and counts the moment since): Inconclusive.
    assert _argo_measure(client, templates[0], args) == "Inconclusive"
    prometheus.canary, prometheus.baseline = ArmCounts(20, 0), ArmCounts(1980, 20)
    phases = [_argo_measure(client, templates[0], args) for _ in range(30)]
    # 20 canary requests a look: the plan's first minimum (300) arrives at look 15.
    assert phases.index("Successful") == 14
    assert set(phases[:14]) == {"Inconclusive"}
    (source,) = {json.dumps(asdict(s), sort_keys=True) for s in prometheus.sources}
    canary_requests = json.loads(source)["canary"]["requests"]
    assert canary_requests == (
        'model_requests_total{namespace="default",rollouts_pod_template_hash="6d4f8b9c7"}'
    )
    # The next step's template sends the same settings: no 409, the same judge.
    # A promoting judge keeps promoting: why a later step waits (initialDelay) for its
    # own minimum before its first look.
    body = client.get("/v1/rollouts/model-server-6d4f8b9c7").json()
    assert _argo_measure(client, templates[1], args) == "Successful"
    assert client.get("/v1/rollouts/model-server-6d4f8b9c7").json()["looks"] == body["looks"] + 1
    # A regression: the canary errs at 50 %, the baseline at 1 %.
    prometheus.canary, prometheus.baseline = ArmCounts(100, 50), ArmCounts(1900, 19)
    phases = [_argo_measure(client, templates[1], args) for _ in range(5)]
    assert "Failed" in phases
    # Another revision (pod-template hash) is another rollout with a fresh judge.
    prometheus.canary, prometheus.baseline = ArmCounts(20, 0), ArmCounts(1980, 20)
    assert _argo_measure(client, templates[0], {**args, "canary-hash": "7f00aa"}) == "Inconclusive"
    fresh = client.get("/v1/rollouts/model-server-7f00aa").json()
    assert (fresh["decision"], fresh["looks"], fresh["canary_requests"]) == ("continue", 1, 20)
    assert client.get("/v1/rollouts/model-server-6d4f8b9c7").json()["decision"] == "reject"


def test_flagger_rollout_id_option_names_the_judges_rollout(judge):
    client, _ = judge
    (canary,) = _manifests("flagger", options=ExportOptions(rollout_id="model-server-v42"))
    hook = canary["spec"]["analysis"]["webhooks"][0]
    assert hook["metadata"]["rollout"] == "model-server-v42"
    payload = {"name": "model-server", "namespace": "default", "metadata": hook["metadata"]}
    assert client.post("/v1/flagger/pre-rollout", json=payload).status_code == 200
    assert client.get("/v1/rollouts/model-server-v42").json()["decision"] == "continue"
    assert client.get("/v1/rollouts/default.model-server").status_code == 404
    with pytest.raises(ValueError, match=r"^rollout_id: Argo's rollout id"):
        _manifests("argo", options=ExportOptions(rollout_id="model-server-v42"))


def test_flagger_hooks_drive_the_judge_service(judge):
    client, prometheus = judge
    (canary,) = _manifests("flagger")
    hooks = {h["type"]: h for h in canary["spec"]["analysis"]["webhooks"]}

    def call(hook: str) -> int:
        h = hooks[hook]
        payload = {
            "name": "model-server",
            "namespace": "default",
            "phase": "Progressing",
            "checksum": "abc",
            "metadata": h["metadata"],
        }
        path = h["url"].removeprefix("http://release-spec-judge.release-spec.svc:8080")
        return client.post(path, json=payload).status_code

    assert call("pre-rollout") == 200
    assert call("confirm-promotion") == 409  # nothing shown yet: Flagger waits
    assert call("rollback") == 409
    prometheus.canary, prometheus.baseline = ArmCounts(20, 0), ArmCounts(1980, 20)
    assert call("rollout") == 200  # a look, "continue": the check passes
    assert call("confirm-traffic-increase") == 200
    assert call("confirm-promotion") == 409
    # 20 canary requests a look: the minimum (300) arrives at look 15, then it promotes.
    assert [call("rollout") for _ in range(13)] == [200] * 13
    assert call("confirm-promotion") == 409  # 280 canary requests
    assert call("rollout") == 200
    assert call("confirm-promotion") == 200  # 300
    prometheus.canary, prometheus.baseline = ArmCounts(100, 50), ArmCounts(1900, 19)
    assert call("rollout") == 409  # "reject": a failed check, and threshold 1 rolls back
    assert call("rollback") == 200
    assert call("confirm-traffic-increase") == 409


# --------------------------------------------------------------------------- command line


def test_cli_writes_yaml_to_stdout_that_parses_back(capsys):
    assert main(["export", "argo"]) == EXIT_OK
    text = capsys.readouterr().out
    assert text == export("argo", load_plan().phased_rollout)
    docs = list(yaml.safe_load_all(text))
    assert docs == _manifests("argo")


def test_cli_writes_the_out_file_with_options(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[[phased_rollout.steps]]\nshare_pct = 5.0\nmin_canary_requests = 10\n"
        "max_bake_minutes = 2.0\n"
        "[[phased_rollout.steps]]\nshare_pct = 100.0\nmin_canary_requests = 0\n"
        "max_bake_minutes = 1.0\n"
    )
    out = tmp_path / "canary.yaml"
    code = main(
        [
            "export",
            "flagger",
            "--plan",
            str(plan),
            "--out",
            str(out),
            "--name",
            "svc",
            "--namespace",
            "prod",
            "--target",
            "svc-v2",
            "--service-url",
            "http://j:1",
            "--interval",
            "30",
        ]
    )
    assert code == EXIT_OK
    (canary,) = yaml.safe_load_all(out.read_text("utf-8"))
    assert canary["metadata"] == {
        "name": "svc",
        "namespace": "prod",
        "labels": {"app.kubernetes.io/managed-by": "release-spec"},
    }
    assert canary["spec"]["targetRef"]["name"] == "svc-v2"
    assert canary["spec"]["analysis"]["stepWeights"] == [5]
    assert canary["spec"]["analysis"]["interval"] == "30s"
    assert canary["spec"]["analysis"]["webhooks"][0]["url"].startswith("http://j:1/v1/flagger/")
    assert schema_errors(canary) == []
    assert str(out) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "plan_text", "names"),
    [
        (
            ["export", "argo", "--plan", "{plan}"],
            "[[phased_rollout.steps]]\nshare_pct = 1.5\nmin_canary_requests = 1\n"
            "max_bake_minutes = 1.0\n"
            "[[phased_rollout.steps]]\nshare_pct = 100.0\nmin_canary_requests = 0\n"
            "max_bake_minutes = 1.0\n",
            "phased_rollout.steps[0].share_pct",
        ),
        (
            ["export", "argo", "--plan", "{plan}"],
            "[phased_rollout]\nalpha = 2\n",
            "phased_rollout.alpha",
        ),
        (["export", "flagger", "--name", "Bad_Name"], "", "--name"),
        (["export", "flagger", "--out", "{tmp}/missing/dir/x.yaml"], "", "--out"),
        (["export", "kayenta"], "", "invalid choice"),
        (["export", "argo", "--rollout-id", "r1"], "", "--rollout-id: Argo's rollout id"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, plan_text, names):
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text)
    code = main([a.format(plan=plan, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE
    assert len(err) == 1, err
    assert err[0].startswith("release-spec: error: ")
    assert names in err[0]
    assert not (tmp_path / "missing").exists()


# --------------------------------------------------------------------------- the docs page


@pytest.mark.parametrize("target", ["argo", "flagger"])
def test_docs_generated_manifests_are_a_fresh_export(target):
    # The docs page includes these files; the message says how to regenerate them.
    path = GENERATED / f"{target}.yaml"
    assert path.read_text("utf-8") == export(target, load_plan().phased_rollout), (
        f"{path} is stale: run `release-spec export {target} --out {path.relative_to(ROOT)}`"
    )


def test_export_runs_without_the_web_stack_or_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from release_spec.cli import main\n"
        f"assert main(['export', 'argo', '--out', {str(tmp_path / 'a.yaml')!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'fastapi', 'psycopg', 'uvicorn'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
