"""The rollout simulator: schedules, draws, the per-look judges, the engines' rules."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.proportion import proportions_ztest

from release_spec.cli import main
from release_spec.statistics import SequentialErrorRateTest
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig
from release_spec.strategy.rollout import service_rollout_plan
from release_spec.strategy.simulation import (
    RULES,
    SCENARIOS,
    Looks,
    RuleSettings,
    Scenario,
    Simulation,
    argo_rule,
    compare_judges,
    compare_rules,
    draw_looks,
    draw_slow,
    flagger_rule,
    judge_rejections,
    kayenta_rule,
    kayenta_score,
    mann_whitney_classification,
    monte_carlo_bound,
    parse_rules,
    random_fraction_schedule,
    simulate,
    simulate_rollout,
)

RULES_JSON = Path(__file__).resolve().parents[1] / "docs" / "data" / "rules.json"


def test_monte_carlo_bound_value() -> None:
    assert monte_carlo_bound(0.05, 2000) == pytest.approx(0.05 + 3 * np.sqrt(0.0475 / 2000))
    with pytest.raises(ValueError, match="runs"):
        monte_carlo_bound(0.05, 0)


def test_random_fraction_schedule_is_piecewise_constant_in_range() -> None:
    rng = np.random.default_rng(0)
    s = random_fraction_schedule(rng, 300, 50, low=0.01, high=0.5, max_steps=4)
    assert s.shape == (300, 50)
    assert s.min() >= 0.01
    assert s.max() <= 0.5
    changes = (np.diff(s, axis=1) != 0).sum(axis=1)
    assert changes.max() <= 3
    assert changes.min() == 0
    assert np.array_equal(
        s, random_fraction_schedule(np.random.default_rng(0), 300, 50, max_steps=4)
    )


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


def _simulated_and_drawn(
    fractions: np.ndarray,
    *,
    baseline_error: float,
    canary_error: float,
    canary_per_look: int,
    seed: int,
) -> tuple[Simulation, Looks]:
    """`simulate` on a (runs, looks) schedule, and the looks it drew (the same seed)."""
    sim = simulate(
        runs=fractions.shape[0],
        baseline_error=baseline_error,
        canary_error=canary_error,
        canary_fractions=fractions,
        canary_per_look=canary_per_look,
        looks=fractions.shape[1],
        seed=seed,
    )
    drawn = draw_looks(
        np.random.default_rng(seed),
        fractions,
        baseline_error=baseline_error,
        canary_error=canary_error,
        canary_per_look=canary_per_look,
    )
    return sim, drawn


def test_sequential_run_matches_the_judge_look_by_look() -> None:
    """The vectorised simulation stops exactly where SequentialErrorRateTest rejects."""
    shares = random_fraction_schedule(np.random.default_rng(9), 40, 60)
    sim, looks = _simulated_and_drawn(
        shares, baseline_error=0.02, canary_error=0.05, canary_per_look=20, seed=3
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
    sim, looks = _simulated_and_drawn(
        np.full((20, 40), 0.2), baseline_error=0.05, canary_error=0.05, canary_per_look=30, seed=4
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
        canary_fractions=0.1,
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
        ({"canary_fractions": 0.0, "looks": 3}, "canary_fractions must lie"),
        ({"canary_fractions": 0.1}, "looks must be >= 1 when canary_fractions is a constant"),
        ({"canary_fractions": np.full((2, 3), 0.1), "looks": 3}, "rows"),
        ({"canary_fractions": 0.1, "looks": 3, "canary_per_look": 0}, "canary_per_look"),
        ({"canary_fractions": 0.1, "looks": 3, "canary_error": 1.5}, "canary_error"),
        ({"canary_fractions": 0.1, "looks": 3, "alpha": 1.0}, "alpha"),
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
    s = simulate_rollout(service_rollout_plan(), baseline_error=0.02, canary_error=0.02, seed=1)
    assert s.status == "completed"
    assert s.production == "candidate"
    assert [e.kind for e in s.events if e.kind in ("promote", "complete")] == [
        "promote",
        "promote",
        "promote",
        "complete",
    ]
    shares = [r.share_pct for r in s.history]
    assert shares == sorted(shares)
    assert set(shares) == {1.0, 5.0, 25.0, 50.0}
    p = [r.p_value for r in s.history]
    assert all(a >= b for a, b in itertools.pairwise(p))


def test_simulate_rollout_rolls_back_a_regression_early() -> None:
    s = simulate_rollout(service_rollout_plan(), baseline_error=0.02, canary_error=0.04, seed=1)
    assert s.status == "aborted"
    assert s.production == "production"
    assert s.canary_share_pct == 0.0
    abort = s.events[-1]
    assert abort.kind == "abort"
    assert abort.p_value <= 0.05
    assert abort.counts.canary_requests < 2500


def test_compare_judges_reports_both_judges() -> None:
    c = compare_judges(runs=200, looks=80, seed=3)
    assert c.fixed_horizon == 610  # one-sided, like the judge
    assert c.null.baseline_error == c.null.canary_error == 0.02
    assert c.regression.canary_error == pytest.approx(0.04)
    text = "\n".join(c.lines())
    assert f"{c.null.naive.rollback_rate:.4f}" in text
    assert f"{c.regression.sequential.median_exposure:.0f}" in text
    assert f"{c.regression.sequential.rolled_back_within(1000):.4f}" in "\n".join(c.lines(1000))
    assert "fixed-horizon canary requests at 80% power (one-sided): 610" in text
    with pytest.raises(ValueError, match="canary_fraction"):
        compare_judges(canary_fraction=1.0)


# --- several metrics: the slow-request metric judged like errors ---------------------------


def test_judge_rejections_match_canary_judge_look_by_look() -> None:
    """The vectorised rule stops exactly where CanaryJudge (errors + slow) rejects."""
    rng = np.random.default_rng(12)
    shares = random_fraction_schedule(rng, 30, 40)
    errors = draw_looks(rng, shares, baseline_error=0.02, canary_error=0.03, canary_per_look=20)
    # Half the rollouts have a slower canary.
    canary_slow = np.where(np.arange(30)[:, None] < 15, 0.12, 0.03)
    slow = draw_slow(rng, errors, baseline_slow=0.03, canary_slow=canary_slow)
    at = judge_rejections([errors, slow], 0.05)
    for r in range(30):
        judge = CanaryJudge(JudgeConfig(alpha=0.05, margin=0.02, slow_margin=0.02))
        first = -1
        for i in range(40):
            v = judge.update(
                ArmCounts(
                    int(errors.canary_requests[r, i]),
                    int(errors.canary_errors[r, i]),
                    int(slow.canary_errors[r, i]),
                ),
                ArmCounts(
                    int(errors.baseline_requests[r, i]),
                    int(errors.baseline_errors[r, i]),
                    int(slow.baseline_errors[r, i]),
                ),
            )
            if v.decision == "reject":
                first = i
                break
        assert at[r] == first
    assert 5 < (at >= 0).sum() < 30


def test_draw_slow_uses_the_same_requests_and_each_arms_rate() -> None:
    rng = np.random.default_rng(2)
    d = draw_looks(
        rng, np.full((300, 20), 0.2), baseline_error=0.0, canary_error=0.0, canary_per_look=50
    )
    s = draw_slow(rng, d, baseline_slow=0.05, canary_slow=0.15)
    assert np.array_equal(s.canary_requests, d.canary_requests)
    assert np.array_equal(s.baseline_requests, d.baseline_requests)
    assert s.canary_errors.sum() / s.canary_requests.sum() == pytest.approx(0.15, abs=0.005)
    assert s.baseline_errors.sum() / s.baseline_requests.sum() == pytest.approx(0.05, abs=0.002)
    with pytest.raises(ValueError, match="canary_slow"):
        draw_slow(rng, d, baseline_slow=0.05, canary_slow=1.5)
    with pytest.raises(ValueError, match="at least one metric"):
        judge_rejections([])


# --- the rules of the progressive-delivery engines -----------------------------------------


def test_argo_rule_counts_failed_measurements_and_nan_fails() -> None:
    n = np.full((1, 6), 100)
    # Measurements 1, 2, 4 and 5 fail (5 % > 3 %); failureLimit 3 aborts at the 4th failure.
    errs = np.array([[0, 5, 5, 0, 5, 5]])
    assert argo_rule(errs, n, threshold=0.03, failure_limit=3).tolist() == [5]
    assert argo_rule(errs, n, threshold=0.03, failure_limit=0).tolist() == [1]
    assert argo_rule(errs, n, threshold=0.05, failure_limit=0).tolist() == [-1]  # 5 % <= 5 %
    # An interval without traffic is NaN: the success condition is false, the measurement fails.
    idle = np.array([[100, 0, 100]])
    assert argo_rule(np.zeros((1, 3), np.int64), idle, threshold=0.5).tolist() == [1]
    # A measurement every 3 intervals over those intervals: 10/300 > 3 % fails the first;
    # the incomplete last window (interval 6) is never measured.
    n7 = np.full((1, 7), 100)
    assert argo_rule(np.array([[0, 0, 10, 0, 0, 0, 90]]), n7, threshold=0.03, every=3).tolist() == [
        2
    ]
    assert argo_rule(np.array([[0, 0, 9, 0, 0, 0, 90]]), n7, threshold=0.03, every=3).tolist() == [
        -1
    ]


def test_flagger_rule_rolls_back_at_threshold_failed_checks() -> None:
    n = np.array([[100, 100, 0, 100, 100]])
    errs = np.array([[5, 0, 0, 0, 5]])
    # Failed checks: interval 0 (5 % > 3 %), interval 2 (no values found), interval 4.
    assert flagger_rule(errs, n, max_error_rate=0.03, threshold=1).tolist() == [0]
    assert flagger_rule(errs, n, max_error_rate=0.03, threshold=2).tolist() == [2]
    assert flagger_rule(errs, n, max_error_rate=0.03, threshold=3).tolist() == [4]
    assert flagger_rule(errs, n, max_error_rate=0.03, threshold=4).tolist() == [-1]


def _literal_mann_whitney(x: np.ndarray, y: np.ndarray, conf: float, tol: float) -> str:
    """Hollander-Wolfe interval and Kayenta's classification, written out with a full sort."""
    from statistics import NormalDist

    m, n = len(x), len(y)
    d = sorted(a - b for a in x for b in y)
    z = NormalDist().inv_cdf(0.5 + conf / 2)
    c = int(np.floor(m * n / 2 - z * np.sqrt(m * n * (m + n + 1) / 12)))
    if c < 1:
        return "Pass"
    lower, upper = d[c - 1], d[m * n - c]
    bound = tol * abs(float(np.median(d)))
    return "High" if lower > bound else "Low" if upper < -bound else "Pass"


def test_mann_whitney_classification_matches_the_literal_interval() -> None:
    rng = np.random.default_rng(8)
    seen = set()
    for _ in range(300):
        m, n = rng.integers(3, 40, size=2)
        x = rng.binomial(100, rng.uniform(0.01, 0.1), size=m) / 100
        y = rng.binomial(100, rng.uniform(0.01, 0.1), size=n) / 100
        got = mann_whitney_classification(x, y, confidence=0.98, tolerance=0.25)
        assert got == _literal_mann_whitney(x, y, 0.98, 0.25)
        seen.add(got)
    assert seen == {"High", "Low", "Pass"}
    assert mann_whitney_classification(np.array([np.nan]), np.array([0.1])) == "Nodata"
    assert mann_whitney_classification(np.array([0.1, np.nan]), np.array([0.1])) == "Pass"


def test_kayenta_rule_scores_every_analysis_and_skips_no_data() -> None:
    worse = Looks(*(np.full((1, 60), v) for v in (100, 9, 1900, 19)))
    # Analyses after 30 and 60 intervals; the first already classifies the canary High.
    assert kayenta_rule(worse, every=30).tolist() == [29]
    assert kayenta_rule(worse, every=25).tolist() == [24]
    # No canary traffic at all: Nodata, no score, no decision.
    idle = Looks(*(np.full((1, 60), v) for v in (0, 0, 1900, 19)))
    assert kayenta_rule(idle, every=30).tolist() == [-1]
    # With marginal 0 no analysis fails early, but the last one must reach pass.
    assert kayenta_rule(worse, every=30, marginal_score=0.0).tolist() == [59]
    assert kayenta_score(["Pass", "High"]) == 50.0
    assert kayenta_score(["Nodata"]) is None


def test_parse_rules_and_scenarios_refuse_bad_input() -> None:
    assert parse_rules(" kayenta , argo ") == ("argo", "kayenta")
    with pytest.raises(ValueError, match="no rule given"):
        parse_rules(",")
    with pytest.raises(ValueError, match="idle_rate"):
        Scenario("x", "x", 0.02, 0.02, idle_rate=1.5)
    with pytest.raises(ValueError, match="kayenta_marginal"):
        RuleSettings(kayenta_marginal=96.0)
    with pytest.raises(ValueError, match="rules must be"):
        compare_rules(("argo", "spinnaker"), runs=2)


def test_compare_rules_same_draws_for_any_subset_of_rules() -> None:
    full = compare_rules(runs=60, seed=4)
    part = compare_rules(("sequential", "argo"), runs=60, seed=4)
    assert part.rules == ("argo", "sequential")
    for sc in SCENARIOS:
        for rule in part.rules:
            assert part.result(rule, sc.name) == full.result(rule, sc.name)
    # Every rule catches the lasting regression; the anytime-valid judge stays under
    # alpha + 3 s.e. where the canary is never worse.
    assert all(full.result(r, "regression").rollback_rate > 0.9 for r in RULES)
    bound = monte_carlo_bound(0.05, 60)
    assert all(
        full.result("sequential", s.name).rollback_rate <= bound for s in SCENARIOS if s.null
    )
    data = full.to_dict()
    assert len(data["results"]) == len(SCENARIOS) * len(RULES)  # type: ignore[arg-type]
    text = "\n".join(full.lines())
    r = full.result("flagger", "none-5")
    assert f"{100 * r.rollback_rate:.1f}/{r.median_intervals:g}" in text


def test_simulate_rules_command_prints_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rules.json"
    code = main(["simulate", "--rules", "argo,sequential", "--runs", "40", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Argo Rollouts" in text
    assert "Flagger" not in text
    data = json.loads(out.read_text())
    assert data["generated"].startswith("release-spec simulate --rules argo,sequential --runs 40")
    assert data == {
        "generated": data["generated"],
        **compare_rules(("argo", "sequential"), runs=40, seed=0).to_dict(),
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rules", "argo,spinnaker"], "unknown rule 'spinnaker'"),
        (["--json", "x.json"], "--json needs --rules"),
        (["--rules", "all", "--json", "/nonexistent-dir/x.json"], "--json /nonexistent-dir"),
        (["--rules", "all", "--runs", "50000"], "--runs: runs x looks must be at most MAX_CELLS"),
    ],
)
def test_simulate_rules_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_committed_rules_json_matches_a_fresh_run(tmp_path: Path) -> None:
    """docs/data/rules.json is what the command it names writes (same runs, seed, alpha)."""
    committed = json.loads(RULES_JSON.read_text(encoding="utf-8"))
    argv = committed["generated"].split()
    assert argv[:2] == ["release-spec", "simulate"]
    out = tmp_path / "rules.json"
    argv[argv.index("--json") + 1] = str(out)
    assert main(argv[1:]) == 0
    fresh = json.loads(out.read_text(encoding="utf-8"))
    assert {k: v for k, v in fresh.items() if k != "generated"} == {
        k: v for k, v in committed.items() if k != "generated"
    }


# ----------------------------------------------------- sizes past the documented caps


def _sim_module():  # type: ignore[no-untyped-def]
    import release_spec.strategy.simulation as sim

    return sim


SIM_ARGS: dict[str, object] = {
    "baseline_error": 0.02,
    "canary_error": 0.02,
    "canary_fractions": 0.05,
    "canary_per_look": 10,
}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"runs": 10**9, "looks": 10},
            r"runs: expected an integer in \[1, 100000\] \(MAX_RUNS\), got 1000000000",
        ),
        (
            {"runs": 10, "looks": 10**9},
            r"looks: expected an integer in \[1, 100000\] \(MAX_LOOKS\)",
        ),
        ({"runs": 100_000, "looks": 100_000}, "runs x looks must be at most MAX_CELLS = 4194304"),
        (
            {"runs": 10, "looks": 10, "canary_per_look": 10**15},
            r"canary_per_look: expected an integer in \[1, 1099511627776\] \(MAX_LOOK_REQUESTS\)",
        ),
        (
            {"runs": 10, "looks": 10, "canary_per_look": 10**6, "canary_fractions": 1e-9},
            "canary_per_look / canary_fraction must be at most MAX_LOOK_REQUESTS",
        ),
        ({"runs": "10", "looks": 10}, "runs: expected an integer"),
        ({"runs": True, "looks": 10}, "runs: expected an integer"),
        ({"runs": 10, "looks": 2.5}, "looks: expected an integer"),
        ({"runs": 10, "looks": 0}, r"looks: expected an integer in \[1, .*got 0"),
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
        random_fraction_schedule(rng, 10**5, 10**5)
    with pytest.raises(
        ValueError, match=r"max_steps: expected an integer in \[1, 16\] \(MAX_STEPS\)"
    ):
        random_fraction_schedule(rng, 2, 3, max_steps=10**9)
    with pytest.raises(ValueError, match=r"batch_requests: expected .* \(MAX_BATCH_REQUESTS\)"):
        simulate_rollout(
            service_rollout_plan(), baseline_error=0.02, canary_error=0.02, batch_requests=10**12
        )
    with pytest.raises(ValueError, match=r"canary_per_look: expected an integer in \[1, "):
        draw_looks(rng, np.full((1, 1), 0.5), baseline_error=0, canary_error=0, canary_per_look=0)
    # At the caps everything still works.
    cells = random_fraction_schedule(rng, sim.MAX_CELLS // 4096, 4096, max_steps=sim.MAX_STEPS)
    assert cells.shape == (1024, 4096)
    at_cap = simulate(**(SIM_ARGS | {"runs": 1, "looks": 4, "canary_per_look": 2**20}))
    assert at_cap.looks == 4


def test_simulate_accepts_numpy_integers() -> None:
    ours = simulate(**(SIM_ARGS | {"runs": np.int64(50), "looks": np.int32(20), "seed": 3}))
    ref = simulate(**(SIM_ARGS | {"runs": 50, "looks": 20, "seed": 3}))
    np.testing.assert_array_equal(ours.sequential.rejected_at, ref.sequential.rejected_at)
    np.testing.assert_array_equal(ours.naive.exposure, ref.naive.exposure)
