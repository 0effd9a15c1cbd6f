"""Calibration of the canary judge by seeded Monte Carlo (no Hypothesis), sized for CI.

Errors and slow requests (slower than the latency SLO, judged like errors by
`release_spec.strategy.judge.CanaryJudge` with alpha split over the metrics) are both covered;
``judge_rejections`` is checked against `CanaryJudge` look by look in
``tests/test_simulation.py``.

Figures are printed (run with ``-s`` to see them) and recorded as test properties:

    python -m pytest tests/test_calibration.py -q -s -p no:cacheprovider

The bound on a false-rollback rate estimated from n rollouts is
alpha + 3 * sqrt(alpha * (1 - alpha) / n): under a true rate of alpha, an estimate
above it has probability about 0.1 %.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from release_spec.statistics import fixed_horizon_sample_size
from release_spec.strategy.simulation import (
    Looks,
    draw_looks,
    draw_slow,
    judge_rejections,
    monte_carlo_bound,
    random_fraction_schedule,
    simulate,
)

ALPHA = 0.05
RUNS = 2000

Record = Callable[[str, object], None]


@pytest.mark.parametrize(
    ("error_rate", "canary_per_look", "looks"),
    [
        # 1000 looks of about 100 canary requests: 100,000 canary requests per rollout.
        (0.02, 100, 1000),
        # A high error rate, where the Bernoulli (not Poisson) errors matter.
        (0.20, 250, 400),
    ],
)
def test_no_regression_false_rollbacks_at_most_alpha_any_schedule(
    error_rate: float, canary_per_look: int, looks: int, record_property: Record
) -> None:
    rng = np.random.default_rng(7)
    shares = random_fraction_schedule(rng, RUNS, looks, low=0.01, high=0.5)
    assert shares.min() >= 0.01
    assert shares.max() <= 0.5
    sim = simulate(
        runs=RUNS,
        baseline_error=error_rate,
        canary_error=error_rate,
        canary_fractions=shares,
        canary_per_look=canary_per_look,
        alpha=ALPHA,
        seed=11,
    )
    bound = monte_carlo_bound(ALPHA, RUNS)
    seq, naive = sim.sequential.rollback_rate, sim.naive.rollback_rate
    print(
        f"\nno regression, error rate {error_rate}, {looks} looks, "
        f"~{canary_per_look * looks} canary requests, {RUNS} rollouts: "
        f"sequential false rollbacks {seq:.4f}, naive repeated z-test {naive:.4f} "
        f"(bound {bound:.4f})"
    )
    record_property("sequential_false_rollback_rate", seq)
    record_property("naive_false_rollback_rate", naive)
    assert seq <= bound
    # The same draws judged by the fixed-level test at every look: far above alpha.
    assert naive > bound


def test_regression_detected_fast_and_below_fixed_horizon(record_property: Record) -> None:
    # 2 % -> 4 % at 5 % canary traffic; a look every 500 requests (about 25 canary ones).
    sim = simulate(
        runs=RUNS,
        baseline_error=0.02,
        canary_error=0.04,
        canary_fractions=0.05,
        canary_per_look=25,
        looks=160,
        alpha=ALPHA,
        seed=5,
    )
    fixed = fixed_horizon_sample_size(
        0.02, 0.04, alpha=ALPHA, power=0.8, canary_fraction=0.05, alternative="greater"
    )
    within = sim.sequential.rolled_back_within(2500)
    median = sim.sequential.median_exposure
    print(
        f"\nregression 2% -> 4% at 5% share, {RUNS} rollouts: rolled back within 2,500 canary "
        f"requests {within:.4f}; median canary exposure {median:.0f} vs fixed-horizon "
        f"{fixed.canary_requests} (80% power)"
    )
    record_property("detected_within_2500", within)
    record_property("median_exposure", median)
    record_property("fixed_horizon_canary_requests", fixed.canary_requests)
    assert fixed.canary_requests == 610  # one-sided, like the judge
    assert within >= 0.95
    assert median < fixed.canary_requests


# --- latency judged like errors: the slow-request metric ------------------------------------


def _null_requests(
    seed: int, looks: int, canary_per_look: int
) -> tuple[np.random.Generator, Looks]:
    """Requests of RUNS rollouts, a random share schedule each, a look after every batch."""
    rng = np.random.default_rng(seed)
    shares = random_fraction_schedule(rng, RUNS, looks, low=0.01, high=0.5)
    return rng, draw_looks(
        rng, shares, baseline_error=0.0, canary_error=0.0, canary_per_look=canary_per_look
    )


@pytest.mark.parametrize("slow_rate", [0.01, 0.05, 0.20])
def test_slow_metric_alone_false_rollbacks_at_most_alpha(
    slow_rate: float, record_property: Record
) -> None:
    # 400 looks of about 50 canary requests, equal slow rates on both arms.
    rng, requests = _null_requests(21, 400, 50)
    slow = draw_slow(rng, requests, baseline_slow=slow_rate, canary_slow=slow_rate)
    assert abs(slow.baseline_errors.sum() / slow.baseline_requests.sum() - slow_rate) < 0.002
    rate = float(np.mean(judge_rejections([slow], ALPHA) >= 0))
    bound = monte_carlo_bound(ALPHA, RUNS)
    print(
        f"\nslow metric alone, slow rate {slow_rate} on both arms, 400 looks, {RUNS} rollouts: "
        f"false rollbacks {rate:.4f} (bound {bound:.4f})"
    )
    record_property("slow_false_rollback_rate", rate)
    assert rate <= bound


def test_slow_metric_ignores_load_that_slows_both_arms(record_property: Record) -> None:
    """A busy machine: 10 % of looks are 40 % slow on both arms, the rest 0.5 %."""
    rng, requests = _null_requests(22, 400, 50)
    load = np.where(rng.random(requests.canary_requests.shape) < 0.1, 0.4, 0.005)
    slow = draw_slow(rng, requests, baseline_slow=load, canary_slow=load)
    rate = float(np.mean(judge_rejections([slow], ALPHA) >= 0))
    # The guardrail it replaces: canary p99 above the SLO (more than 1 % of the canary's
    # requests slow) once 50 canary requests are in, checked at every look.
    cum_slow = np.cumsum(slow.canary_errors, axis=1)
    cum_n = np.cumsum(slow.canary_requests, axis=1)
    p99_guardrail = float(np.mean(((cum_n >= 50) & (cum_slow > 0.01 * cum_n)).any(axis=1)))
    bound = monte_carlo_bound(ALPHA, RUNS)
    print(
        f"\nload spikes on both arms, {RUNS} rollouts: slow-metric false rollbacks {rate:.4f} "
        f"(bound {bound:.4f}); fixed p99 guardrail at every look {p99_guardrail:.4f}"
    )
    record_property("slow_false_rollback_rate_under_load", rate)
    record_property("p99_guardrail_false_rollback_rate_under_load", p99_guardrail)
    assert rate <= bound
    assert p99_guardrail > 0.9


def _errors_and_slow(
    rng: np.random.Generator,
    requests: Looks,
    *,
    error_rate: float,
    slow_rate: tuple[float, float],
    slow_error_rate: float = 0.3,
) -> tuple[Looks, Looks]:
    """Errors and slow requests on the same requests; a slow request errs more (timeouts).

    ``slow_rate`` is (baseline, canary); fast requests err at ``error_rate``.
    """
    slow = draw_slow(rng, requests, baseline_slow=slow_rate[0], canary_slow=slow_rate[1])

    def errs(n: np.ndarray, n_slow: np.ndarray) -> np.ndarray:
        out: np.ndarray = rng.binomial(n_slow, slow_error_rate) + rng.binomial(
            n - n_slow, error_rate
        )
        return out

    errors = Looks(
        requests.canary_requests,
        errs(requests.canary_requests, slow.canary_errors),
        requests.baseline_requests,
        errs(requests.baseline_requests, slow.baseline_errors),
    )
    return errors, slow


@pytest.mark.parametrize(("error_rate", "slow_rate"), [(0.02, 0.05), (0.20, 0.01), (0.05, 0.20)])
def test_both_metrics_combined_false_rollbacks_at_most_alpha(
    error_rate: float, slow_rate: float, record_property: Record
) -> None:
    # Errors and slowness are correlated (a slow request errs 30 % of the time): the
    # Bonferroni split needs no independence.
    rng, requests = _null_requests(23, 400, 50)
    errors, slow = _errors_and_slow(
        rng, requests, error_rate=error_rate, slow_rate=(slow_rate, slow_rate)
    )
    combined = float(np.mean(judge_rejections([errors, slow], ALPHA) >= 0))
    per_metric = [float(np.mean(judge_rejections([m], ALPHA / 2) >= 0)) for m in (errors, slow)]
    bound = monte_carlo_bound(ALPHA, RUNS)
    print(
        f"\nerrors {error_rate} and slow {slow_rate} on both arms (correlated), 400 looks, "
        f"{RUNS} rollouts: combined judge false rollbacks {combined:.4f} (bound {bound:.4f}); "
        f"each metric at alpha/2: {per_metric[0]:.4f}, {per_metric[1]:.4f}"
    )
    record_property("combined_false_rollback_rate", combined)
    assert combined <= bound
    assert combined <= per_metric[0] + per_metric[1]
    assert combined >= max(per_metric)


def test_slower_canary_is_rolled_back(record_property: Record) -> None:
    # Equal error rates (2 %); slow requests 2 % on the baseline, 4 % on the canary; 5 %
    # canary share, a look every 500 requests (about 25 canary ones); both metrics judged.
    rng = np.random.default_rng(24)
    requests = draw_looks(
        rng, np.full((RUNS, 400), 0.05), baseline_error=0.0, canary_error=0.0, canary_per_look=25
    )
    errors, slow = _errors_and_slow(
        rng, requests, error_rate=0.02, slow_rate=(0.02, 0.04), slow_error_rate=0.02
    )
    at = judge_rejections([errors, slow], ALPHA)
    cum = np.cumsum(requests.canary_requests, axis=1)
    exposure = np.where(at >= 0, np.take_along_axis(cum, np.maximum(at, 0)[:, None], 1)[:, 0], 0)
    detected = float(np.mean(at >= 0))
    within = float(np.mean((at >= 0) & (exposure <= 2500)))
    median = float(np.median(exposure[at >= 0]))
    print(
        f"\nslow requests 2% -> 4% at 5% share, {RUNS} rollouts: rolled back {detected:.4f}, "
        f"within 2,500 canary requests {within:.4f}; median canary exposure {median:.0f}"
    )
    record_property("slow_detected", detected)
    record_property("slow_detected_within_2500", within)
    assert detected >= 0.99
    assert within >= 0.95
