"""Calibration of the canary judge by seeded Monte Carlo (no Hypothesis), sized for CI.

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

from release_spec.simulation import monte_carlo_bound, random_share_schedule, simulate
from release_spec.statistics import fixed_horizon_sample_size

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
    shares = random_share_schedule(rng, RUNS, looks, low=0.01, high=0.5)
    assert shares.min() >= 0.01
    assert shares.max() <= 0.5
    sim = simulate(
        runs=RUNS,
        baseline_error=error_rate,
        canary_error=error_rate,
        shares=shares,
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
        shares=0.05,
        canary_per_look=25,
        looks=160,
        alpha=ALPHA,
        seed=5,
    )
    fixed = fixed_horizon_sample_size(0.02, 0.04, alpha=ALPHA, power=0.8, share=0.05)
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
    assert fixed.canary_requests == 774
    assert within >= 0.95
    assert median < fixed.canary_requests
