"""Contract tests of the judge service (FastAPI TestClient), on SQLite and on PostgreSQL.

Every endpoint and refusal; Hypothesis checks that the service decides as
`CanaryJudge` fed the same looks and that retries never change state. The
``backend`` fixture runs each test against both stores (PostgreSQL: a real server
started from Debian's binaries, see tests/_postgres.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _postgres import postgres_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from release_spec import cli
from release_spec.services import flagger, kayenta
from release_spec.services.prometheus import SourceError, fetch_counts, window_query
from release_spec.services.rollouts import (
    NoSampleError,
    PrometheusArm,
    PrometheusConfig,
    verdict_body,
    verdict_json,
)
from release_spec.services.store import PostgresStore, SQLiteStore, Store
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig, Verdict

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from release_spec.services.app import create_app

GOOD = {"requests": 4000, "errors": 80}
BASE = {"requests": 76000, "errors": 1520}
SOURCE = {
    "url": "http://127.0.0.1:9",
    "canary": {"requests": 'req{track="canary"}', "errors": 'err{track="canary"}'},
    "baseline": {"requests": 'req{track="stable"}', "errors": 'err{track="stable"}'},
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A factory of empty stores of the parametrised kind."""
    if request.param == "sqlite":
        counter = iter(range(10**9))
        return lambda: SQLiteStore(tmp_path / f"judge-{next(counter)}.db")
    url = request.getfixturevalue("pg_url")

    def fresh() -> Store:
        store = PostgresStore(url)
        with store.transaction() as tx:
            tx._cur.execute("TRUNCATE rollouts, looks")
        return store

    return fresh


Fetch = Callable[[PrometheusConfig, float, float], tuple[ArmCounts, ArmCounts]]


class Service:
    """A TestClient on a fresh store, with a fake clock and a scripted Prometheus."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = FakeClock()
        self.windows: list[tuple[float, float]] = []
        self.answers: list[tuple[ArmCounts, ArmCounts] | Exception] = []
        self.client = TestClient(create_app(store, fetch=self._fetch, clock=self.clock))

    def _fetch(self, source: PrometheusConfig, start: float, end: float) -> Any:
        self.windows.append((start, end))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def look(self, rid: str, look_id: str, canary: dict, baseline: dict) -> httpx.Response:
        body = {"look_id": look_id, "canary": canary, "baseline": baseline}
        return self.client.post(f"/v1/rollouts/{rid}/looks", json=body)


@pytest.fixture
def svc(backend: Callable[[], Store]) -> Iterator[Service]:
    s = Service(backend())
    yield s
    s.store.close()


def _snapshot(svc: Service, rid: str) -> tuple[Any, ...]:
    row = svc.store.read(rid)
    return (row, svc.store.counted(rid))


# ---------------------------------------------------------------- rollouts


def test_put_creates_then_is_idempotent_then_reconfigures_until_the_first_look(
    svc: Service,
) -> None:
    r = svc.client.put("/v1/rollouts/r1", json={"alpha": 0.05, "margin": 0.02})
    assert r.status_code == 201
    assert r.json()["decision"] == "continue"
    assert r.json()["bounds"] == [-1.0, 1.0]
    assert (
        svc.client.put("/v1/rollouts/r1", json={"alpha": 0.05, "margin": 0.02}).status_code == 200
    )
    r = svc.client.put(
        "/v1/rollouts/r1",
        json={"alpha": 0.1, "margin": 0.02, "metrics": ["errors", "slow"], "slow_margin": 0.05},
    )
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["metrics"]] == ["errors", "slow"]
    assert svc.look("r1", "a", GOOD, BASE).status_code == 200
    before = _snapshot(svc, "r1")
    r = svc.client.put("/v1/rollouts/r1", json={"alpha": 0.05, "margin": 0.02})
    assert r.status_code == 409
    assert "has counted 1 looks" in r.json()["detail"]
    assert _snapshot(svc, "r1") == before
    # The Prometheus source is not part of what a look means: it may change any time.
    r = svc.client.put(
        "/v1/rollouts/r1",
        json={
            "alpha": 0.1,
            "margin": 0.02,
            "metrics": ["errors", "slow"],
            "slow_margin": 0.05,
            "prometheus": {
                **SOURCE,
                "canary": {**SOURCE["canary"], "slow": "s"},
                "baseline": {**SOURCE["baseline"], "slow": "s"},
            },
        },
    )
    assert r.status_code == 200
    assert r.json()["looks"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alpha": 1.5}, ["body", "alpha"]),
        ({"alpha": "x"}, ["body", "alpha"]),
        ({"margin": 0}, ["body", "margin"]),
        ({"metrics": ["latency"]}, ["body", "metrics", 0]),
        ({"min_canary_requests": -1}, ["body", "min_canary_requests"]),
        ({"min_canary_requests": 1.5}, ["body", "min_canary_requests"]),
        ({"bogus": 1}, ["body", "bogus"]),
        ({"prometheus": {**SOURCE, "url": "ftp://x"}}, ["body", "prometheus", "url"]),
        (
            {"prometheus": {**SOURCE, "canary": {"errors": "e"}}},
            ["body", "prometheus", "canary", "requests"],
        ),
    ],
)
def test_put_refuses_a_bad_body_with_422_naming_the_field(
    svc: Service, body: dict, field: list
) -> None:
    r = svc.client.put("/v1/rollouts/r1", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == field
    assert svc.store.read("r1") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metrics": ["slow"]}, "metrics must include 'errors'"),
        ({"metrics": ["errors", "slow"]}, "slow_margin is required"),
        ({"slow_margin": 0.1}, "metrics do not include 'slow'"),
        (
            {"metrics": ["errors", "slow"], "slow_margin": 0.1, "prometheus": SOURCE},
            "prometheus.canary.slow is required",
        ),
    ],
)
def test_put_refuses_inconsistent_settings(svc: Service, body: dict, message: str) -> None:
    r = svc.client.put("/v1/rollouts/r1", json=body)
    assert r.status_code == 422
    assert message in r.json()["detail"][0]["msg"]


def test_rollout_id_must_be_a_plain_token(svc: Service) -> None:
    assert svc.client.put("/v1/rollouts/a%20b", json={}).status_code == 422
    assert svc.client.put("/v1/rollouts/" + "x" * 201, json={}).status_code == 422
    assert svc.client.put("/v1/rollouts/ns.name:abc-1", json={}).status_code == 201


def test_get_and_delete(svc: Service) -> None:
    assert svc.client.get("/v1/rollouts/nope").status_code == 404
    assert svc.client.get("/v1/rollouts/nope").json()["detail"] == "unknown rollout 'nope'"
    assert svc.client.delete("/v1/rollouts/nope").status_code == 404
    svc.client.put("/v1/rollouts/r1", json={"margin": 0.02})
    svc.look("r1", "a", GOOD, BASE)
    body = svc.client.get("/v1/rollouts/r1").json()
    assert set(body) >= {
        "decision",
        "p_value",
        "bounds",
        "looks",
        "canary_requests",
        "baseline_requests",
        "reason",
    }
    assert (body["decision"], body["looks"], body["canary_requests"]) == ("promote", 1, 4000)
    assert body["baseline_requests"] == 76000
    r = svc.client.delete("/v1/rollouts/r1")
    assert r.status_code == 200
    assert r.json()["closed"] is True
    assert r.json()["decision"] == "promote"
    assert svc.client.delete("/v1/rollouts/r1").json() == r.json()
    assert svc.client.get("/v1/rollouts/r1").json() == r.json()
    before = _snapshot(svc, "r1")
    refused = svc.look("r1", "b", GOOD, BASE)
    assert refused.status_code == 409
    assert "closed" in refused.json()["detail"]
    assert svc.client.put("/v1/rollouts/r1", json={"margin": 0.02}).status_code == 409
    assert _snapshot(svc, "r1") == before


# ---------------------------------------------------------------- looks


def test_look_is_idempotent_by_look_id(svc: Service) -> None:
    svc.client.put("/v1/rollouts/r1", json={"margin": 0.02})
    first = svc.look("r1", "a", {"requests": 100, "errors": 1}, {"requests": 1900, "errors": 20})
    assert first.status_code == 200
    assert first.json()["look_id"] == "a"
    second = svc.look("r1", "b", GOOD, BASE)
    again = svc.look("r1", "a", {"requests": 100, "errors": 1}, {"requests": 1900, "errors": 20})
    assert again.status_code == 200
    assert again.json() == first.json()  # the first answer, not the current verdict
    assert svc.client.get("/v1/rollouts/r1").json()["looks"] == 2
    assert second.json()["canary_requests"] == 4100
    before = _snapshot(svc, "r1")
    clash = svc.look("r1", "a", {"requests": 100, "errors": 2}, {"requests": 1900, "errors": 20})
    assert clash.status_code == 409
    assert "already counted with other counts" in clash.json()["detail"]
    assert _snapshot(svc, "r1") == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"canary": GOOD, "baseline": BASE}, ["body", "look_id"]),
        ({"look_id": "", "canary": GOOD, "baseline": BASE}, ["body", "look_id"]),
        ({"look_id": "a", "baseline": BASE}, ["body", "canary"]),
        (
            {"look_id": "a", "canary": {"requests": 10, "errors": 11}, "baseline": BASE},
            ["body", "canary"],
        ),
        (
            {"look_id": "a", "canary": {"requests": 10, "errors": 1, "slow": 11}, "baseline": BASE},
            ["body", "canary"],
        ),
        (
            {"look_id": "a", "canary": {"requests": -1, "errors": 0}, "baseline": BASE},
            ["body", "canary", "requests"],
        ),
        (
            {"look_id": "a", "canary": {"requests": 10, "errors": True}, "baseline": BASE},
            ["body", "canary", "errors"],
        ),
        (
            {"look_id": "a", "canary": {"requests": 10.5, "errors": 1}, "baseline": BASE},
            ["body", "canary", "requests"],
        ),
        (
            {"look_id": "a", "canary": GOOD, "baseline": {"requests": 10}},
            ["body", "baseline", "errors"],
        ),
        ({"look_id": "a", "canary": GOOD, "baseline": {**BASE, "x": 1}}, ["body", "baseline", "x"]),
    ],
)
def test_look_refuses_a_bad_body_with_422_naming_the_field(
    svc: Service, body: dict, loc: list
) -> None:
    svc.client.put("/v1/rollouts/r1", json={})
    before = _snapshot(svc, "r1")
    r = svc.client.post("/v1/rollouts/r1/looks", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == loc
    assert _snapshot(svc, "r1") == before


def test_look_on_an_unknown_rollout_is_404(svc: Service) -> None:
    assert svc.look("nope", "a", GOOD, BASE).status_code == 404
    assert svc.store.read("nope") is None


def test_concurrent_looks_share_commits_and_each_counts_once(
    backend: Callable[[], Store],
) -> None:
    """40 looks posted at once over 8 rollouts: all answered, each counted once."""
    store = backend()
    app = create_app(store)
    transactions = 0
    real = store.transaction

    def counting() -> Any:
        nonlocal transactions
        transactions += 1
        return real()

    store.transaction = counting  # type: ignore[method-assign]

    async def post_all() -> tuple[list[httpx.Response], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://judge") as client:
            for k in range(8):
                await client.put(f"/v1/rollouts/c{k}", json={"margin": 0.02})
            made = transactions
            looks = [
                client.post(
                    f"/v1/rollouts/c{i % 8}/looks",
                    json={
                        "look_id": f"l{i}",
                        "canary": {"requests": 100 + i, "errors": 1},
                        "baseline": {"requests": 1000, "errors": 10},
                    },
                )
                for i in range(40)
            ]
            answers = await asyncio.gather(*looks)
            return answers, transactions - made

    try:
        answers, commits = asyncio.run(post_all())
        assert [r.status_code for r in answers] == [200] * 40
        for k in range(8):
            body = json.loads(app.state.service.get(f"c{k}"))
            mine = [i for i in range(40) if i % 8 == k]
            assert body["looks"] == 5
            assert body["canary_requests"] == sum(100 + i for i in mine)
            assert sorted(look_id for look_id, _ in store.counted(f"c{k}")) == sorted(
                f"l{i}" for i in mine
            )
        if not store.blocking:  # SQLite: looks of one turn of the loop share a commit
            assert commits < 40
    finally:
        store.close()


@st.composite
def arm(draw: st.DrawFn) -> dict[str, int]:
    n = draw(st.integers(0, 2000))
    return {"requests": n, "errors": draw(st.integers(0, n)), "slow": draw(st.integers(0, n))}


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    looks=st.lists(st.tuples(arm(), arm()), min_size=1, max_size=6),
    slow=st.booleans(),
)
def test_service_decides_as_the_judge_fed_the_same_looks_and_retries_change_nothing(
    backend: Callable[[], Store], data: st.DataObject, looks: list, slow: bool
) -> None:
    svc = Service(backend())
    try:
        settings_ = {"alpha": 0.1, "margin": 0.02, "min_canary_requests": 1000}
        if slow:
            settings_ |= {"metrics": ["errors", "slow"], "slow_margin": 0.05}
        svc.client.put("/v1/rollouts/h", json=settings_)
        judge = CanaryJudge(
            JudgeConfig(0.1, 0.02, 0.05 if slow else None, min_canary_requests=1000)
        )
        sent: list[tuple[str, dict, dict, dict]] = []
        for i, (c, b) in enumerate(looks):
            r = svc.look("h", f"look-{i}", c, b)
            assert r.status_code == 200
            sent.append((f"look-{i}", c, b, r.json()))
            judge.update(ArmCounts(**c), ArmCounts(**b))
            # A client retrying any earlier look gets that look's answer and counts nothing.
            look_id, c0, b0, answer = data.draw(st.sampled_from(sent))
            before = _snapshot(svc, "h")
            assert svc.look("h", look_id, c0, b0).json() == answer
            assert _snapshot(svc, "h") == before
        expected = json.loads(json.dumps(verdict_body("h", judge.verdict, closed=False)))
        assert svc.client.get("/v1/rollouts/h").json() == expected
        assert len(svc.store.counted("h")) == len(looks)
    finally:
        svc.store.close()


def test_verdict_json_is_the_verdicts_fields_as_compact_json() -> None:
    # The body the service stores and answers, written out here from the Verdict's
    # attributes and encoded by the json module; verdict_json formats it directly.
    def expected(rollout_id: str, v: Verdict, closed: bool) -> str:
        body = {
            "rollout": rollout_id,
            "decision": v.decision,
            "p_value": v.p_value,
            "bounds": [v.bounds.low, v.bounds.high],
            "looks": v.looks,
            "canary_requests": v.canary_requests,
            "baseline_requests": v.baseline_requests,
            "reason": v.reason,
            "closed": closed,
            "metrics": [
                {
                    "name": m.name,
                    "p_value": m.p_value,
                    "bounds": [m.bounds.low, m.bounds.high],
                    "decision": m.decision,
                }
                for m in v.metrics
            ],
        }
        return json.dumps(body, separators=(",", ":"))

    rng = random.Random(11)
    decisions = set()
    for config in (
        JudgeConfig(),
        JudgeConfig(alpha=0.01, margin=0.001, slow_margin=0.02, min_canary_requests=500),
    ):
        for _ in range(20):
            judge = CanaryJudge(config)
            verdicts = [judge.verdict]
            for _ in range(30):
                n_c, n_b = rng.randint(0, 300), rng.randint(0, 3000)
                worse = rng.choice([0.01, 0.05, 0.2])
                canary = ArmCounts(n_c, rng.randint(0, int(n_c * worse)), rng.randint(0, n_c // 3))
                baseline = ArmCounts(n_b, rng.randint(0, n_b // 50), rng.randint(0, n_b // 20))
                verdicts.append(judge.update(canary, baseline))
            for v in verdicts:
                decisions.add(v.decision)
                for rid, closed in (("r1", False), ('é.\u2028"x', True)):
                    assert verdict_json(rid, v, closed=closed) == expected(rid, v, closed)
    assert decisions == {"continue", "promote", "reject"}


# ---------------------------------------------------------------- Prometheus measure


def test_measure_takes_a_look_over_the_window_since_the_previous_one(svc: Service) -> None:
    assert svc.client.post("/v1/rollouts/m/measure").status_code == 404
    svc.client.put("/v1/rollouts/m", json={"margin": 0.02})
    r = svc.client.post("/v1/rollouts/m/measure")
    assert r.status_code == 409
    assert "no Prometheus source" in r.json()["detail"]
    svc.client.put("/v1/rollouts/m", json={"margin": 0.02, "prometheus": SOURCE})
    created = svc.clock.now
    svc.clock.now += 30
    svc.answers.append((ArmCounts(2000, 40), ArmCounts(38000, 760)))
    r = svc.client.post("/v1/rollouts/m/measure")
    assert r.status_code == 200
    assert (r.json()["looks"], r.json()["canary_requests"]) == (1, 2000)
    svc.clock.now += 12
    svc.answers.append((ArmCounts(2000, 40), ArmCounts(38000, 760)))
    r = svc.client.post("/v1/rollouts/m/measure")
    assert (r.json()["looks"], r.json()["decision"]) == (2, "promote")
    assert svc.windows == [(created, created + 30), (created + 30, created + 42)]
    # No time has passed: nothing to measure, the verdict is returned unchanged.
    r = svc.client.post("/v1/rollouts/m/measure")
    assert r.json()["looks"] == 2
    assert len(svc.windows) == 2


def test_measure_creates_the_rollout_from_its_body_and_reports_prometheus_failures(
    svc: Service,
) -> None:
    body = {"margin": 0.02, "prometheus": SOURCE, "step": 3}  # unknown fields ignored
    r = svc.client.post("/v1/rollouts/argo-abc/measure", json=body)
    # Created now: its first window starts now, so there is nothing to count yet.
    assert (r.status_code, r.json()["looks"], svc.windows) == (200, 0, [])
    svc.clock.now += 10
    svc.answers.append(SourceError("cannot reach Prometheus at http://127.0.0.1:9: refused"))
    r = svc.client.post("/v1/rollouts/argo-abc/measure", json=body)
    assert r.status_code == 502
    assert "cannot reach Prometheus" in r.json()["detail"]
    assert svc.client.get("/v1/rollouts/argo-abc").json()["looks"] == 0
    svc.answers.append((ArmCounts(100, 1), ArmCounts(900, 9)))
    r = svc.client.post("/v1/rollouts/argo-abc/measure", json=body)
    assert (r.status_code, r.json()["looks"]) == (200, 1)
    conflicting = {**body, "margin": 0.05}
    assert svc.client.post("/v1/rollouts/argo-abc/measure", json=conflicting).status_code == 409
    bad = svc.client.post("/v1/rollouts/argo-abc/measure", json={"alpha": 2})
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["body", "alpha"])


def test_measure_without_a_sample_counts_nothing_and_keeps_the_window_open(svc: Service) -> None:
    """Two looks in the same window: the first has no sample, the second covers both."""
    svc.client.put("/v1/rollouts/m", json={"margin": 0.02, "prometheus": SOURCE})
    created = svc.clock.now
    svc.clock.now += 2
    svc.answers.append(NoSampleError("no sample for canary.requests over the last 2 s"))
    r = svc.client.post("/v1/rollouts/m/measure")
    assert (r.status_code, r.json()["looks"], r.json()["decision"]) == (200, 0, "continue")
    assert r.json()["reason"].startswith("continue: ")
    assert "no look counted now: no sample for canary.requests" in r.json()["reason"]
    assert svc.store.read("m").measured_at == created  # the window did not move
    assert svc.store.counted("m") == []
    svc.clock.now += 2
    svc.answers.append((ArmCounts(4000, 80), ArmCounts(76000, 1520)))
    r = svc.client.post("/v1/rollouts/m/measure")
    assert (r.json()["looks"], r.json()["canary_requests"], r.json()["decision"]) == (
        1,
        4000,
        "promote",
    )
    assert svc.windows == [(created, created + 2), (created, created + 4)]
    assert "no look counted" not in r.json()["reason"]
    text = svc.client.get("/metrics").text
    assert 'release_spec_judge_looks_total{result="no_sample"} 1.0' in text


def _prometheus(answers: dict[str, list]) -> Callable[[httpx.Request], httpx.Response]:
    """A fake Prometheus answering each query with its list of series values."""

    def handler(request: httpx.Request) -> httpx.Response:
        values = answers[request.url.params["query"]]
        result = [{"metric": {"pod": f"p{i}"}, "value": [1, v]} for i, v in enumerate(values)]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    return handler


def test_fetch_counts_tells_a_missing_sample_from_a_missing_series() -> None:
    source = PrometheusConfig(
        "http://prom:9090",
        PrometheusArm('req{t="c"}', 'err{t="c"}'),
        PrometheusArm('req{t="b"}', "sum(increase(err_b[$window]))"),
    )
    window = {q: f"sum(increase({q}[2000ms]))" for q in ('req{t="c"}', 'err{t="c"}', 'req{t="b"}')}
    full = {
        window['req{t="c"}']: ["100"],
        window['err{t="c"}']: [],  # no error counted in the window...
        'err{t="c"}': [],  # ...because the series does not exist yet: a true zero
        window['req{t="b"}']: ["1200", "800"],
        "sum(increase(err_b[2000ms]))": ["20"],
    }
    with httpx.Client(transport=httpx.MockTransport(_prometheus(full))) as client:
        assert fetch_counts(source, 10.0, 12.0, client=client) == (
            ArmCounts(100, 0),
            ArmCounts(2000, 20),
        )
    # The series exists but the window holds fewer than two of its samples.
    late = {**full, 'err{t="c"}': ["7"]}
    with (
        httpx.Client(transport=httpx.MockTransport(_prometheus(late))) as client,
        pytest.raises(NoSampleError, match=r"canary\.errors over the last 2 s"),
    ):
        fetch_counts(source, 10.0, 12.0, client=client)
    # An expression cannot tell the two apart: an empty answer is no sample.
    empty_expression = {**full, "sum(increase(err_b[2000ms]))": []}
    with (
        httpx.Client(transport=httpx.MockTransport(_prometheus(empty_expression))) as client,
        pytest.raises(NoSampleError, match=r"baseline\.errors"),
    ):
        fetch_counts(source, 10.0, 12.0, client=client)


def test_window_query_wraps_selectors_and_fills_templates() -> None:
    assert window_query("x_total", 12.5) == "sum(increase(x_total[12500ms]))"
    assert window_query("sum(increase(x[$window]))", 1) == "sum(increase(x[1000ms]))"


def test_fetch_counts_queries_prometheus_rounds_and_caps() -> None:
    seen: list[dict[str, str]] = []
    values = {"req": "1000.4", "err": "1000.9", "slow": "3.2"}

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        assert request.url.path == "/api/v1/query"
        name = next(k for k in values if f"({k}{{" in params["query"])
        result = [{"metric": {}, "value": [1, values[name]]}]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    source = PrometheusConfig(
        "http://prom:9090",
        PrometheusArm('req{t="c"}', 'err{t="c"}', 'slow{t="c"}'),
        PrometheusArm('req{t="b"}', 'err{t="b"}'),
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        canary, baseline = fetch_counts(source, 100.0, 160.0, client=client)
    # increase() extrapolates: whole counts, errors capped at the requests.
    assert canary == ArmCounts(1000, 1000, 3)
    assert baseline == ArmCounts(1000, 1000, 0)
    assert seen[0] == {"query": 'sum(increase(req{t="c"}[60000ms]))', "time": "160.0"}
    assert len(seen) == 5  # no slow query for the baseline

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "error": "parse error"})

    with (
        httpx.Client(transport=httpx.MockTransport(failing)) as client,
        pytest.raises(SourceError, match="parse error"),
    ):
        fetch_counts(source, 100.0, 160.0, client=client)


# ---------------------------------------------------------------- Flagger


def _hook(svc: Service, hook: str, checksum: str = "6d4f8b9c7", **metadata: str) -> httpx.Response:
    payload = {
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": checksum,
        "metadata": metadata,
    }
    return svc.client.post(f"/v1/flagger/{hook}", json=payload)


def test_flagger_hooks_answer_by_decision(svc: Service) -> None:
    assert _hook(svc, "rollout").status_code == 404  # test.podinfo.6d4f8b9c7 does not exist yet
    svc.client.put("/v1/rollouts/test.podinfo.6d4f8b9c7", json={"margin": 0.02})
    fresh = {
        "confirm-rollout": 200,
        "pre-rollout": 200,
        "rollout": 200,
        "confirm-traffic-increase": 200,
        "confirm-promotion": 409,
        "rollback": 409,
    }
    assert {*fresh, "post-rollout", "event"} == set(flagger.HOOKS)  # every judged hook
    assert {h: _hook(svc, h).status_code for h in fresh} == fresh
    svc.look("test.podinfo.6d4f8b9c7", "a", GOOD, BASE)
    assert _hook(svc, "confirm-promotion").status_code == 200
    assert _hook(svc, "rollback").status_code == 409
    svc.look("test.podinfo.6d4f8b9c7", "b", {"requests": 2000, "errors": 400}, BASE)
    rejected = {
        "confirm-rollout": 409,
        "pre-rollout": 409,
        "rollout": 409,
        "confirm-traffic-increase": 409,
        "confirm-promotion": 409,
        "rollback": 200,
    }
    assert {h: _hook(svc, h).status_code for h in rejected} == rejected
    body = _hook(svc, "rollback").json()
    assert (body["hook"], body["go"], body["decision"]) == ("rollback", True, "reject")
    assert _hook(svc, "post-rollout").status_code == 200
    assert _hook(svc, "nonsense").status_code == 404
    bad = svc.client.post("/v1/flagger/rollout", json={"namespace": "test"})
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["body", "name"])


def test_flagger_metadata_names_and_creates_the_rollout_and_rollout_hook_measures(
    svc: Service,
) -> None:
    config = json.dumps({"margin": 0.02, "prometheus": SOURCE})
    first = _hook(svc, "confirm-rollout", rollout="custom-id", config=config)
    assert (first.status_code, first.json()["looks"]) == (200, 0)
    svc.clock.now += 5
    svc.answers.append((ArmCounts(2000, 40), ArmCounts(38000, 760)))
    r = _hook(svc, "rollout", rollout="custom-id", config=config)
    assert r.status_code == 200
    assert (r.json()["rollout"], r.json()["looks"]) == ("custom-id", 1)
    assert svc.store.read("test.podinfo.6d4f8b9c7") is None
    bad = _hook(svc, "rollout", rollout="other", config='{"alpha": 7}')
    assert bad.status_code == 422
    assert "metadata.config" in bad.json()["detail"]
    assert svc.store.read("other") is None


def test_flagger_each_revision_gets_its_own_judge(svc: Service) -> None:
    """The payload's checksum is in the default id: a rejected revision stays behind."""
    config = json.dumps({"margin": 0.02})
    assert _hook(svc, "pre-rollout", checksum="rev1", config=config).status_code == 200
    svc.look("test.podinfo.rev1", "a", {"requests": 2000, "errors": 400}, BASE)
    assert _hook(svc, "rollback", checksum="rev1", config=config).status_code == 200
    assert _hook(svc, "pre-rollout", checksum="rev1", config=config).status_code == 409
    # The next revision starts afresh, under its own id; the rejected one is untouched.
    fresh = _hook(svc, "pre-rollout", checksum="rev2", config=config)
    assert (fresh.status_code, fresh.json()["rollout"], fresh.json()["looks"]) == (
        200,
        "test.podinfo.rev2",
        0,
    )
    assert _hook(svc, "rollback", checksum="rev2", config=config).status_code == 409
    assert svc.client.get("/v1/rollouts/test.podinfo.rev1").json()["decision"] == "reject"
    # metadata.rollout still names one rollout for every revision.
    _hook(svc, "pre-rollout", checksum="rev1", rollout="pinned", config=config)
    pinned = _hook(svc, "pre-rollout", checksum="rev2", rollout="pinned", config=config)
    assert pinned.json()["rollout"] == "pinned"
    # Without a checksum: namespace.name.
    payload = {"name": "podinfo", "namespace": "test", "metadata": {"config": config}}
    r = svc.client.post("/v1/flagger/pre-rollout", json=payload)
    assert (r.status_code, r.json()["rollout"]) == (200, "test.podinfo")


@pytest.mark.parametrize(
    ("checksum", "metadata", "field"),
    [("a/b", {}, "rollout id 'test.podinfo.a/b'"), ("abc", {"rollout": "x y"}, "metadata.rollout")],
)
def test_flagger_refuses_an_id_the_service_cannot_address(
    svc: Service, checksum: str, metadata: dict, field: str
) -> None:
    r = _hook(svc, "pre-rollout", checksum=checksum, config=json.dumps({}), **metadata)
    assert r.status_code == 422
    assert field in r.json()["detail"]


# ---------------------------------------------------------------- Kayenta


def _pair(name: str, control: list, experiment: list, **tags: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": name,
        "tags": tags,
        "values": {"control": control, "experiment": experiment},
        "scopes": {},
        "attributes": {},
    }


def _kayenta_request(pairs: list[dict], **judge: float) -> dict[str, Any]:
    return {
        "canaryConfig": {
            "metrics": [
                {"name": p["name"], "groups": ["http"]} for p in pairs if p["name"] != "cpu"
            ],
            "judge": {"name": "remote", "judgeConfigurations": judge},
        },
        "scoreThresholds": {"pass": 95, "marginal": 75},
        "metricSetPairList": pairs,
    }


def test_kayenta_judge_classifies_fail_pass_and_marginal(svc: Service) -> None:
    regression = _kayenta_request(
        [
            _pair("checkout requests", [9000, 9000], [1000, 1000], region="eu"),
            _pair("checkout errors", [90, 90], [100, 110], region="eu"),
            _pair("cpu", [1.0], [1.0]),
        ]
    )
    r = svc.client.post("/v1/kayenta/judge", json=regression)
    assert r.status_code == 200
    out = r.json()
    assert out["judgeName"] == kayenta.JUDGE_NAME
    assert [(m["name"], m["classification"], m["muted"]) for m in out["results"]] == [
        ("checkout requests", "Pass", True),
        ("checkout errors", "High", False),
        ("cpu", "Nodata", False),
    ]
    assert out["score"] == {**out["score"], "score": 0.0, "classification": "Fail"}
    assert out["groupScores"] == [
        {"name": "http", "score": 0.0, "classification": "Fail", "classificationReason": ""}
    ]
    same = [_pair("requests", [76000], [4000]), _pair("errors", [1520], [80])]
    ok = svc.client.post("/v1/kayenta/judge", json=_kayenta_request(same, margin=0.02)).json()
    assert (ok["score"]["score"], ok["score"]["classification"]) == (100.0, "Pass")
    small = [_pair("requests", [760], [40]), _pair("errors", [15], [1])]
    unsure = svc.client.post("/v1/kayenta/judge", json=_kayenta_request(small)).json()
    assert (unsure["score"]["score"], unsure["score"]["classification"]) == (75.0, "Marginal")


def test_kayenta_pairs_by_name_prefix_and_tags() -> None:
    pairs = [
        _pair("requests", [1000], [1000], region="eu"),
        _pair("errors", [10], [200], region="eu"),  # regression in eu
        _pair("requests", [1000], [1000], region="us"),
        _pair("errors", [10], [10], region="us"),
        _pair("errors", [10], [10], region="ap"),  # no requests series: not judged
    ]
    out = kayenta.judge_metric_set_pairs(_kayenta_request(pairs))
    assert [m["classification"] for m in out["results"]] == [
        "Pass",
        "High",
        "Pass",
        "Pass",
        "Nodata",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "metricSetPairList must be a list"),
        ({"metricSetPairList": [{"id": "x"}]}, r"metricSetPairList\[0\]\.name"),
        (
            {"metricSetPairList": [_pair("errors", [-1], [0])]},
            r"metricSetPairList\[0\]\.values\.control\[0\]",
        ),
        (
            {"metricSetPairList": [_pair("requests", [1], [1]), _pair("errors", [5], [0])]},
            "more errors/slow",
        ),
    ],
)
def test_kayenta_refuses_bad_requests_with_422(svc: Service, body: dict, message: str) -> None:
    r = svc.client.post("/v1/kayenta/judge", json=body)
    assert r.status_code == 422
    assert pytest.importorskip("re").search(message, r.json()["detail"])


# ---------------------------------------------------------------- health, metrics, OpenAPI


def test_healthz_metrics_and_openapi(svc: Service) -> None:
    assert svc.client.get("/healthz").json() == {"status": "ok"}
    svc.client.put("/v1/rollouts/r1", json={"margin": 0.02})
    svc.look("r1", "a", GOOD, BASE)
    svc.look("r1", "a", GOOD, BASE)
    svc.look("r1", "b", {"requests": 1, "errors": 0}, BASE)
    svc.look("nope", "a", GOOD, BASE)
    text = svc.client.get("/metrics").text
    assert 'release_spec_judge_looks_total{result="counted"} 2.0' in text
    assert 'release_spec_judge_looks_total{result="duplicate"} 1.0' in text
    assert 'release_spec_judge_looks_total{result="refused"} 1.0' in text
    assert 'release_spec_judge_decisions_total{decision="promote"} 2.0' in text
    assert (
        'release_spec_judge_request_duration_seconds_count{method="POST",'
        'route="/v1/rollouts/{rollout_id}/looks"} 4.0'
    ) in text
    assert svc.client.get("/docs").status_code == 200
    paths = svc.client.get("/openapi.json").json()["paths"]
    assert {"/v1/rollouts/{rollout_id}", "/v1/rollouts/{rollout_id}/looks"} <= set(paths)


# ---------------------------------------------------------------- judge check (CLI)


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        (["4000", "80", "76000", "1520"], 0),
        (["400", "80", "76000", "1520"], 3),
        (["400", "8", "7600", "152"], 4),
    ],
)
def test_judge_check_exit_code_is_the_decision(
    counts: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    c_req, c_err, b_req, b_err = counts
    argv = ["judge", "check", "--margin", "0.02", "--canary-requests", c_req]
    argv += ["--canary-errors", c_err, "--baseline-requests", b_req, "--baseline-errors", b_err]
    assert cli.main(argv) == code
    body = json.loads(capsys.readouterr().out)
    assert body["decision"] == {0: "promote", 3: "reject", 4: "continue"}[code]


def test_judge_check_and_serve_refuse_bad_flags_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["judge", "check", "--canary-requests", "10"]) == 2
    assert "--canary-errors is required" in capsys.readouterr().err
    argv = ["judge", "check", "--canary-requests", "1", "--canary-errors", "2"]
    assert cli.main([*argv, "--baseline-requests", "1", "--baseline-errors", "0"]) == 2
    assert "--canary-errors must not exceed requests" in capsys.readouterr().err
    assert cli.main(["judge", "check", "--alpha", "2"]) == 2
    assert "must be in (0, 1)" in capsys.readouterr().err
    assert cli.main(["judge", "serve", "--db", str(tmp_path / "no" / "dir.db")]) == 2
    assert "cannot open the SQLite database" in capsys.readouterr().err


def test_sqlite_synchronous_is_normal_unless_full_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import uvicorn

    pragmas = []

    def run(app: Any, **kwargs: Any) -> None:  # what `judge serve` would serve
        store = app.state.service.store
        pragmas.append(store._conn.execute("PRAGMA synchronous").fetchone()[0])

    monkeypatch.setattr(uvicorn, "run", run)
    try:
        for flag in ([], ["--sqlite-synchronous", "full"], ["--sqlite-synchronous", "normal"]):
            db = tmp_path / f"judge-{len(pragmas)}.db"
            assert cli.main(["judge", "serve", "--db", str(db), *flag]) == 0
    finally:
        gc.unfreeze()  # `judge serve` froze this test process's objects
    assert pragmas == [1, 2, 1]  # SQLite's numbers for NORMAL and FULL
    with pytest.raises(ValueError, match="synchronous must be one of"):
        SQLiteStore(tmp_path / "off.db", synchronous="OFF")
