"""Write a release plan's phased rollout as Argo Rollouts or Flagger manifests.

``release-spec export argo|flagger --plan PLAN`` turns the ``[phased_rollout]``
steps of a release plan into the objects a Kubernetes progressive-delivery
controller runs, with the canary judge service (``release-spec judge serve``)
deciding. Every object carries the same judge settings (the body of ``PUT
/v1/rollouts/{id}``): the plan's ``alpha``, ``margin``, ``slow_margin`` and
``latency_slo_ms`` (both metrics judged, as in `release_spec.strategy.rollout`), the
first step's ``min_canary_requests``, and the PromQL of each arm's request,
error and slow-request counters, so whichever call reaches the service first
creates the rollout and the later ones agree with it (the service refuses
changed settings once looks are counted).

* **Argo Rollouts**: a ``Rollout`` whose canary strategy is one ``setWeight``
  and one inline ``analysis`` step per analysed share, rolling out the
  ``Deployment`` named by ``workloadRef``; and one ``AnalysisTemplate`` per
  analysed share whose ``web`` metric POSTs the settings to
  ``/v1/rollouts/{name}-{canary hash}/measure`` every look interval (the
  service reads the counts since the previous look from Prometheus). The
  judge's ``decision`` is the measurement (``jsonPath: "{$.decision}"``):
  ``"promote"`` is the successCondition and ends the step at once
  (``consecutiveSuccessLimit: 1``), ``"reject"`` the failureCondition and
  aborts the rollout (``failureLimit: 0``), ``"continue"`` is Inconclusive and
  allowed on every measurement (``inconclusiveLimit`` = ``count``), so it never
  aborts. ``initialDelay`` + ``count`` x ``interval`` covers the step's bake; a
  bake that ends undecided is Inconclusive, which pauses the rollout: the
  plan's ``on_inconclusive = "hold"``. The canary's pod-template hash
  (``valueFrom.podTemplateHashValue: Latest``) is in the rollout id, so a new
  revision gets a fresh judge; the arms' counters are told apart by the pods'
  ``rollouts-pod-template-hash`` label (``Latest`` vs ``Stable``).
* **Flagger**: a ``Canary`` with ``analysis.stepWeights`` = the analysed shares
  and webhooks to ``/v1/flagger/{hook}`` whose ``metadata.config`` is the
  settings: ``rollout`` takes a look every interval, ``confirm-promotion`` holds
  the last weight until the judge promotes, ``rollback`` answers 2xx once it
  rejects (``confirm-traffic-increase`` lets the weight grow unless rejected).
  The service names the judge's rollout ``{namespace}.{name}.{checksum}`` from
  the payload, so each revision Flagger analyses gets a fresh judge
  (``rollout_id`` pins one id instead).
  Canary pods are ``{target}-<hash>-<hash>``, the primary's
  ``{target}-primary-<hash>-<hash>`` (Flagger's own naming, as in its built-in
  queries).

Minimum canary requests per step. The judge counts canary requests over the
whole rollout (one judge, one ``alpha`` for all looks, as in
`release_spec.strategy.rollout`), and once it promotes it keeps promoting, so a later
step would pass at its first look. Each later step therefore waits, before its
first look, the time its ``min_canary_requests`` take at the plan's traffic
(``share_pct`` / 100 x ``requests_per_minute``): Argo's ``initialDelay``; Flagger's single
``interval`` is the longest such wait (a Flagger step lasts one interval).

Both controllers take whole-percent weights, and both promote the candidate to
all traffic after the last step, so a final share of 100 % (the plan's "the
candidate becomes production") is the controller's own promotion rather than a
step. What the controllers cannot express is a `ValueError` naming the plan key:
a share that is not a whole percent, ``on_inconclusive = "rollback"`` (both
controllers hold an undecided step), a ``margin`` or ``slow_margin`` of 0 (the
judge needs both above 0).

Services layer: the standard library, `release_spec.strategy.plan` and PyYAML (imported
only when YAML is written); no web stack.

Examples:
    >>> from release_spec.strategy.plan import load_plan
    >>> objects = argo_manifests(load_plan().phased_rollout)
    >>> [o["kind"] for o in objects][-1], weights(objects[-1])
    ('Rollout', [1, 5, 25, 50])
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from release_spec.services.flagger import ROLLOUT_ID
from release_spec.strategy.plan import PhasedRolloutPlan

__all__ = [
    "TARGETS",
    "AnalysedStep",
    "ExportOptions",
    "analysed_steps",
    "argo_manifests",
    "export",
    "flagger_manifests",
    "judge_settings",
    "look_interval_seconds",
    "to_yaml",
    "weights",
]

#: What ``release-spec export`` can write.
TARGETS = ("argo", "flagger")

ARGO_API = "argoproj.io/v1alpha1"
FLAGGER_API = "flagger.app/v1beta1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "release-spec"}
#: The Flagger hooks the Canary calls (see `release_spec.services.flagger`).
FLAGGER_HOOKS = (
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "rollback",
)
# Flagger's own pod-name pattern for a workload's pods (pkg/metrics/observers/http.go).
_POD_SUFFIX = "-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"

# Kubernetes names are DNS-1123 labels; "-judge-step-NN" is appended to ``name``.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


@dataclass(frozen=True)
class ExportOptions:
    """Where the judge and Prometheus run, and what the manifests are called.

    Args:
        service_url: base URL of the judge service as the controller reaches it.
        prometheus_url: base URL of the Prometheus the judge service reads.
        name: name of the Rollout / Canary (and prefix of the AnalysisTemplates).
        namespace: namespace of every object (and of the counters' pods).
        target: the ``Deployment`` rolled out.
        port: the container port the Flagger-generated services expose.
        requests_metric: the counter of requests served, per pod.
        errors_metric: the counter of failed requests, per pod.
        slow_metric: the counter of requests slower than the plan's
            ``latency_slo_ms``, per pod.
        rollout_id: Flagger: one rollout id for every revision of the Canary
            (``metadata.rollout`` of every webhook). ``None``, the default, leaves
            the service's id, ``{namespace}.{name}.{checksum}``: one judge per
            revision, Flagger's ``checksum`` naming it. A fixed id suits a Canary
            applied afresh with each release; with it, a rejected revision leaves
            the next one rejected until the id changes.
        interval_seconds: Argo: seconds between looks (default: ``batch_size``
            requests at ``requests_per_minute``); Flagger: the analysis interval
            (default: the longest wait for a step's minimum canary requests).
        timeout_seconds: HTTP timeout of each call to the judge.

    Raises:
        ValueError: a name that is not a DNS-1123 label, a URL without http(s)
            or with a trailing slash, a metric name PromQL does not allow, or a
            number out of range; the message starts with the option's name.

    Examples:
        >>> ExportOptions(name="Model_Server")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: name: expected a DNS-1123 label of at most 48 characters (lower-case ...
    """

    service_url: str = "http://release-spec-judge.release-spec.svc:8080"
    prometheus_url: str = "http://prometheus.monitoring.svc:9090"
    name: str = "model-server"
    namespace: str = "default"
    target: str = "model-server"
    port: int = 8080
    requests_metric: str = "model_requests_total"
    errors_metric: str = "model_errors_total"
    slow_metric: str = "model_slow_requests_total"
    rollout_id: str | None = None
    interval_seconds: int | None = None
    timeout_seconds: int = 10

    def __post_init__(self) -> None:
        for option, limit in (("name", 48), ("namespace", 63), ("target", 63)):
            value = getattr(self, option)
            if not (_DNS_LABEL.match(value) and len(value) <= limit):
                raise ValueError(
                    f"{option}: expected a DNS-1123 label of at most {limit} characters "
                    f"(lower-case letters, digits, '-'), got {value!r}"
                )
        for option in ("service_url", "prometheus_url"):
            value = getattr(self, option)
            if not _URL.match(value) or value.endswith("/"):
                raise ValueError(
                    f"{option}: expected http(s)://host[:port][/path] without a trailing "
                    f"slash, got {value!r}"
                )
        for option in ("requests_metric", "errors_metric", "slow_metric"):
            if not _METRIC_NAME.match(getattr(self, option)):
                raise ValueError(
                    f"{option}: expected a Prometheus metric name, got {getattr(self, option)!r}"
                )
        if self.rollout_id is not None and not ROLLOUT_ID.match(self.rollout_id):
            raise ValueError(
                f"rollout_id: expected 1-200 of A-Z a-z 0-9 . _ : ~ -, got {self.rollout_id!r}"
            )
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port: expected 1..65535, got {self.port}")
        if self.interval_seconds is not None and self.interval_seconds < 1:
            raise ValueError(f"interval_seconds: expected >= 1, got {self.interval_seconds}")
        if self.timeout_seconds < 1:
            raise ValueError(f"timeout_seconds: expected >= 1, got {self.timeout_seconds}")


@dataclass(frozen=True)
class AnalysedStep:
    """One traffic step a controller analyses.

    Args:
        index: the step's position in the plan.
        weight: canary weight, whole percent.
        min_canary_requests: the plan's minimum for the step.
        max_bake_minutes: the plan's bake.
        wait_seconds: time for ``min_canary_requests`` at the plan's traffic,
            rounded up (0 for the first step: the judge itself counts those).
    """

    index: int
    weight: int
    min_canary_requests: int
    max_bake_minutes: float
    wait_seconds: int

    def count(self, interval: int) -> int:
        """Looks, ``interval`` seconds apart after the wait, that cover the bake (at least 1).

        Examples:
            >>> AnalysedStep(1, 5, 500, 40.0, 600).count(12)  # (2400 s - 600 s) / 12 s
            150
        """
        rest = 60.0 * self.max_bake_minutes - self.wait_seconds
        return max(1, math.ceil(rest / interval - 1e-9))


def look_interval_seconds(plan: PhasedRolloutPlan) -> int:
    """Seconds between two looks of the judge: one ``batch_size`` of traffic, rounded up.

    The plan's rollout controller looks after every ``batch_size`` requests; at
    ``requests_per_minute`` that is ``60 * batch_size / requests_per_minute``
    seconds, rounded up to whole seconds (the controllers' duration syntax), at
    least 1.

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> look_interval_seconds(load_plan().phased_rollout)  # 200 requests at 1,000 a minute
        12
    """
    return max(1, math.ceil(60.0 * plan.batch_size / plan.requests_per_minute - 1e-9))


def analysed_steps(plan: PhasedRolloutPlan) -> list[AnalysedStep]:
    """The plan's steps a controller analyses: whole-percent weights and waits.

    A final share of 100 % is the controller's promotion, not a step. A later
    step's wait is ``60 * min_canary_requests / (share_pct / 100 * requests_per_minute)``
    seconds, rounded up.

    Raises:
        ValueError: what the controllers or the judge cannot express, naming the
            plan key: a share that is not a whole percent, ``on_inconclusive =
            "rollback"``, a ``margin`` or ``slow_margin`` of 0.

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> [(s.weight, s.wait_seconds) for s in analysed_steps(load_plan().phased_rollout)]
        [(1, 0), (5, 600), (25, 240), (50, 120)]
    """
    if plan.on_inconclusive != "hold":
        raise ValueError(
            "phased_rollout.on_inconclusive: Argo Rollouts pauses and Flagger waits when a "
            f"step ends undecided, which is 'hold'; got {plan.on_inconclusive!r}"
        )
    for key in ("margin", "slow_margin"):
        if not getattr(plan, key) > 0:
            raise ValueError(
                f"phased_rollout.{key}: the judge needs a margin > 0, got {getattr(plan, key):g}"
            )
    steps: list[AnalysedStep] = []
    last = len(plan.steps) - 1
    for i, step in enumerate(plan.steps):
        share, n = step.share_pct, step.min_canary_requests
        if i == last and share == 100.0:
            break
        if share != round(share):
            raise ValueError(
                f"phased_rollout.steps[{i}].share_pct: Argo Rollouts and Flagger take "
                f"whole-percent weights, got {share:g}"
            )
        wait = 0 if i == 0 else math.ceil(60.0 * n / (share / 100.0 * plan.requests_per_minute))
        steps.append(AnalysedStep(i, int(share), n, step.max_bake_minutes, wait))
    return steps


def _selector(metric: str, matchers: Sequence[tuple[str, str, str]]) -> str:
    inner = ",".join(f"{label}{op}{json.dumps(value)}" for label, op, value in matchers)
    return f"{metric}{{{inner}}}"


def judge_settings(
    plan: PhasedRolloutPlan,
    options: ExportOptions,
    canary: Sequence[tuple[str, str, str]],
    baseline: Sequence[tuple[str, str, str]],
) -> dict[str, Any]:
    """The body of ``PUT /v1/rollouts/{id}`` that every generated call carries.

    ``canary`` and ``baseline`` are each arm's label matchers ``(label, op, value)``.

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> body = judge_settings(load_plan().phased_rollout, ExportOptions(),
        ...                       [("pod", "=~", "a-.*")], [("pod", "=~", "b-.*")])
        >>> body["alpha"], body["margin"], body["min_canary_requests"]
        (0.05, 0.03, 300)
        >>> body["metrics"], body["slow_margin"], body["slo_seconds"]
        (['errors', 'slow'], 0.03, 0.05)
        >>> body["prometheus"]["canary"]["errors"]
        'model_errors_total{pod=~"a-.*"}'
    """
    first = analysed_steps(plan)[0]

    def arm(matchers: Sequence[tuple[str, str, str]]) -> dict[str, str]:
        return {
            "requests": _selector(options.requests_metric, matchers),
            "errors": _selector(options.errors_metric, matchers),
            "slow": _selector(options.slow_metric, matchers),
        }

    return {
        "alpha": plan.alpha,
        "margin": plan.margin,
        "metrics": ["errors", "slow"],
        "slow_margin": plan.slow_margin,
        "slo_seconds": plan.latency_slo_ms / 1000.0,
        "min_canary_requests": first.min_canary_requests,
        "prometheus": {
            "url": options.prometheus_url,
            "canary": arm(canary),
            "baseline": arm(baseline),
        },
    }


def _metadata(name: str, options: ExportOptions) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": dict(MANAGED_BY)}


def argo_manifests(
    plan: PhasedRolloutPlan, options: ExportOptions | None = None
) -> list[dict[str, Any]]:
    """The plan as Argo Rollouts objects: one AnalysisTemplate per analysed step, then the Rollout.

    Raises:
        ValueError: what `analysed_steps` refuses, or a ``rollout_id`` option (Argo's
            rollout id is the canary's pod-template hash).

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> *templates, rollout = argo_manifests(load_plan().phased_rollout)
        >>> metric = templates[1]["spec"]["metrics"][0]
        >>> metric["successCondition"], metric["failureCondition"]
        ('result == "promote"', 'result == "reject"')
        >>> metric["initialDelay"], metric["interval"], metric["count"]
        ('600s', '12s', 200)
        >>> steps = rollout["spec"]["strategy"]["canary"]["steps"]
        >>> steps[0], steps[1]["analysis"]["templates"]
        ({'setWeight': 1}, [{'templateName': 'model-server-judge-step-0'}])
    """
    options = options or ExportOptions()
    if options.rollout_id is not None:
        raise ValueError(
            "rollout_id: Argo's rollout id is the canary's pod-template hash; "
            "the option is for Flagger"
        )
    interval = options.interval_seconds or look_interval_seconds(plan)
    ns = ("namespace", "=", options.namespace)
    hash_label = "rollouts_pod_template_hash"  # the pod label, as Prometheus spells it
    settings = judge_settings(
        plan,
        options,
        [ns, (hash_label, "=", "{{args.canary-hash}}")],
        [ns, (hash_label, "=", "{{args.stable-hash}}")],
    )
    templates: list[dict[str, Any]] = []
    canary_steps: list[dict[str, Any]] = []
    for step in analysed_steps(plan):
        name = f"{options.name}-judge-step-{step.index}"
        count = step.count(interval)
        metric: dict[str, Any] = {"name": "canary-judge"}
        if step.wait_seconds:
            metric["initialDelay"] = f"{step.wait_seconds}s"
        metric.update(
            {
                "interval": f"{interval}s",
                "count": count,
                # "continue" is Inconclusive: allowed on every look, so only the end of
                # the bake (count reached) leaves the metric Inconclusive.
                "inconclusiveLimit": count,
                "failureLimit": 0,
                "consecutiveSuccessLimit": 1,
                "successCondition": 'result == "promote"',
                "failureCondition": 'result == "reject"',
                "provider": {
                    "web": {
                        "method": "POST",
                        "url": f"{options.service_url}/v1/rollouts/{options.name}-"
                        "{{args.canary-hash}}/measure",
                        "jsonBody": settings,
                        "jsonPath": "{$.decision}",
                        "timeoutSeconds": options.timeout_seconds,
                    }
                },
            }
        )
        templates.append(
            {
                "apiVersion": ARGO_API,
                "kind": "AnalysisTemplate",
                "metadata": _metadata(name, options),
                "spec": {
                    "args": [{"name": "canary-hash"}, {"name": "stable-hash"}],
                    "metrics": [metric],
                },
            }
        )
        canary_steps.append({"setWeight": step.weight})
        canary_steps.append(
            {
                "analysis": {
                    "templates": [{"templateName": name}],
                    "args": [
                        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                        {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                    ],
                }
            }
        )
    rollout = {
        "apiVersion": ARGO_API,
        "kind": "Rollout",
        "metadata": _metadata(options.name, options),
        "spec": {
            "selector": {"matchLabels": {"app": options.target}},
            "workloadRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": options.target,
                # The Deployment keeps serving until the Rollout's pods are up.
                "scaleDown": "progressively",
            },
            "strategy": {"canary": {"steps": canary_steps}},
        },
    }
    return [*templates, rollout]


def flagger_manifests(
    plan: PhasedRolloutPlan, options: ExportOptions | None = None
) -> list[dict[str, Any]]:
    """The plan as a Flagger ``Canary`` whose webhooks call the judge.

    Raises:
        ValueError: what `analysed_steps` refuses.

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> (canary,) = flagger_manifests(load_plan().phased_rollout)
        >>> canary["spec"]["analysis"]["stepWeights"], canary["spec"]["analysis"]["interval"]
        ([1, 5, 25, 50], '600s')
        >>> [h["type"] for h in canary["spec"]["analysis"]["webhooks"]]
        ['pre-rollout', 'rollout', 'confirm-traffic-increase', 'confirm-promotion', 'rollback']
    """
    options = options or ExportOptions()
    steps = analysed_steps(plan)
    interval = options.interval_seconds or max(
        [look_interval_seconds(plan), *(s.wait_seconds for s in steps)]
    )
    ns = ("namespace", "=", options.namespace)
    settings = judge_settings(
        plan,
        options,
        [ns, ("pod", "=~", f"{options.target}{_POD_SUFFIX}")],
        [ns, ("pod", "=~", f"{options.target}-primary{_POD_SUFFIX}")],
    )
    metadata = {"config": json.dumps(settings, separators=(",", ":"))}
    if options.rollout_id is not None:
        metadata["rollout"] = options.rollout_id
    webhooks = [
        {
            "name": f"canary-judge-{hook}",
            "type": hook,
            "url": f"{options.service_url}/v1/flagger/{hook}",
            "timeout": f"{options.timeout_seconds}s",
            "metadata": dict(metadata),
        }
        for hook in FLAGGER_HOOKS
    ]
    canary = {
        "apiVersion": FLAGGER_API,
        "kind": "Canary",
        "metadata": _metadata(options.name, options),
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.target},
            "service": {"port": options.port},
            "analysis": {
                "interval": f"{interval}s",
                # One failed check rolls back: the judge's "reject" is final.
                "threshold": 1,
                "stepWeights": [s.weight for s in steps],
                "webhooks": webhooks,
            },
        },
    }
    return [canary]


def weights(obj: Mapping[str, Any]) -> list[int]:
    """The canary weights of a generated Rollout or Canary, in order.

    Raises:
        ValueError: ``obj`` is neither.

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> weights(flagger_manifests(load_plan().phased_rollout)[0])
        [1, 5, 25, 50]
    """
    if obj.get("kind") == "Rollout":
        steps = obj["spec"]["strategy"]["canary"]["steps"]
        return [int(s["setWeight"]) for s in steps if "setWeight" in s]
    if obj.get("kind") == "Canary":
        return [int(w) for w in obj["spec"]["analysis"]["stepWeights"]]
    raise ValueError(f"weights: expected a Rollout or a Canary, got kind {obj.get('kind')!r}")


def to_yaml(objects: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """Objects as one multi-document YAML stream, keys in the order written.

    Examples:
        >>> print(to_yaml([{"kind": "A", "spec": {"x": 1}}, {"kind": "B"}], "# made here"), end="")
        # made here
        ---
        kind: A
        spec:
          x: 1
        ---
        kind: B
    """
    import yaml

    head = "".join(f"{line}\n" for line in header.splitlines())
    docs = "".join(
        "---\n" + yaml.safe_dump(dict(o), sort_keys=False, default_flow_style=False, width=100)
        for o in objects
    )
    return head + docs


def export(target: str, plan: PhasedRolloutPlan, options: ExportOptions | None = None) -> str:
    """The YAML that ``release-spec export TARGET`` writes.

    Raises:
        ValueError: an unknown target, or a plan the controller cannot express.

    Examples:
        >>> from release_spec.strategy.plan import load_plan
        >>> export("flagger", load_plan().phased_rollout).splitlines()[0]
        '# Generated by `release-spec export flagger`; edit the plan, not this file.'
    """
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {', '.join(TARGETS)}, got {target!r}")
    build = argo_manifests if target == "argo" else flagger_manifests
    header = f"# Generated by `release-spec export {target}`; edit the plan, not this file."
    return to_yaml(build(plan, options), header)
