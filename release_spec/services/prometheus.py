"""Counts for a look from Prometheus's HTTP API (``/api/v1/query``), read with httpx.

Each configured PromQL is either a counter selector, such as
``http_requests_total{track="canary"}``, which becomes
``sum(increase(<selector>[<window>]))``, or a full expression containing ``$window``,
which is replaced by the window (e.g. ``sum(increase(http_requests_total{code=~"5.."}[$window]))``).
The window runs from the previous look to now, in milliseconds, and the query is
evaluated at now. ``increase()`` extrapolates to the window's edges, so the values are
rounded to whole counts and errors and slow requests are capped at the requests.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from release_spec.judge import ArmCounts
from release_spec.services.rollouts import PrometheusArm, PrometheusConfig

__all__ = ["SourceError", "fetch_counts", "window_query"]


class SourceError(Exception):
    """Prometheus could not be queried or answered something unusable (HTTP 502)."""


def window_query(template: str, seconds: float) -> str:
    """The PromQL for one counter over a window of ``seconds``.

    Example:
        >>> window_query('http_requests_total{track="canary"}', 30)
        'sum(increase(http_requests_total{track="canary"}[30000ms]))'
        >>> window_query("sum(rate(x[$window])) * 30", 30.0005)
        'sum(rate(x[30001ms])) * 30'
    """
    duration = f"{max(1, math.ceil(seconds * 1000 - 1e-6))}ms"
    if "$window" in template:
        return template.replace("$window", duration)
    return f"sum(increase({template}[{duration}]))"


def _value(body: Any, query: str) -> float:
    """The sum of an instant query's result (an empty vector is 0)."""
    try:
        if body["status"] != "success":
            raise SourceError(f"Prometheus refused {query!r}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            values = [float(data["result"][1])]
        elif data["resultType"] == "vector":
            values = [float(series["value"][1]) for series in data["result"]]
        else:
            raise SourceError(f"{query!r} returned a {data['resultType']}, not a vector")
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise SourceError(f"unexpected answer from Prometheus for {query!r}: {e!r}") from e
    total = sum(values)
    if not math.isfinite(total) or total < 0:
        raise SourceError(f"{query!r} gave {total!r}, not a count")
    return total


def _arm(
    client: httpx.Client, source: PrometheusConfig, arm: PrometheusArm, end: float, seconds: float
) -> ArmCounts:
    got: dict[str, int] = {}
    for name in ("requests", "errors", "slow"):
        template = getattr(arm, name)
        if template is None:
            got[name] = 0
            continue
        query = window_query(template, seconds)
        try:
            response = client.get(
                f"{source.url.rstrip('/')}/api/v1/query", params={"query": query, "time": end}
            )
        except httpx.HTTPError as e:
            raise SourceError(f"cannot reach Prometheus at {source.url}: {e}") from e
        if response.status_code >= 500:
            raise SourceError(f"Prometheus answered {response.status_code} for {query!r}")
        try:
            body = response.json()
        except ValueError as e:
            raise SourceError(f"Prometheus answered non-JSON for {query!r}") from e
        got[name] = round(_value(body, query))
    requests = got["requests"]
    return ArmCounts(requests, min(got["errors"], requests), min(got["slow"], requests))


def fetch_counts(
    source: PrometheusConfig, start: float, end: float, *, client: httpx.Client | None = None
) -> tuple[ArmCounts, ArmCounts]:
    """``(canary, baseline)`` counts over ``[start, end]`` (seconds since the epoch).

    Raises:
        SourceError: Prometheus unreachable, an error answer, or a value that is not a
            count.
    """
    seconds = end - start
    own = client is None
    c = client or httpx.Client(timeout=source.timeout_seconds)
    try:
        return (
            _arm(c, source, source.canary, end, seconds),
            _arm(c, source, source.baseline, end, seconds),
        )
    finally:
        if own:
            c.close()
