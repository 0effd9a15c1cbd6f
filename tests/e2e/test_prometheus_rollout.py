"""End to end on localhost: a canary rollout decided by the judge from Prometheus counters.

Real parts only: two model servers (the stable version and the candidate), each
exporting its own request, error and slow-request counters; Debian's Prometheus
scraping them every second; ``release-spec judge serve`` configured with PromQL
for each arm; a load generator sending predictions through a router that splits
them by the current canary weight; and a driver playing Argo Rollouts: it calls
the judge's web metric (``POST /v1/rollouts/{id}/measure``) every two seconds,
raises the weight 10 -> 25 -> 50 -> 100 on "promote" and aborts (weight 0) on
"reject". A candidate that errs four times as often, or answers one request in
ten too slowly, must be rolled back; one as good as the stable version must be
promoted.

Needs ``/usr/bin/prometheus`` (``apt-get install prometheus``, as .ci/run does):
without it the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    PROMETHEUS,
    ArgoDriver,
    JudgeService,
    LoadGenerator,
    ModelServer,
    ModelSpec,
    Outcome,
    PrometheusServer,
    Router,
    TrafficCounts,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# The judge's guarantee and what it calls good enough. alpha = 0.01 keeps the
# chance of rejecting the good candidate (the only statistical failure this test can
# have) at most 1 %, and far lower in practice because that run stops at its
# first promotion; the harmful candidates exceed the margins 1.5- to 2.5-fold.
ALPHA = 0.01
MARGIN = 0.04
SLOW_MARGIN = 0.04
SLO_SECONDS = 0.05
# About 300 predictions a second in all: at the first step the canary gets 30 a
# second, enough to promote a good candidate in well under a minute (a seeded
# simulation of the same counts: median 28 s, worst of 300 runs 60 s).
RATE = 300.0
STEPS = (10, 25, 50)
INTERVAL = 2.0
DEADLINE = 120.0
# The judge reads increase() over the window since its previous look; a window with
# fewer than two samples of a series gives an empty answer, and the judge then counts
# no look and keeps the window open (the next look covers it). Four scrapes per look
# keep such delays rare on a busy machine; with one scrape a second, about one look
# in seven came back empty.
SCRAPE_INTERVAL = "500ms"

# The metric that must reject each harmful candidate.
EXPECTED_METRIC = {"erring": "errors", "slow": "slow"}

STABLE = ModelSpec("v1", error_rate=0.02, seed=101)
CANDIDATES = {
    "good": ModelSpec("v2-good", error_rate=0.02, seed=202),
    "erring": ModelSpec("v2-erring", error_rate=0.08, seed=303),
    "slow": ModelSpec("v2-slow", error_rate=0.02, slow_rate=0.10, slow_seconds=0.2, seed=404),
}


def _promql(track: str) -> dict[str, str]:
    selector = f'{{job="model", track="{track}"}}'
    return {
        "requests": f"model_requests_total{selector}",
        "errors": f"model_errors_total{selector}",
        "slow": f"model_slow_requests_total{selector}",
    }


def rollout_config(prometheus_url: str) -> dict[str, Any]:
    """The ``PUT /v1/rollouts/{id}`` body: the judge's settings and its Prometheus source."""
    return {
        "alpha": ALPHA,
        "margin": MARGIN,
        "metrics": ["errors", "slow"],
        "slow_margin": SLOW_MARGIN,
        "slo_seconds": SLO_SECONDS,
        "prometheus": {
            "url": prometheus_url,
            "canary": _promql("canary"),
            "baseline": _promql("stable"),
        },
    }


def _require_prometheus() -> None:
    if PROMETHEUS.exists():
        return
    how = "install it with `apt-get install prometheus` (as .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"the end-to-end rollout test needs {PROMETHEUS}; {how}")
    pytest.skip(f"{PROMETHEUS} not found; {how}")


def _close(judge: JudgeService, rollout_id: str) -> None:
    # Teardown: a judge that already died must not hide the test's own failure.
    with contextlib.suppress(httpx.HTTPError):
        judge.client.delete(f"/v1/rollouts/{rollout_id}")


@dataclass(frozen=True)
class Rollout:
    """A finished rollout: what the driver did and what the load generator saw."""

    outcome: Outcome
    final: dict[str, Any]
    traffic: TrafficCounts
    canary_after_end: int
    judge_log: str

    def describe(self) -> str:
        """The driver's log, the traffic and the judge's log, for assertion messages."""
        return (
            f"{self.outcome.describe()}\nfinal: {self.final}\ntraffic: {self.traffic}\n"
            f"judge log:\n{self.judge_log}"
        )


@pytest.fixture
def roll_out(tmp_path: Path) -> Iterator[Callable[[ModelSpec], Rollout]]:
    """Start every part for one candidate, run the rollout, stop everything at teardown."""
    _require_prometheus()
    with contextlib.ExitStack() as stack:

        def run(candidate: ModelSpec) -> Rollout:
            stable = ModelServer(STABLE, tmp_path, slo_seconds=SLO_SECONDS)
            canary = ModelServer(candidate, tmp_path, slo_seconds=SLO_SECONDS)
            targets = {"stable": f"127.0.0.1:{stable.port}", "canary": f"127.0.0.1:{canary.port}"}
            prometheus = PrometheusServer(
                targets, tmp_path / "prometheus", scrape_interval=SCRAPE_INTERVAL
            )
            judge = JudgeService(tmp_path / "judge")
            # Started together, so that the judge's imports overlap Prometheus's first scrape.
            started = time.monotonic()
            for part in (stable, canary, prometheus, judge):
                stack.callback(part.stop)
                part.start()
            for part in (stable, canary, prometheus, judge):
                part.wait_ready()
            print(f"servers, Prometheus and judge ready after {time.monotonic() - started:.1f} s")
            router = Router(stable.url, canary.url)
            load = stack.enter_context(LoadGenerator(router, rate=RATE, seed=7))
            rollout_id = f"model-{candidate.version}"
            created = judge.client.put(
                f"/v1/rollouts/{rollout_id}", json=rollout_config(prometheus.url)
            )
            assert created.status_code in (200, 201), created.text
            stack.callback(_close, judge, rollout_id)
            driver = ArgoDriver(
                judge, router, rollout_id, steps=STEPS, interval=INTERVAL, deadline=DEADLINE
            )
            outcome = driver.run()
            traffic = router.counts()
            final = judge.client.get(f"/v1/rollouts/{rollout_id}")
            assert final.status_code == 200, final.text
            # One more interval of traffic: after an abort none of it may reach the canary.
            time.sleep(INTERVAL)
            canary_after_end = router.counts().sent["canary"] - traffic.sent["canary"]
            assert not load.errors, load.errors
            rollout = Rollout(outcome, final.json(), traffic, canary_after_end, judge.tail())
            print(rollout.describe())  # shown by `pytest -rP`, and on failure
            return rollout

        yield run


@pytest.mark.parametrize("name", ["erring", "slow"])
def test_harmful_candidate_is_rolled_back(
    roll_out: Callable[[ModelSpec], Rollout], name: str
) -> None:
    rollout = roll_out(CANDIDATES[name])
    outcome, final = rollout.outcome, rollout.final
    why = rollout.describe()
    assert outcome.phase == "aborted", why
    assert outcome.weight == 0, why
    assert outcome.measurements[-1].decision == "reject", why
    assert final["decision"] == "reject", why
    assert final["p_value"] <= ALPHA, why
    rejected_by = [m["name"] for m in final["metrics"] if m["decision"] == "reject"]
    assert EXPECTED_METRIC[name] in rejected_by, why
    # The judge rejected on canary traffic it read from Prometheus, and the abort
    # moved every later request to the stable version.
    assert final["canary_requests"] > 0, why
    assert rollout.canary_after_end == 0, why
    # No measurement before the rejection promoted the harmful candidate.
    assert all(m.decision == "continue" for m in outcome.measurements[:-1]), why


def test_good_candidate_is_promoted(roll_out: Callable[[ModelSpec], Rollout]) -> None:
    rollout = roll_out(CANDIDATES["good"])
    outcome, final = rollout.outcome, rollout.final
    why = rollout.describe()
    assert outcome.phase == "promoted", why
    assert outcome.weight == 100, why
    assert [m.decision for m in outcome.measurements].count("reject") == 0, why
    # Each step was left on a promotion: the weights the judge promoted at are the steps.
    promoted_at = [m.weight for m in outcome.measurements if m.decision == "promote"]
    assert promoted_at == list(STEPS), why
    assert final["decision"] == "promote", why
    low, high = final["bounds"]
    assert low <= high < MARGIN, why
    # The counts the judge used are the servers' own, read through Prometheus:
    # close to what the router had sent to the canary when the last look was taken.
    sent = outcome.measurements[-1].traffic.sent["canary"]
    assert final["canary_requests"] == pytest.approx(sent, rel=0.25), why
    assert final["baseline_requests"] > 0, why
    assert rollout.canary_after_end > 0, why
