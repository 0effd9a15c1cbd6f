"""Counts for a look from Prometheus's HTTP API (``/api/v1/query``), read with httpx.

Each configured PromQL is either a counter selector, such as
``http_requests_total{track="canary"}``, which becomes
``sum(increase(<selector>[<window>]))``, or a full expression containing ``$window``,
which is replaced by the window (e.g. ``sum(increase(http_requests_total{code=~"5.."}[$window]))``).
The window runs from the previous look to now, in milliseconds, and the query is
evaluated at now. ``increase()`` extrapolates to the window's edges, so the values are
rounded to whole counts and errors and slow requests are capped at the requests.

``increase()`` needs two samples of a series inside the window; with fewer (a window
shorter than about two scrape intervals, or a late scrape) it answers an empty vector.
Read as zero, the window's requests would never be judged, since the next window
starts where this one ends. So an empty answer for a series that exists (a selector
whose raw series has a sample now), or for any ``$window`` expression, raises
`~release_spec.services.rollouts.NoSampleError`: the service counts no look and keeps
the window open, and the next look covers it. A selector with no series at all (an
error counter never incremented yet) is a true zero.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import httpx

from release_spec.services.rollouts import NoSampleError, PrometheusArm, PrometheusConfig
from release_spec.strategy.judge import ArmCounts

__all__ = ["MAX_ANSWER_BYTES", "SourceError", "fetch_counts", "public_url", "window_query"]


class SourceError(Exception):
    """Prometheus could not be queried or answered something unusable (HTTP 502)."""


def window_query(template: str, seconds: float) -> str:
    """The PromQL for one counter over a window of ``seconds``.

    Examples:
        >>> window_query('http_requests_total{track="canary"}', 30)
        'sum(increase(http_requests_total{track="canary"}[30000ms]))'
        >>> window_query("sum(rate(x[$window])) * 30", 30.0005)
        'sum(rate(x[30001ms])) * 30'
    """
    duration = f"{max(1, math.ceil(seconds * 1000 - 1e-6))}ms"
    if "$window" in template:
        return template.replace("$window", duration)
    return f"sum(increase({template}[{duration}]))"


def _value(body: Any, query: str) -> float | None:
    """The sum of an instant query's result; None for an empty vector."""
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
    if not values:
        return None
    total = sum(values)
    if not math.isfinite(total) or total < 0:
        raise SourceError(f"{query!r} gave {total!r}, not a count")
    return total


#: The largest answer read from Prometheus (an instant query's sum is a few hundred bytes).
MAX_ANSWER_BYTES = 16 << 20


def public_url(url: str) -> str:
    """``url`` without its user information, for messages (credentials never leave).

    Examples:
        >>> public_url("http://admin:s3cret@prometheus:9090/")
        'http://prometheus:9090/'
        >>> public_url("http://127.0.0.1:9090")
        'http://127.0.0.1:9090'
    """
    return re.sub(r"//[^/@]*@", "//", url, count=1)


def _query(client: httpx.Client, source: PrometheusConfig, query: str, end: float) -> float | None:
    # httpx's timeout bounds each read, not the whole answer: a server trickling its
    # body would hold the look (and a worker thread) forever, so the body is read
    # against a deadline and a size cap.
    deadline = time.monotonic() + source.timeout_seconds
    where = public_url(source.url)
    try:
        with client.stream(
            "GET", f"{source.url.rstrip('/')}/api/v1/query", params={"query": query, "time": end}
        ) as response:
            if response.status_code >= 500:
                raise SourceError(f"Prometheus answered {response.status_code} for {query!r}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise SourceError(
                        f"Prometheus at {where} answered more than {MAX_ANSWER_BYTES} bytes "
                        f"for {query!r}"
                    )
                if time.monotonic() > deadline:
                    raise SourceError(
                        f"Prometheus at {where} took over {source.timeout_seconds:g} s "
                        f"to answer {query!r}"
                    )
                chunks.append(chunk)
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise SourceError(f"cannot reach Prometheus at {where}: {public_url(str(e))}") from e
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as e:
        raise SourceError(f"Prometheus answered non-JSON for {query!r}") from e
    return _value(body, query)


def _arm(
    client: httpx.Client,
    source: PrometheusConfig,
    arm: PrometheusArm,
    label: str,
    end: float,
    seconds: float,
) -> ArmCounts:
    got: dict[str, int] = {}
    for name in ("requests", "errors", "slow"):
        template = getattr(arm, name)
        if template is None:
            got[name] = 0
            continue
        query = window_query(template, seconds)
        value = _query(client, source, query, end)
        if value is None:
            # No sample: a series that does not exist is a zero; one that exists had
            # too few samples in the window for increase(), and an expression cannot
            # tell the two apart.
            if "$window" in template or _query(client, source, template, end) is not None:
                raise NoSampleError(
                    f"no sample for {label}.{name} over the last {seconds:.3g} s "
                    f"({query!r} answered an empty vector: fewer than two scrapes in the "
                    "window)"
                )
            value = 0.0
        got[name] = round(value)
    requests = got["requests"]
    return ArmCounts(requests, min(got["errors"], requests), min(got["slow"], requests))


def fetch_counts(
    source: PrometheusConfig, start: float, end: float, *, client: httpx.Client | None = None
) -> tuple[ArmCounts, ArmCounts]:
    """``(canary, baseline)`` counts over ``[start, end]`` (seconds since the epoch).

    Raises:
        SourceError: Prometheus unreachable, an error answer, or a value that is not a
            count.
        NoSampleError: a query had no sample in the window (see the module's notes).
    """
    seconds = end - start
    own = client is None
    c = client or httpx.Client(timeout=source.timeout_seconds)
    try:
        return (
            _arm(c, source, source.canary, "canary", end, seconds),
            _arm(c, source, source.baseline, "baseline", end, seconds),
        )
    finally:
        if own:
            c.close()
