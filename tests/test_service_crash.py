"""SIGKILL the judge service at random moments; no acknowledged look is lost or counted twice.

A client thread posts looks to ``release-spec judge serve`` (SQLite, WAL,
synchronous=NORMAL), each retried with the same look_id until the service answers
200; the test kills the service with SIGKILL after a seeded random delay and
restarts it, at least 20 times. At the end the stored looks are exactly the
acknowledged ones, the counts equal their sums, and the verdict equals
`CanaryJudge` fed the same looks.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from release_spec.services.rollouts import verdict_body
from release_spec.services.store import SQLiteStore
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig

KILLS = 20
SEED = 20261202
ROOT = Path(__file__).resolve().parents[1]
SERVE = [sys.executable, "-m", "release_spec", "judge", "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*SERVE, "--db", str(db), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"the service exited with {proc.returncode}: {log.read_text()}"
        assert time.monotonic() < deadline, "the service never became healthy"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.02)


class Client(threading.Thread):
    """Posts looks forever, each retried until acknowledged."""

    def __init__(self, base: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.rng = random.Random(seed)
        self.acked: list[tuple[str, dict, dict]] = []
        self.retries = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            i = 0
            while not self.stop.is_set():
                n_c, n_b = self.rng.randint(0, 300), self.rng.randint(0, 3000)
                c = {"requests": n_c, "errors": self.rng.randint(0, n_c // 20)}
                b = {"requests": n_b, "errors": self.rng.randint(0, n_b // 20)}
                body = {"look_id": f"look-{i}", "canary": c, "baseline": b}
                while True:
                    try:
                        r = http.post(f"{self.base}/v1/rollouts/crash/looks", json=body)
                    except httpx.HTTPError:
                        self.retries += 1
                        time.sleep(0.02)
                        continue
                    assert r.status_code == 200, r.text
                    break
                self.acked.append((body["look_id"], c, b))
                i += 1


def test_sigkill_never_loses_or_doubles_an_acknowledged_look(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db, log, port = tmp_path / "judge.db", tmp_path / "serve.log", _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(db, port, log)
    assert httpx.put(f"{base}/v1/rollouts/crash", json={"margin": 0.01}).status_code == 201
    client = Client(base, SEED)
    client.start()
    acked_at_kill = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        acked_at_kill.append(len(client.acked))
        proc = _start(db, port, log)
    # Let the client get a few looks through the last server, then stop it between looks.
    target = len(client.acked) + 5
    while len(client.acked) < target:
        time.sleep(0.01)
    client.stop.set()
    client.join(timeout=30)
    assert not client.is_alive()
    final = httpx.get(f"{base}/v1/rollouts/crash").json()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    store = SQLiteStore(db)
    stored = dict(store.counted("crash"))
    store.close()
    acked = {
        look_id: json.loads(json.dumps([{**c, "slow": 0}, {**b, "slow": 0}]))
        for look_id, c, b in client.acked
    }
    assert {k: json.loads(v) for k, v in stored.items()} == acked
    assert final["looks"] == len(client.acked)
    assert final["canary_requests"] == sum(c["requests"] for _, c, _ in client.acked)
    assert final["baseline_requests"] == sum(b["requests"] for _, _, b in client.acked)
    judge = CanaryJudge(JudgeConfig(margin=0.01))
    for _, c, b in client.acked:
        judge.update(ArmCounts(**c), ArmCounts(**b))
    assert final == json.loads(json.dumps(verdict_body("crash", judge.verdict, closed=False)))
    # The kills must have hit a busy client, or the test proves little.
    assert client.retries >= KILLS // 2
    assert len(set(acked_at_kill)) >= KILLS // 2
    print(
        f"\n{KILLS} SIGKILLs, {len(client.acked)} acknowledged looks, "
        f"{client.retries} retried posts; stored looks == acknowledged looks"
    )
