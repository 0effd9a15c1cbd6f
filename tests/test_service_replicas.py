"""Several replicas on one store, and group commits: no look lost or doubled.

Two `RolloutService` instances stand for two replicas behind a load balancer, each
with its own connection(s) and its own judge cache: PostgreSQL (a real server), and
SQLite with two connections to one file (two processes on one host).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _postgres import postgres_server

from release_spec.services.rollouts import RolloutConfig, RolloutService, verdict_body
from release_spec.services.store import PostgresStore, SQLiteStore, Store
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig

CONFIG = RolloutConfig(JudgeConfig(alpha=0.1, margin=0.01, slow_margin=0.05))


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []
    if request.param == "sqlite":

        def make() -> Store:
            opened.append(SQLiteStore(tmp_path / "judge.db"))
            return opened[-1]
    else:
        url = request.getfixturevalue("pg_url")
        with PostgresStore(url).transaction() as tx:
            tx._cur.execute("TRUNCATE rollouts, looks")

        def make() -> Store:
            opened.append(PostgresStore(url))
            return opened[-1]

    yield make
    for s in opened:
        s.close()


def _look(rng: random.Random) -> tuple[ArmCounts, ArmCounts]:
    n_c, n_b = rng.randint(0, 300), rng.randint(0, 3000)
    c = ArmCounts(n_c, rng.randint(0, n_c // 10), rng.randint(0, n_c // 5))
    b = ArmCounts(n_b, rng.randint(0, n_b // 10), rng.randint(0, n_b // 5))
    return c, b


def test_replicas_taking_turns_decide_as_one_judge(stores: Callable[[], Store]) -> None:
    """Each replica's cached judge is rebuilt when the other one counted a look meanwhile."""
    a, b = RolloutService(stores()), RolloutService(stores())
    a.put("r", CONFIG)
    rng = random.Random(7)
    judge = CanaryJudge(CONFIG.judge)
    for i in range(30):
        replica = (a, b)[rng.random() < 0.5]
        c, base = _look(rng)
        assert replica.look("r", f"l{i}", c, base).counted
        judge.update(c, base)
    expected = verdict_body("r", judge.verdict, closed=False)
    assert json.loads(a.get("r")) == json.loads(json.dumps(expected))
    assert json.loads(b.get("r")) == json.loads(a.get("r"))


def test_concurrent_replicas_count_every_look_once(stores: Callable[[], Store]) -> None:
    """Threads on two replicas post the same 60 looks (each twice); each counts once."""
    replicas = [RolloutService(stores()), RolloutService(stores())]
    replicas[0].put("r", CONFIG)
    rng = random.Random(11)
    looks = [(f"l{i}", *_look(rng)) for i in range(60)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        order = looks[:]
        random.Random(k).shuffle(order)
        try:
            for look_id, c, base in order:
                replicas[k % 2].look("r", look_id, c, base)
        except BaseException as e:  # surfaced below: a thread's assertion is not the test's
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    body = json.loads(replicas[1].get("r"))
    assert body["looks"] == 60
    assert body["canary_requests"] == sum(c.requests for _, c, _ in looks)
    assert body["baseline_requests"] == sum(b.requests for _, _, b in looks)
    assert sorted(k for k, _ in replicas[0].store.counted("r")) == sorted(k for k, *_ in looks)


def _same(a: object, b: object) -> bool:
    if isinstance(a, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


def test_group_commit_answers_and_stores_as_looks_one_by_one(tmp_path: Path) -> None:
    """look_many == look applied in order: two looks of one rollout, refusals in place.

    (The service batches looks on SQLite only; PostgreSQL takes one look per thread.)
    """
    batched = RolloutService(SQLiteStore(tmp_path / "batched.db"))
    single = RolloutService(SQLiteStore(tmp_path / "single.db"))
    rng = random.Random(5)
    for svc in (batched, single):
        svc.put("r1", CONFIG)
        svc.put("r2", CONFIG)
    looks = [(rid, f"l{i}", *_look(rng)) for i, rid in enumerate(["r1", "r2", "r1", "r1"])]
    c0, b0 = looks[0][2], looks[0][3]
    looks += [
        ("nope", "x", c0, b0),  # unknown rollout: refused
        ("r1", "l0", c0, b0),  # a retry inside the same batch: the first answer
        ("r1", "l0", ArmCounts(c0.requests + 1, 0), b0),  # reused look_id: refused
    ]
    got = batched.look_many(looks)
    expected: list[object] = []
    for look in looks:
        try:
            expected.append(single.look(*look))
        except Exception as e:
            expected.append(e)
    assert [type(g) for g in got] == [type(e) for e in expected]
    assert all(_same(g, e) for g, e in zip(got, expected, strict=True))
    for rid in ("r1", "r2"):
        assert batched.get(rid) == single.get(rid)
        assert batched.store.counted(rid) == single.store.counted(rid)
    batched.store.close()
    single.store.close()


def test_group_commit_keeps_one_failing_look_to_itself(
    stores: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction that fails is retried look by look: the others still count."""
    svc = RolloutService(stores())
    svc.put("r", CONFIG)
    real = svc._look

    def failing(tx: object, rid: str, look_id: str, *rest: object) -> object:
        if look_id == "boom":
            raise RuntimeError("disk on fire")
        return real(tx, rid, look_id, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(svc, "_look", failing)
    rng = random.Random(9)
    looks = [("r", k, *_look(rng)) for k in ("a", "boom", "b")]
    got = svc.look_many(looks)
    assert [type(g).__name__ for g in got] == ["Answer", "RuntimeError", "Answer"]
    assert [k for k, _ in svc.store.counted("r")] == ["a", "b"]
    assert json.loads(svc.get("r"))["looks"] == 2
