"""A trivial model server for the end-to-end rollout test: one process per version.

Usage: ``python tests/e2e/model_server.py --port P --version V [--error-rate R]
[--slow-rate S] [--slow-seconds T] [--slo-seconds L] [--seed N]``

``POST /predict`` answers a canned prediction. With probability ``--error-rate``
(drawn from a seeded RNG) it answers HTTP 500 instead, and with probability
``--slow-rate`` it first sleeps ``--slow-seconds``. The server times every
prediction itself and exports, on ``GET /metrics``, the counters a real model
server would: requests, errors (5xx), requests slower than ``--slo-seconds``,
and a latency histogram with a bucket at the SLO. Prometheus scrapes them; the
test never reads them directly. Only the standard library and
prometheus-client are imported, so the process starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import sys
import threading
import time
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest


class _Model:
    """The served "model" and its counters; one per process."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.version = args.version
        self.error_rate = args.error_rate
        self.slow_rate = args.slow_rate
        self.slow_seconds = args.slow_seconds
        self.slo_seconds = args.slo_seconds
        self._rng = random.Random(args.seed)
        self._rng_lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "model_requests", "Prediction requests served.", registry=self.registry
        )
        self.errors = Counter(
            "model_errors", "Prediction requests answered with HTTP 5xx.", registry=self.registry
        )
        self.slow = Counter(
            "model_slow_requests",
            "Prediction requests slower than the latency SLO.",
            registry=self.registry,
        )
        self.latency = Histogram(
            "model_request_duration_seconds",
            "Time to answer a prediction request.",
            buckets=sorted({0.005, 0.01, 0.025, args.slo_seconds, 0.1, 0.25, 0.5, 1.0}),
            registry=self.registry,
        )

    def draw(self) -> tuple[bool, bool]:
        """Whether this request fails and whether it is slowed (seeded, thread-safe)."""
        with self._rng_lock:
            return self._rng.random() < self.error_rate, self._rng.random() < self.slow_rate


class _Handler(http.server.BaseHTTPRequestHandler):
    # Keep-alive: the load generator reuses one connection per thread and backend.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and the
    # client's delayed ACK each answer would wait about 40 ms.
    disable_nagle_algorithm = True
    model: _Model

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, generate_latest(self.model.registry), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._send(404, b"not found\n", "text/plain")
            return
        start = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        model = self.model
        fail, slow = model.draw()
        if slow:
            time.sleep(model.slow_seconds)
        if fail:
            status, body = 500, {"error": "model failed", "version": model.version}
        else:
            status, body = 200, {"label": 1, "score": 0.87, "version": model.version}
        # Counted before the answer is written so that a scrape never sees an
        # answered request that is not yet counted.
        elapsed = time.perf_counter() - start
        model.requests.inc()
        if fail:
            model.errors.inc()
        if elapsed > model.slo_seconds:
            model.slow.inc()
        model.latency.observe(elapsed)
        self._send(status, json.dumps(body).encode(), "application/json")


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--slow-rate", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=0.2)
    parser.add_argument("--slo-seconds", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    _Handler.model = _Model(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    print(f"serving {args.version} on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
