"""Several replicas on one store: looks interleave across replicas, none lost or doubled.

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

from release_spec.judge import ArmCounts, CanaryJudge, JudgeConfig
from release_spec.services.rollouts import RolloutConfig, RolloutService, verdict_body
from release_spec.services.store import PostgresStore, SQLiteStore, Store

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
