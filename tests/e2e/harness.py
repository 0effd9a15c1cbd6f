"""Real parts on localhost for the end-to-end rollout test.

* `ModelServer`: one process per model version (tests/e2e/model_server.py) that
  exports its own request, error and slow-request counters.
* `PrometheusServer`: Debian's ``/usr/bin/prometheus`` with a temporary config and
  TSDB directory, scraping the model servers every second.
* `JudgeService`: ``release-spec judge serve`` as a subprocess.
* `Router` and `LoadGenerator`: client threads that send predictions at a steady
  rate, each to the canary with probability "current weight / 100", as a service
  mesh splits traffic for Argo Rollouts.
* `ArgoDriver`: plays Argo Rollouts' part: sets a weight, calls the judge's web
  metric every interval, moves to the next step on "promote" and aborts (weight 0)
  on "reject".

Every process runs in its own session and is stopped by its context manager
(terminate, then kill), so a failing test leaves nothing running.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROMETHEUS = Path("/usr/bin/prometheus")
#: How the judge service is started (``judge serve ...`` follows).
JUDGE_COMMAND: tuple[str, ...] = (sys.executable, "-m", "release_spec")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Example:
        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StartupError(RuntimeError):
    """A process did not become ready; the message carries its log's tail."""


class ManagedProcess:
    """A subprocess in its own session, logged to a file and always stopped on exit."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ManagedProcess:
        self.start()
        self.wait_ready()
        return self

    def start(self) -> None:
        """Start the process without waiting for it (parts start in parallel)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Return once the process serves; subclasses say what that means."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate the process group, kill it if it has not gone after 10 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        # The process leads its own session, so its group id is its pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        """The last lines of the process's log, for failure messages."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
        """Poll ``ready`` until it holds; fail early, with the log, if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise StartupError(f"{self.name} exited with {code} before {what}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError, OSError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name}: no {what} after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0, trust_env=False).status_code == 200


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # A proxy from the environment must not catch loopback traffic.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class ModelSpec:
    """How one model version behaves: its error and slow-request rates."""

    version: str
    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.2
    seed: int = 0


class ModelServer(ManagedProcess):
    """tests/e2e/model_server.py serving one `ModelSpec` on a free port."""

    def __init__(self, spec: ModelSpec, log_dir: Path, *, slo_seconds: float) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable,
            str(HERE / "model_server.py"),
            f"--port={self.port}",
            f"--version={spec.version}",
            f"--error-rate={spec.error_rate}",
            f"--slow-rate={spec.slow_rate}",
            f"--slow-seconds={spec.slow_seconds}",
            f"--slo-seconds={slo_seconds}",
            f"--seed={spec.seed}",
        ]
        super().__init__(
            f"model server {spec.version}", argv, log_dir / f"{spec.version}.log", _child_env()
        )

    def wait_ready(self) -> None:
        """Return once the server answers on /healthz."""
        self.wait_until(lambda: _http_ok(f"{self.url}/healthz"), "answer on /healthz")


def prometheus_config(targets: Mapping[str, str], *, scrape_interval: str = "1s") -> str:
    """A Prometheus config scraping each ``track -> host:port`` as job ``model``.

    The ``track`` label plays the part of the pod label a Kubernetes service
    discovery would attach (stable or canary).

    Example:
        >>> print(prometheus_config({"canary": "127.0.0.1:9"}).split("static_configs:")[1])
              - labels: {track: canary}
                targets: ["127.0.0.1:9"]
    """
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
        "scrape_configs:",
        "  - job_name: model",
        f"    scrape_interval: {scrape_interval}",
        f"    scrape_timeout: {scrape_interval}",
        "    static_configs:",
    ]
    for track, address in targets.items():
        lines += [f"      - labels: {{track: {track}}}", f'        targets: ["{address}"]']
    return "\n".join(lines) + "\n"


class PrometheusServer(ManagedProcess):
    """Debian's Prometheus with a temporary config and TSDB, on a free loopback port."""

    def __init__(
        self, targets: Mapping[str, str], work_dir: Path, *, scrape_interval: str = "1s"
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = dict(targets)
        work_dir.mkdir(parents=True, exist_ok=True)
        config = work_dir / "prometheus.yml"
        config.write_text(prometheus_config(targets, scrape_interval=scrape_interval))
        argv = [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        super().__init__("prometheus", argv, work_dir / "prometheus.log", _child_env())

    def wait_ready(self) -> None:
        """Return once every target has been scraped (Prometheus applies targets every 5 s)."""
        self.wait_until(lambda: _http_ok(f"{self.url}/-/ready"), "readiness on /-/ready")
        self.wait_until(self._all_up, "successful scrape of every target")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0, trust_env=False
        )
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def _all_up(self) -> bool:
        up = {r["metric"]["track"]: r["value"][1] for r in self.query('up{job="model"}')}
        return up == dict.fromkeys(self.targets, "1")


class JudgeService(ManagedProcess):
    """``release-spec judge serve`` on a free loopback port with a temporary database."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        work_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            *JUDGE_COMMAND,
            "judge",
            "serve",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--db={work_dir / 'judge.db'}",
        ]
        super().__init__("judge service", argv, work_dir / "judge.log", _child_env())
        # trust_env=False: a proxy from the environment must not catch loopback traffic.
        self.client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def wait_ready(self) -> None:
        """Return once the service answers on /healthz."""
        self.wait_until(lambda: _http_ok(f"{self.url}/healthz"), "answer on /healthz")

    def stop(self) -> None:
        self.client.close()
        super().stop()


# --- traffic ---------------------------------------------------------------


@dataclass
class TrafficCounts:
    """Requests routed to each track, and those answered 5xx (the client's own count)."""

    sent: dict[str, int] = field(default_factory=lambda: {"stable": 0, "canary": 0})
    failed: dict[str, int] = field(default_factory=lambda: {"stable": 0, "canary": 0})


class Router:
    """Splits requests between stable and canary by the current canary weight (0-100).

    Picking a track and counting it happen under the same lock as a weight change,
    so once ``weight = 0`` returns, no request is routed to the canary any more.

    Example:
        >>> router = Router("http://127.0.0.1:1", "http://127.0.0.1:2")
        >>> router.weight = 25
        >>> rng = random.Random(0)
        >>> picks = [router.route(rng) for _ in range(10_000)]
        >>> round(picks.count("canary") / len(picks), 2), router.counts().sent["canary"]
        (0.25, 2468)
    """

    def __init__(self, stable_url: str, canary_url: str) -> None:
        self.urls = {"stable": stable_url, "canary": canary_url}
        self._lock = threading.Lock()
        self._weight = 0
        self._counts = TrafficCounts()

    @property
    def weight(self) -> int:
        """The canary's share of new requests, in percent."""
        return self._weight

    @weight.setter
    def weight(self, value: int) -> None:
        if not 0 <= value <= 100:
            raise ValueError(f"weight must be in [0, 100], got {value!r}")
        with self._lock:
            self._weight = value

    def route(self, rng: random.Random) -> str:
        """Pick ``"canary"`` with probability weight/100, else ``"stable"``, and count it."""
        with self._lock:
            track = "canary" if rng.random() * 100 < self._weight else "stable"
            self._counts.sent[track] += 1
        return track

    def failed(self, track: str) -> None:
        """Count a 5xx answer (or a broken connection) from ``track``."""
        with self._lock:
            self._counts.failed[track] += 1

    def counts(self) -> TrafficCounts:
        """A copy of the counts so far."""
        with self._lock:
            return TrafficCounts(dict(self._counts.sent), dict(self._counts.failed))


class LoadGenerator:
    """Threads that send ``rate`` predictions per second in total through a `Router`."""

    def __init__(self, router: Router, *, rate: float, threads: int = 8, seed: int = 0) -> None:
        self.router = router
        self.rate = rate
        self.threads = threads
        self.seed = seed
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def __enter__(self) -> LoadGenerator:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        period = self.threads / self.rate
        connections: dict[str, http.client.HTTPConnection] = {}
        body = b'{"features": [0.1, 0.4, 0.2]}'
        headers = {"Content-Type": "application/json"}
        next_at = time.monotonic() + rng.random() * period
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if next_at > now:
                    time.sleep(next_at - now)
                # When the machine stalls, resume the rate instead of bursting to catch up.
                next_at = max(next_at + period, time.monotonic() - period)
                track = self.router.route(rng)
                conn = connections.get(track)
                if conn is None:
                    host, port = self.router.urls[track].removeprefix("http://").split(":")
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                    connections[track] = conn
                try:
                    conn.request("POST", "/predict", body, headers)
                    response = conn.getresponse()
                    response.read()
                    failed = response.status >= 500
                except (OSError, http.client.HTTPException):
                    conn.close()
                    connections.pop(track)
                    failed = True
                if failed:
                    self.router.failed(track)
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.errors.append(exc)
        finally:
            for conn in connections.values():
                conn.close()


# --- the Argo Rollouts part --------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One call of the web metric: when, at which weight, the judge's answer, the traffic so far."""

    at: float
    weight: int
    status: int
    body: dict[str, Any]
    traffic: TrafficCounts

    @property
    def decision(self) -> str | None:
        """The ``decision`` field (Argo's ``jsonPath: "{$.decision}"``), if the call succeeded."""
        return self.body.get("decision") if 200 <= self.status < 300 else None


@dataclass(frozen=True)
class Outcome:
    """How the rollout ended: ``"promoted"``, ``"aborted"`` or ``"timed out"``."""

    phase: str
    weight: int
    measurements: tuple[Measurement, ...]
    seconds: float

    def describe(self) -> str:
        """Every measurement on one line each, for assertion messages."""
        rows = [f"{self.phase} at weight {self.weight} after {self.seconds:.1f} s"]
        for m in self.measurements:
            b = m.body
            rows.append(
                f"  t={m.at:6.1f}s w={m.weight:3d} {m.status} {b.get('decision')} "
                f"p={b.get('p_value')} bounds={b.get('bounds')} "
                f"n=({b.get('canary_requests')}, {b.get('baseline_requests')}) {b.get('reason')}"
            )
        return "\n".join(rows)


class ArgoDriver:
    """Argo Rollouts' canary steps driven by the judge's web metric.

    Each step sets the canary weight and measures every ``interval`` seconds:
    ``"promote"`` is the metric's successCondition (go to the next step; after the
    last, the canary takes all traffic), ``"reject"`` its failureCondition (abort:
    weight 0), anything else inconclusive (measure again). A non-2xx answer is an
    Error; more than ``consecutive_error_limit`` in a row abort, as in Argo.
    """

    def __init__(
        self,
        judge: JudgeService,
        router: Router,
        rollout_id: str,
        *,
        steps: Sequence[int] = (5, 25, 50),
        interval: float = 2.0,
        deadline: float = 120.0,
        consecutive_error_limit: int = 4,
    ) -> None:
        self.judge = judge
        self.router = router
        self.rollout_id = rollout_id
        self.steps = tuple(steps)
        self.interval = interval
        self.deadline = deadline
        self.consecutive_error_limit = consecutive_error_limit

    def measure(self) -> tuple[int, dict[str, Any]]:
        """``POST /v1/rollouts/{id}/measure``: the web metric's request."""
        response = self.judge.client.post(f"/v1/rollouts/{self.rollout_id}/measure")
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text}
        return response.status_code, body if isinstance(body, dict) else {"body": body}

    def run(self) -> Outcome:
        """Walk the steps until promoted, aborted or past the deadline."""
        start = time.monotonic()
        measurements: list[Measurement] = []
        step, errors = 0, 0

        def outcome(phase: str) -> Outcome:
            return Outcome(phase, self.router.weight, tuple(measurements), time.monotonic() - start)

        self.router.weight = self.steps[0]
        next_at = start + self.interval
        while time.monotonic() < start + self.deadline:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.interval
            traffic = self.router.counts()
            status, body = self.measure()
            m = Measurement(time.monotonic() - start, self.router.weight, status, body, traffic)
            measurements.append(m)
            if m.decision is None:
                errors += 1
                if errors > self.consecutive_error_limit:
                    self.router.weight = 0
                    return outcome("aborted")
                continue
            errors = 0
            if m.decision == "reject":
                self.router.weight = 0
                return outcome("aborted")
            if m.decision == "promote":
                step += 1
                if step == len(self.steps):
                    self.router.weight = 100
                    return outcome("promoted")
                self.router.weight = self.steps[step]
        return outcome("timed out")
