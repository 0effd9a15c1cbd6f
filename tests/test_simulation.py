"""The rollout simulator: schedules, draws, and agreement with the per-look judges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from statsmodels.stats.proportion import proportions_ztest

from release_spec.rollout import default_rollout_plan
from release_spec.simulation import (
    compare_judges,
    draw_looks,
    monte_carlo_bound,
    random_share_schedule,
    simulate,
    simulate_rollout,
)
from release_spec.statistics import SequentialErrorRateTest


def test_monte_carlo_bound_value() -> None:
    assert monte_carlo_bound(0.05, 2000) == pytest.approx(0.05 + 3 * np.sqrt(0.0475 / 2000))
    with pytest.raises(ValueError, match="runs"):
        monte_carlo_bound(0.05, 0)


def test_random_share_schedule_is_piecewise_constant_in_range() -> None:
    rng = np.random.default_rng(0)
    s = random_share_schedule(rng, 300, 50, low=0.01, high=0.5, max_steps=4)
    assert s.shape == (300, 50)
    assert s.min() >= 0.01
    assert s.max() <= 0.5
    changes = (np.diff(s, axis=1) != 0).sum(axis=1)
    assert changes.max() <= 3
    assert changes.min() == 0
    assert np.array_equal(s, random_share_schedule(np.random.default_rng(0), 300, 50, max_steps=4))


def test_draw_looks_routes_by_share() -> None:
    rng = np.random.default_rng(1)
    shares = np.full((200, 30), 0.05)
    d = draw_looks(rng, shares, baseline_error=0.1, canary_error=0.3, canary_per_look=40)
    total = d.canary_requests + d.baseline_requests
    assert np.all(total == 800)
    assert np.all(d.canary_errors <= d.canary_requests)
    assert np.all(d.baseline_errors <= d.baseline_requests)
    # Means over 6000 looks: sd of the canary fraction mean is about 0.0001.
    assert d.canary_requests.sum() / total.sum() == pytest.approx(0.05, abs=0.001)
    assert d.canary_errors.sum() / d.canary_requests.sum() == pytest.approx(0.3, abs=0.01)
    assert d.baseline_errors.sum() / d.baseline_requests.sum() == pytest.approx(0.1, abs=0.005)


def test_sequential_run_matches_the_judge_look_by_look() -> None:
    """The vectorised simulation stops exactly where SequentialErrorRateTest rejects."""
    sim_args = {
        "runs": 40,
        "baseline_error": 0.02,
        "canary_error": 0.05,
        "canary_per_look": 20,
        "looks": 60,
        "seed": 3,
    }
    rng = np.random.default_rng(9)
    shares = random_share_schedule(rng, 40, 60)
    sim = simulate(shares=shares, **sim_args)  # type: ignore[arg-type]
    looks = draw_looks(
        np.random.default_rng(3), shares, baseline_error=0.02, canary_error=0.05, canary_per_look=20
    )
    for r in range(40):
        test = SequentialErrorRateTest(0.05)
        first = -1
        for i in range(60):
            test.update(
                canary_errors=int(looks.canary_errors[r, i]),
                canary_requests=int(looks.canary_requests[r, i]),
                baseline_errors=int(looks.baseline_errors[r, i]),
                baseline_requests=int(looks.baseline_requests[r, i]),
            )
            if test.decision == "reject":
                first = i
                break
        assert sim.sequential.rejected_at[r] == first
        if first >= 0:
            assert sim.sequential.exposure[r] == looks.canary_requests[r, : first + 1].sum()
    assert (sim.sequential.rejected_at >= 0).sum() > 10


def test_naive_run_matches_statsmodels_at_every_look() -> None:
    sim = simulate(
        runs=20,
        baseline_error=0.05,
        canary_error=0.05,
        shares=0.2,
        canary_per_look=30,
        looks=40,
        seed=4,
    )
    looks = draw_looks(
        np.random.default_rng(4),
        np.full((20, 40), 0.2),
        baseline_error=0.05,
        canary_error=0.05,
        canary_per_look=30,
    )
    for r in range(20):
        first = -1
        cum = [np.cumsum(a[r]) for a in (looks.canary_errors, looks.canary_requests)]
        cum += [np.cumsum(a[r]) for a in (looks.baseline_errors, looks.baseline_requests)]
        for i in range(40):
            count = [cum[0][i], cum[2][i]]
            if sum(count) == 0:
                continue
            _, p = proportions_ztest(count, [cum[1][i], cum[3][i]], alternative="larger")
            if p <= 0.05:
                first = i
                break
        assert sim.naive.rejected_at[r] == first


def test_exposure_is_horizon_when_never_rolled_back() -> None:
    sim = simulate(
        runs=50,
        baseline_error=0.0,
        canary_error=0.0,
        shares=0.1,
        canary_per_look=10,
        looks=5,
        seed=0,
    )
    assert sim.sequential.rollback_rate == 0.0
    assert sim.naive.rollback_rate == 0.0
    assert sim.sequential.rolled_back_within(10**9) == 0.0
    assert np.all(sim.sequential.exposure > 0)
    assert sim.max_canary_requests == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shares": 0.0, "looks": 3}, "shares must lie"),
        ({"shares": 0.1}, "looks must be"),
        ({"shares": np.full((2, 3), 0.1), "looks": 3}, "rows"),
        ({"shares": 0.1, "looks": 3, "canary_per_look": 0}, "canary_per_look"),
        ({"shares": 0.1, "looks": 3, "canary_error": 1.5}, "canary_error"),
        ({"shares": 0.1, "looks": 3, "alpha": 1.0}, "alpha"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "runs": 4,
        "baseline_error": 0.1,
        "canary_error": 0.1,
        "canary_per_look": 10,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        simulate(**args)  # type: ignore[arg-type]


def test_simulate_rollout_walks_the_default_plan_when_healthy() -> None:
    s = simulate_rollout(default_rollout_plan(), baseline_error=0.02, canary_error=0.02, seed=1)
    assert s.status == "completed"
    assert s.production == "candidate"
    assert [e.kind for e in s.events if e.kind in ("promote", "complete")] == [
        "promote",
        "promote",
        "promote",
        "complete",
    ]
    shares = [r.share for r in s.history]
    assert shares == sorted(shares)
    assert set(shares) == {1.0, 5.0, 25.0, 50.0}
    p = [r.p_value for r in s.history]
    assert all(a >= b for a, b in itertools.pairwise(p))


def test_simulate_rollout_rolls_back_a_regression_early() -> None:
    s = simulate_rollout(default_rollout_plan(), baseline_error=0.02, canary_error=0.04, seed=1)
    assert s.status == "aborted"
    assert s.production == "production"
    assert s.canary_share == 0.0
    abort = s.events[-1]
    assert abort.kind == "abort"
    assert abort.p_value <= 0.05
    assert abort.counts.canary_requests < 2500


def test_compare_judges_reports_both_judges() -> None:
    c = compare_judges(runs=200, looks=80, seed=3)
    assert c.fixed_horizon == 774
    assert c.null.baseline_error == c.null.canary_error == 0.02
    assert c.regression.canary_error == pytest.approx(0.04)
    text = "\n".join(c.lines())
    assert f"{c.null.naive.rollback_rate:.4f}" in text
    assert f"{c.regression.sequential.median_exposure:.0f}" in text
    assert f"{c.regression.sequential.rolled_back_within(1000):.4f}" in "\n".join(c.lines(1000))
    assert "fixed-horizon canary requests at 80% power (two-sided): 774" in text
    with pytest.raises(ValueError, match="share"):
        compare_judges(share=1.0)


# ----------------------------------------------------- sizes past the documented caps


def _sim_module():  # type: ignore[no-untyped-def]
    import release_spec.simulation as sim

    return sim


SIM_ARGS: dict[str, object] = {
    "baseline_error": 0.02,
    "canary_error": 0.02,
    "shares": 0.05,
    "canary_per_look": 10,
}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 10**9, "looks": 10}, "runs must be at most MAX_RUNS = 100000, got 1000000000"),
        ({"runs": 10, "looks": 10**9}, "looks must be at most MAX_LOOKS = 100000"),
        ({"runs": 100_000, "looks": 100_000}, "runs x looks must be at most MAX_CELLS = 4194304"),
        ({"runs": 10, "looks": 10, "canary_per_look": 10**15}, "canary_per_look must be at most"),
        (
            {"runs": 10, "looks": 10, "canary_per_look": 10**6, "shares": 1e-9},
            "canary_per_look / share must be at most MAX_LOOK_REQUESTS",
        ),
        ({"runs": "10", "looks": 10}, "runs must be an integer"),
        ({"runs": True, "looks": 10}, "runs must be an integer"),
        ({"runs": 10, "looks": 2.5}, "looks must be an integer"),
        ({"runs": 10, "looks": 0}, "looks must be >= 1"),
    ],
)
def test_simulate_refuses_sizes_past_its_caps_by_name(
    kwargs: dict[str, object], message: str
) -> None:
    # Before the caps, runs=10**9 ended in a MemoryError (or a machine swapping).
    with pytest.raises(ValueError, match=message):
        simulate(**(SIM_ARGS | kwargs))  # type: ignore[arg-type]


def test_size_caps_of_the_other_entry_points() -> None:
    sim = _sim_module()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="runs x looks must be at most MAX_CELLS"):
        random_share_schedule(rng, 10**5, 10**5)
    with pytest.raises(ValueError, match="max_steps must be at most MAX_STEPS = 16"):
        random_share_schedule(rng, 2, 3, max_steps=10**9)
    with pytest.raises(ValueError, match="batch_requests must be at most MAX_BATCH_REQUESTS"):
        simulate_rollout(
            default_rollout_plan(), baseline_error=0.02, canary_error=0.02, batch_requests=10**12
        )
    with pytest.raises(ValueError, match="canary_per_look must be >= 1"):
        draw_looks(rng, np.full((1, 1), 0.5), baseline_error=0, canary_error=0, canary_per_look=0)
    # At the caps everything still works.
    cells = random_share_schedule(rng, sim.MAX_CELLS // 4096, 4096, max_steps=sim.MAX_STEPS)
    assert cells.shape == (1024, 4096)
    at_cap = simulate(**(SIM_ARGS | {"runs": 1, "looks": 4, "canary_per_look": 2**20}))
    assert at_cap.looks == 4


def test_simulate_accepts_numpy_integers() -> None:
    ours = simulate(**(SIM_ARGS | {"runs": np.int64(50), "looks": np.int32(20), "seed": 3}))
    ref = simulate(**(SIM_ARGS | {"runs": 50, "looks": 20, "seed": 3}))
    np.testing.assert_array_equal(ours.sequential.rejected_at, ref.sequential.rejected_at)
    np.testing.assert_array_equal(ours.naive.exposure, ref.naive.exposure)
