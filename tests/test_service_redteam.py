"""Hostile input to the judge service: each test is an attack that once broke it.

Every promise under attack is the contract's: a client mistake is a 4xx with a JSON
body naming the field (never a 500), a refused request changes nothing, no secret
leaves in an answer, and a Prometheus source cannot hold a look forever. SQLite only
(none of these is backend-specific).
"""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from release_spec.services import flagger, kayenta
from release_spec.services.prometheus import (
    MAX_ANSWER_BYTES,
    SourceError,
    fetch_counts,
    public_url,
)
from release_spec.services.rollouts import InvalidError, PrometheusArm, PrometheusConfig
from release_spec.services.store import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from release_spec.services.app import COUNT_MAX, create_app

JSON = {"content-type": "application/json"}
ARMS = {
    "canary": {"requests": 'req{track="canary"}', "errors": 'err{track="canary"}'},
    "baseline": {"requests": 'req{track="stable"}', "errors": 'err{track="stable"}'},
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = SQLiteStore(tmp_path / "judge.db")
    # raise_server_exceptions=False: a crash must show as the 500 a client would see.
    yield TestClient(create_app(store), raise_server_exceptions=False)
    store.close()


def _look(look_id: str, requests: Any = 100) -> dict[str, Any]:
    return {
        "look_id": look_id,
        "canary": {"requests": requests, "errors": 1},
        "baseline": {"requests": 100, "errors": 1},
    }


# ------------------------------------------------- NaN / Infinity in a JSON body


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"alpha": NaN}', "alpha"),
        ('{"margin": Infinity}', "margin"),
        ('{"slo_seconds": 1e999}', "slo_seconds"),
        ('{"margin": -Infinity}', "margin"),
    ],
)
def test_put_with_a_non_finite_number_is_a_422_naming_the_field_not_a_500(
    client: TestClient, raw: str, field: str
) -> None:
    # Python's JSON parser reads NaN/Infinity; echoing them in the 422 crashed the
    # strict JSON renderer (500).
    r = client.put("/v1/rollouts/r1", content=raw, headers=JSON)
    assert r.status_code == 422
    detail = json.loads(r.text)["detail"]  # strict-enough JSON: parses back
    assert detail[0]["loc"] == ["body", field]
    assert "NaN" not in r.text
    assert "Infinity" not in r.text
    assert client.get("/v1/rollouts/r1").status_code == 404  # refused: nothing created


def test_a_look_with_nan_counts_answers_valid_json(client: TestClient) -> None:
    client.put("/v1/rollouts/r1", json={})
    raw = '{"look_id": "a", "canary": {"requests": NaN, "errors": 0}, "baseline": {"requests": 1, "errors": 0}}'  # noqa: E501
    r = client.post("/v1/rollouts/r1/looks", content=raw, headers=JSON)
    assert r.status_code == 422
    # The fast path's json.dumps wrote a bare NaN, which strict JSON parsers refuse.
    body = json.loads(r.text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert body["detail"][0]["loc"] == ["body", "canary", "requests"]
    assert body["detail"][0]["input"] == "nan"


# ------------------------------------------------- counts beyond float precision


@pytest.mark.parametrize("count", [COUNT_MAX + 1, 2**63, 10**30])
def test_a_count_past_2_to_the_53_is_refused_and_changes_nothing(
    client: TestClient, count: int
) -> None:
    # 2**63 canary requests with one error used to be counted, and promoted.
    client.put("/v1/rollouts/r1", json={})
    before = client.get("/v1/rollouts/r1").json()
    r = client.post("/v1/rollouts/r1/looks", json=_look("a", count))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "canary", "requests"]
    assert client.get("/v1/rollouts/r1").json() == before
    r = client.put("/v1/rollouts/r2", json={"min_canary_requests": count})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "min_canary_requests"]


def test_a_count_of_exactly_2_to_the_53_is_accepted(client: TestClient) -> None:
    client.put("/v1/rollouts/r1", json={})
    r = client.post("/v1/rollouts/r1/looks", json=_look("a", COUNT_MAX))
    assert r.status_code == 200
    assert r.json()["canary_requests"] == COUNT_MAX


# ------------------------------------------------- rollout ids with a final newline


def test_flagger_cannot_create_a_rollout_whose_id_ends_in_a_newline(client: TestClient) -> None:
    # ROLLOUT_ID ended in "$", which also matches before a final "\n": Flagger's
    # metadata.rollout "nr\n" created a rollout no URL can address.
    payload = {"name": "a", "namespace": "b", "metadata": {"rollout": "nr\n", "config": "{}"}}
    r = client.post("/v1/flagger/confirm-rollout", json=payload)
    assert r.status_code == 422
    assert "metadata.rollout" in r.json()["detail"]
    assert flagger.ROLLOUT_ID.match("nr\n") is None
    assert flagger.ROLLOUT_ID.match("nr") is not None
    assert client.app.state.service.store.read("nr\n") is None  # type: ignore[attr-defined]


# ------------------------------------------------- Prometheus URL


@pytest.mark.parametrize(
    "url", ["https://\n", "http://", "http://127.0.0.1:9 /", "file:///etc/passwd", "gopher://x"]
)
def test_a_prometheus_url_httpx_cannot_use_is_a_422_at_put(client: TestClient, url: str) -> None:
    # "https://\n" passed the "^https?://" check and crashed the first /measure (500).
    r = client.put("/v1/rollouts/r1", json={"prometheus": {"url": url, **ARMS}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "prometheus", "url"]


def test_a_malformed_url_already_stored_is_a_source_error_not_a_crash() -> None:
    source = PrometheusConfig(
        "http://bad host\n", PrometheusArm("a", "b"), PrometheusArm("a", "b"), 1.0
    )
    with pytest.raises(SourceError, match="cannot reach Prometheus"):
        fetch_counts(source, 0.0, 60.0)


def test_prometheus_credentials_never_appear_in_an_answer(client: TestClient) -> None:
    url = "http://admin:s3cret@127.0.0.1:9/"  # port 9: discard, nothing listens
    client.put("/v1/rollouts/r1", json={"prometheus": {"url": url, **ARMS}})
    r = client.post("/v1/rollouts/r1/measure")
    assert r.status_code == 502
    assert "127.0.0.1:9" in r.json()["detail"]
    assert "s3cret" not in r.text
    for path in ("/v1/rollouts/r1", "/metrics"):
        assert "s3cret" not in client.get(path).text
    assert public_url(url) == "http://127.0.0.1:9/"


def _source(url: str, timeout: float = 5.0) -> PrometheusConfig:
    return PrometheusConfig(url, PrometheusArm("a", "b"), PrometheusArm("a", "b"), timeout)


def test_a_huge_prometheus_answer_is_refused_not_read_whole() -> None:
    body = b'{"status": "success", "data": {"resultType": "vector", "result": [' + b" " * (
        MAX_ANSWER_BYTES + 1
    )
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=body))
    with httpx.Client(transport=transport) as c, pytest.raises(SourceError, match="more than"):
        fetch_counts(_source("http://127.0.0.1:9090"), 0.0, 60.0, client=c)


def test_a_prometheus_trickling_its_answer_is_cut_off_at_the_timeout() -> None:
    # httpx's timeout bounds each read; a server sending a byte every 0.2 s kept a
    # look (and its worker thread) waiting for ever. Now the answer has a deadline.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n"
            )
            while not stop.wait(0.2):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    try:
        with pytest.raises(SourceError, match=r"took over 0\.5 s"):
            fetch_counts(_source(f"http://127.0.0.1:{port}", timeout=0.5), 0.0, 60.0)
    finally:
        stop.set()
        server.close()
        thread.join()


# ------------------------------------------------- Kayenta bodies of the wrong shape


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metricSetPairList": [{"name": "requests", "values": "x"}]}, "values"),
        ({"metricSetPairList": [], "canaryConfig": "x"}, "canaryConfig"),
        ({"metricSetPairList": [], "canaryConfig": {"judge": []}}, "canaryConfig.judge"),
        ({"metricSetPairList": [], "canaryConfig": {"metrics": 3}}, "canaryConfig.metrics"),
        ({"metricSetPairList": [], "scoreThresholds": [95]}, "scoreThresholds"),
    ],
)
def test_kayenta_body_of_the_wrong_shape_is_a_422_naming_it(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/kayenta/judge", json=body)
    assert r.status_code == 422
    assert field in r.json()["detail"]


def test_kayenta_non_finite_thresholds_are_refused() -> None:
    body = {"metricSetPairList": [], "scoreThresholds": {"pass": float("nan"), "marginal": 1}}
    with pytest.raises(InvalidError, match="scoreThresholds"):
        kayenta.judge_metric_set_pairs(body)


@pytest.mark.parametrize("value", [2**53 + 1, 10**30, -1, float("inf")])
def test_kayenta_counts_outside_0_to_2_to_the_53_are_refused(value: float) -> None:
    # 10**30 requests were judged (and promoted) as the looks endpoint once did.
    pair = {"name": "requests", "values": {"experiment": [value], "control": [10]}}
    with pytest.raises(InvalidError, match=r"experiment\[0\] must be a count"):
        kayenta.judge_metric_set_pairs({"metricSetPairList": [pair]})
