"""The judge service's HTTP API (FastAPI): rollouts, looks, Prometheus, Flagger, Kayenta.

``create_app(store)`` builds the ASGI app; ``release-spec judge serve`` runs it on
uvicorn. The contract, versioned under ``/v1`` (OpenAPI at ``/docs``):

* ``PUT /v1/rollouts/{id}``: 201 created, 200 reconfigured or unchanged; 409 closed,
  or its judge settings changed after looks were counted; 422 bad body.
* ``DELETE /v1/rollouts/{id}``: 200 closed (idempotent); 404.
* ``GET /v1/rollouts/{id}``: 200 the verdict; 404.
* ``POST /v1/rollouts/{id}/looks``: 200 the verdict (a retried ``look_id`` counts
  once and gets the first answer); 404; 409 closed, or look_id reused with other
  counts; 422.
* ``POST /v1/rollouts/{id}/measure``: 200 the verdict; 404; 409 closed or no
  Prometheus source; 422; 502 Prometheus failed.
* ``POST /v1/flagger/{hook}``: 200 go; 409 no; 404 unknown hook or rollout; 422.
* ``POST /v1/kayenta/judge``: 200 a CanaryJudgeResult; 422.
* ``GET /healthz``, ``GET /metrics``: 200.

A refused request changes nothing. Errors have a JSON body ``{"detail": ...}``.

``POST /v1/rollouts/{id}/looks``, the endpoint every look goes through, is served by a
plain ASGI handler in front of FastAPI's stack (`_JudgeApp`): the same model (`LookBody`), the
same answers and 422 locations, at a fraction of FastAPI's per-request cost; its
FastAPI route documents it in the OpenAPI schema and answers what the handler passes
on (an id the pattern refuses).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastapi import Body, FastAPI, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from release_spec.services import flagger, kayenta
from release_spec.services.prometheus import SourceError, fetch_counts
from release_spec.services.rollouts import (
    Answer,
    ConflictError,
    InvalidError,
    NotFoundError,
    PrometheusArm,
    PrometheusConfig,
    RolloutConfig,
    RolloutService,
)
from release_spec.services.store import Store
from release_spec.strategy.judge import ArmCounts, JudgeConfig

__all__ = ["create_app"]

T = TypeVar("T")
_ID_PATTERN = r"^[A-Za-z0-9._:~-]+$"
_ID_MAX = 200
RolloutId = Annotated[
    str,
    Path(min_length=1, max_length=_ID_MAX, pattern=_ID_PATTERN, description="rollout id"),
]
#: The largest count a look (or min_canary_requests) may carry: 2**53, past which the
#: judge's float arithmetic no longer tells n from n + 1 (a count that large is a
#: client's overflow or unit mistake, not traffic).
COUNT_MAX = 2**53
Count = Annotated[StrictInt, Field(ge=0, le=COUNT_MAX)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueriesBody(_Strict):
    """PromQL for one arm's counters: selectors or expressions with ``$window``."""

    requests: str = Field(min_length=1)
    errors: str = Field(min_length=1)
    slow: str | None = Field(default=None, min_length=1)


class PrometheusBody(_Strict):
    """A Prometheus source for ``POST /measure``."""

    # Printable ASCII only: a space or control character in the URL is a client mistake
    # (httpx would refuse it at the first look, not at PUT).
    url: str = Field(
        pattern=r"^https?://[!-~]+$", description="base URL, e.g. http://127.0.0.1:9090"
    )
    canary: QueriesBody
    baseline: QueriesBody
    timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)


class RolloutBody(_Strict):
    """A rollout's settings."""

    alpha: Fraction = 0.05
    margin: Fraction = 0.03
    metrics: list[Literal["errors", "slow"]] = Field(default=["errors"], min_length=1)
    slow_margin: Fraction | None = None
    slo_seconds: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    min_canary_requests: Count = 0
    prometheus: PrometheusBody | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RolloutBody:
        if "errors" not in self.metrics:
            raise ValueError("metrics must include 'errors'")
        slow = "slow" in self.metrics
        if slow and self.slow_margin is None:
            raise ValueError("slow_margin is required when metrics include 'slow'")
        if not slow and self.slow_margin is not None:
            raise ValueError("slow_margin is given but metrics do not include 'slow'")
        if slow and self.prometheus is not None:
            for arm in ("canary", "baseline"):
                if getattr(self.prometheus, arm).slow is None:
                    raise ValueError(f"prometheus.{arm}.slow is required when judging 'slow'")
        return self

    def config(self) -> RolloutConfig:
        """The domain configuration."""
        p = self.prometheus
        source = None
        if p is not None:
            source = PrometheusConfig(
                url=p.url,
                canary=PrometheusArm(p.canary.requests, p.canary.errors, p.canary.slow),
                baseline=PrometheusArm(p.baseline.requests, p.baseline.errors, p.baseline.slow),
                timeout_seconds=p.timeout_seconds,
            )
        judge = JudgeConfig(
            alpha=self.alpha,
            margin=self.margin,
            slow_margin=self.slow_margin,
            min_canary_requests=self.min_canary_requests,
        )
        return RolloutConfig(judge, self.slo_seconds, source)


class MeasureBody(RolloutBody):
    """Settings to create the rollout with if absent; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


class ArmBody(_Strict):
    """One arm's counts since the previous look."""

    requests: Count
    errors: Count
    slow: Count = 0

    @model_validator(mode="after")
    def _within(self) -> ArmBody:
        for name in ("errors", "slow"):
            if getattr(self, name) > self.requests:
                raise ValueError(f"{name} must not exceed requests")
        return self


class LookBody(_Strict):
    """One look: an id unique within the rollout, and both arms' counts."""

    look_id: str = Field(min_length=1, max_length=200)
    canary: ArmBody
    baseline: ArmBody


class FlaggerPayload(BaseModel):
    """Flagger's webhook payload (other fields are ignored)."""

    name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    phase: str | None = None
    checksum: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


def _json(text: str, status: int = 200) -> Response:
    return Response(content=text, status_code=status, media_type="application/json")


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.looks = Counter(
            "release_spec_judge_looks",
            "Looks posted, by result (counted, duplicate, refused, no_sample).",
            ["result"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "release_spec_judge_decisions",
            "Decisions after each counted look.",
            ["decision"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "release_spec_judge_request_duration_seconds",
            "Time the service took to answer, by route.",
            ["method", "route"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        # Labelled children looked up once, not on every request.
        self.look_results = {
            r: self.looks.labels(r) for r in ("counted", "duplicate", "refused", "no_sample")
        }
        self.decision_counts = {
            d: self.decisions.labels(d) for d in ("continue", "promote", "reject")
        }

    def count(self, answer: Answer) -> None:
        """Count a look's answer (and its decision, if it was counted)."""
        result = "counted" if answer.counted else "no_sample" if answer.no_sample else "duplicate"
        self.look_results[result].inc()
        if answer.decision is not None:
            self.decision_counts[answer.decision].inc()


class _Timing:
    """Pure ASGI middleware timing every HTTP request by route template.

    (Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per request.)
    """

    def __init__(self, app: Any, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram
        self._children: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            key = (scope["method"], getattr(scope.get("route"), "path", "unmatched"))
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.histogram.labels(*key)
            child.observe(time.perf_counter() - start)


_LOOK_BODY = TypeAdapter(LookBody)
_LOOKS_PREFIX, _LOOKS_SUFFIX = "/v1/rollouts/", "/looks"
_MAX_BODY = 1 << 20  # bytes; a look is about 120
_GROUP_COMMIT = 64  # looks per transaction at most


def _detail(status: int, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"detail": message}).encode()


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by its text.

    Python's JSON parser reads ``NaN`` and ``Infinity``; a 422 echoing such an input
    must still be valid JSON (strict JSON rendering refuses them).

    Examples:
        >>> _finite({"input": [float("nan"), 1.5, {"x": float("inf")}]})
        {'input': ['nan', 1.5, {'x': 'inf'}]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _invalid_body(error: ValidationError) -> tuple[int, bytes]:
    """A 422 shaped as FastAPI's: each error's ``loc`` starts with ``"body"``."""
    errors = []
    for e in error.errors(include_url=False):
        item: dict[str, Any] = {**e, "loc": ["body", *e["loc"]]}
        if isinstance(item.get("input"), bytes):
            item["input"] = item["input"].decode("utf-8", "replace")
        if "ctx" in item:
            item["ctx"] = {k: str(v) for k, v in item["ctx"].items()}
        errors.append(item)
    return 422, json.dumps({"detail": _finite(jsonable_encoder(errors))}).encode()


class _JudgeApp(FastAPI):
    """FastAPI, with ``POST /v1/rollouts/{id}/looks`` answered ahead of its stack.

    Every look goes through that endpoint, and FastAPI's per-request machinery (its
    middleware layers, routing, dependency resolution, validation of the body through
    the route, response rendering) costs several times what counting the look does.
    `__call__` answers it in plain ASGI instead: the raw body parsed once with
    pydantic into the `LookBody` the OpenAPI schema documents (the same rules, the
    same 422 locations), the same ``look_answer`` the FastAPI route calls, the stored
    JSON text sent as it is, the time recorded under the route's template. Any other
    request, including a look for an id the pattern refuses, goes to FastAPI.
    """

    look_answer: Callable[[str, LookBody], Awaitable[tuple[int, bytes]]] | None = None
    look_timer: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.look_answer is not None and scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path.startswith(_LOOKS_PREFIX) and path.endswith(_LOOKS_SUFFIX):
                rollout_id = path[len(_LOOKS_PREFIX) : -len(_LOOKS_SUFFIX)]
                if flagger.ROLLOUT_ID.match(rollout_id):
                    start = time.perf_counter()
                    try:
                        await self._look(self.look_answer, rollout_id, receive, send)
                    finally:
                        self.look_timer.observe(time.perf_counter() - start)
                    return
        await super().__call__(scope, receive, send)

    @staticmethod
    async def _look(
        answer: Callable[[str, LookBody], Awaitable[tuple[int, bytes]]],
        rollout_id: str,
        receive: Any,
        send: Any,
    ) -> None:
        raw = await _read_body(receive)
        if raw is None:
            status, content = _detail(413, f"a look's body is at most {_MAX_BODY} bytes")
        elif not raw:  # as FastAPI answers a missing body
            missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
            status, content = 422, json.dumps({"detail": [missing]}).encode()
        else:
            try:
                body = _LOOK_BODY.validate_json(raw)
            except ValidationError as e:
                status, content = _invalid_body(e)
            else:
                status, content = await answer(rollout_id, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Any) -> bytes | None:
    """The request body, or None past `_MAX_BODY` bytes."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def create_app(
    store: Store,
    *,
    fetch: Callable[..., tuple[ArmCounts, ArmCounts]] = fetch_counts,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The ASGI app serving the judge over ``store``.

    Args:
        store: durable state (`release_spec.services.store.open_store`).
        fetch: reads counts from Prometheus (tests pass a fake).
        clock: seconds since the epoch (tests pass a fake).
    """
    service = RolloutService(store, clock=clock)
    metrics = _Metrics()
    app = _JudgeApp(
        title="release-spec canary judge",
        version="1",
        description="Anytime-valid canary judging for Argo Rollouts, Flagger and Kayenta.",
    )
    app.state.service = service
    app.state.metrics = metrics

    async def call(fn: Callable[..., T], *args: Any) -> T:
        # SQLite calls take microseconds and run in line; PostgreSQL's block on the
        # network and go to a worker thread so the event loop keeps serving.
        if store.blocking:
            return await anyio.to_thread.run_sync(partial(fn, *args))
        return fn(*args)

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, except that a NaN or infinite input is echoed as text.
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": f"unknown rollout {exc.args[0]!r}"}, status_code=404)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidError)
    async def _invalid(_: Request, exc: InvalidError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(SourceError)
    async def _source(_: Request, exc: SourceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """The service's own metrics in Prometheus exposition format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.put("/v1/rollouts/{rollout_id}")
    async def put_rollout(rollout_id: RolloutId, body: RolloutBody) -> Response:
        """Create (201) or reconfigure (200) a rollout."""
        created, text = await call(service.put, rollout_id, body.config())
        return _json(text, 201 if created else 200)

    @app.get("/v1/rollouts/{rollout_id}")
    async def get_rollout(rollout_id: RolloutId) -> Response:
        """The latest verdict: decision, p_value, bounds, looks, counts, reason."""
        return _json(await call(service.get, rollout_id))

    @app.delete("/v1/rollouts/{rollout_id}")
    async def delete_rollout(rollout_id: RolloutId) -> Response:
        """Close a rollout: its verdict stays readable, further looks are refused."""
        return _json(await call(service.delete, rollout_id))

    # Group commit (SQLite): looks that arrive in the same turn of the event loop are
    # counted in one transaction, flushed as soon as the loop has read them all; each
    # is answered after the commit that makes it durable.
    pending: list[tuple[tuple[str, str, ArmCounts, ArmCounts], asyncio.Future[Any]]] = []

    def flush() -> None:
        batch = pending[:_GROUP_COMMIT]
        del pending[:_GROUP_COMMIT]
        if pending:
            asyncio.get_running_loop().call_soon(flush)
        try:
            results: list[Any] = service.look_many([look for look, _ in batch])
        except Exception as e:
            results = [e] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.cancelled():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def count_look(look: tuple[str, str, ArmCounts, ArmCounts]) -> Answer:
        if store.blocking:  # PostgreSQL: one transaction per look, on a worker thread
            return await anyio.to_thread.run_sync(partial(service.look, *look))
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        if not pending:
            asyncio.get_running_loop().call_soon(flush)
        pending.append((look, future))
        return await future

    async def look_answer(rollout_id: str, body: LookBody) -> tuple[int, bytes]:
        c, b = body.canary, body.baseline
        try:
            answer = await count_look(
                (
                    rollout_id,
                    body.look_id,
                    ArmCounts(c.requests, c.errors, c.slow),
                    ArmCounts(b.requests, b.errors, b.slow),
                )
            )
        except NotFoundError as e:
            metrics.look_results["refused"].inc()
            return _detail(404, f"unknown rollout {e.args[0]!r}")
        except ConflictError as e:
            metrics.look_results["refused"].inc()
            return _detail(409, str(e))
        metrics.count(answer)
        return 200, answer.body.encode()

    @app.post("/v1/rollouts/{rollout_id}/looks")
    async def post_look(rollout_id: RolloutId, body: LookBody) -> Response:
        """Count one look (counts since the previous look); idempotent by look_id."""
        status, content = await look_answer(rollout_id, body)
        return Response(content=content, status_code=status, media_type="application/json")

    async def measure(rollout_id: str, create: RolloutConfig | None) -> str:
        def fetch_in_thread(source: PrometheusConfig, start: float, end: float) -> Any:
            return fetch(source, start, end)

        # Prometheus is a network call: never on the event loop.
        answer = await anyio.to_thread.run_sync(
            partial(service.measure, rollout_id, fetch_in_thread, create=create)
        )
        metrics.count(answer)
        return answer.body

    @app.post("/v1/rollouts/{rollout_id}/measure")
    async def post_measure(
        rollout_id: RolloutId, body: Annotated[MeasureBody | None, Body()] = None
    ) -> Response:
        """Take a look from Prometheus over the window since the previous look.

        An optional body (the PUT body) creates the rollout if it does not exist.
        """
        return _json(await measure(rollout_id, None if body is None else body.config()))

    @app.post("/v1/flagger/{hook}")
    async def flagger_hook(hook: str, payload: FlaggerPayload) -> Response:
        """Answer a Flagger webhook: 200 for go, 409 for no (see release_spec.services.flagger)."""
        if hook not in flagger.HOOKS:
            return JSONResponse(
                {"detail": f"unknown hook {hook!r}; one of {list(flagger.HOOKS)}"}, status_code=404
            )
        try:
            rid = flagger.rollout_id(
                payload.name, payload.namespace, payload.metadata, payload.checksum
            )
        except ValueError as e:
            raise InvalidError(str(e)) from None
        if hook in ("post-rollout", "event"):
            return JSONResponse({"rollout": rid, "hook": hook, "go": True})
        create = None
        if "config" in payload.metadata:
            try:
                create = MeasureBody.model_validate_json(payload.metadata["config"]).config()
            except ValueError as e:
                raise InvalidError(f"metadata.config: {e}") from None
            await call(service.put, rid, create)
        if hook == "rollout" and (await call(service.config, rid)).prometheus is not None:
            text = await measure(rid, None)
        else:
            text = await call(service.get, rid)
        status, answer = flagger.answer(hook, json.loads(text))
        return JSONResponse(answer, status_code=status)

    @app.post("/v1/kayenta/judge")
    async def kayenta_judge(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Kayenta remote judge: a CanaryJudgeResult for a metricSetPairList."""
        return kayenta.judge_metric_set_pairs(body)

    app.look_answer = look_answer
    app.look_timer = metrics.latency.labels("POST", "/v1/rollouts/{rollout_id}/looks")
    app.add_middleware(_Timing, histogram=metrics.latency)
    return app
