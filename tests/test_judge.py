"""Tests for release_spec.strategy.judge: validation, decision rule, state round trip, validity."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

from release_spec.statistics import (
    ErrorRateConfidenceSequence,
    Interval,
    SequentialErrorRateTest,
    _beta_binomial_interval,
)
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig


@st.composite
def arm(draw: st.DrawFn) -> ArmCounts:
    n = draw(st.integers(0, 3000))
    return ArmCounts(n, draw(st.integers(0, n)), draw(st.integers(0, n)))


looks = st.lists(st.tuples(arm(), arm()), min_size=0, max_size=8)
configs = st.builds(
    JudgeConfig,
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
    margin=st.sampled_from([0.005, 0.02, 0.1]),
    slow_margin=st.sampled_from([None, 0.01, 0.05]),
    min_canary_requests=st.sampled_from([0, 500, 5000]),
)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"requests": -1, "errors": 0}, "requests"),
        ({"requests": 10, "errors": -2}, "errors"),
        ({"requests": 10, "errors": 0, "slow": -1}, "slow"),
        ({"requests": 10.0, "errors": 0}, "requests"),
        ({"requests": True, "errors": 0}, "requests"),
        ({"requests": 10, "errors": "1"}, "errors"),
        ({"requests": 10, "errors": 11}, "errors"),
        ({"requests": 10, "errors": 0, "slow": 11}, "slow"),
    ],
)
def test_arm_counts_refuses_bad_counts_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must"):
        ArmCounts(**kwargs)


def test_arm_counts_accepts_numpy_ints_as_python_ints() -> None:
    a = ArmCounts(np.int64(10), np.uint8(3), np.int32(4))
    assert (a.requests, a.errors, a.slow) == (10, 3, 4)
    assert all(type(v) is int for v in (a.requests, a.errors, a.slow))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"margin": 0}, "margin"),
        ({"margin": math.inf}, "margin"),
        ({"slow_margin": -0.1}, "slow_margin"),
        ({"min_canary_requests": -1}, "min_canary_requests"),
        ({"min_canary_requests": 1.5}, "min_canary_requests"),
    ],
)
def test_judge_config_refuses_bad_settings_naming_them(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must"):
        JudgeConfig(**kwargs)


def test_judge_config_splits_alpha_over_the_judged_metrics() -> None:
    assert JudgeConfig(alpha=0.05).metrics == ("errors",)
    assert JudgeConfig(alpha=0.05).metric_alpha == 0.05
    assert JudgeConfig(alpha=0.05, slow_margin=0.1).metric_alpha == 0.025


# ---------------------------------------------------------------- agreement with the formulas


@given(config=configs, seq=looks)
def test_canary_judge_equals_its_tests_fed_the_same_looks(
    config: JudgeConfig, seq: list[tuple[ArmCounts, ArmCounts]]
) -> None:
    """p-value, bounds and decision follow the statistics primitives at alpha / k."""
    judge = CanaryJudge(config)
    k = len(config.metrics)
    refs = {
        m: (
            SequentialErrorRateTest(config.alpha / k),
            ErrorRateConfidenceSequence(config.alpha / k),
        )
        for m in config.metrics
    }
    v = judge.verdict
    for c, b in seq:
        v = judge.update(c, b)
        for m, (t, cs) in refs.items():
            kw = {
                "canary_errors": c.bad(m),
                "canary_requests": c.requests,
                "baseline_errors": b.bad(m),
                "baseline_requests": b.requests,
            }
            t.update(**kw)
            cs.update(**kw)
    p = {m: t.p_value for m, (t, _) in refs.items()}
    assert v.p_value == min(1.0, k * min(p.values()))
    assert v.bounds == Interval(refs["errors"][1].lower, refs["errors"][1].upper)
    assert [mv.p_value for mv in v.metrics] == [p[m] for m in config.metrics]
    assert v.looks == len(seq)
    assert v.canary_requests == sum(c.requests for c, _ in seq)
    assert v.baseline_requests == sum(b.requests for _, b in seq)
    reject = any(t.p_value <= config.alpha / k for t, _ in refs.values())
    promote = v.canary_requests >= config.min_canary_requests and all(
        cs.upper < config.margin_of(m) for m, (_, cs) in refs.items()
    )
    assert v.decision == ("reject" if reject else "promote" if promote else "continue")
    assert v.reason.startswith(v.decision + ":")


def _sixty_halvings(x: float, n: float, threshold: float) -> tuple[float, float]:
    """The confidence sequence's bisection as first written: every midpoint computed."""

    def inside(p: float) -> bool:
        loglik = (x * math.log(p) if x else 0.0) + ((n - x) * math.log1p(-p) if n - x else 0.0)
        return loglik > threshold

    p_hat = x / n if n > 0 else 0.5
    lower, upper = 0.0, 1.0
    if x > 0:
        lo, hi = 0.0, p_hat
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if inside(mid) else (mid, hi)
        lower = lo
    if x < n:
        lo, hi = p_hat, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if inside(mid) else (lo, mid)
        upper = hi
    return lower, upper


def _threshold(x: int, n: int, alpha: float) -> float:
    log_b = special.betaln(0.5 + x, 0.5 + n - x) - special.betaln(0.5, 0.5)
    return float(log_b - math.log(1.0 / alpha))


arm_totals = st.integers(0, 10**7).flatmap(
    lambda n: st.tuples(
        st.one_of(st.integers(0, n), st.integers(0, min(n, 5)), st.just(n)), st.just(n)
    )
)


@pytest.mark.spec("eq-confidence-sequence", kind="parity")
@given(
    counts=arm_totals,
    alpha=st.sampled_from([0.5, 0.05, 0.025, 1e-3, 1e-9]),
    shift=st.one_of(st.just(0.0), st.floats(-50.0, 50.0)),
)
def test_scalar_bisection_equals_sixty_computed_halvings_to_the_last_bit(
    counts: tuple[int, int], alpha: float, shift: float
) -> None:
    """The skipped midpoints are classified as computing them would classify them.

    Failing alike counts as equal (see the grid test): with a shifted threshold,
    a bracket against 1 can halve onto 1.0, where log1p(-1.0) raises in both.
    """
    x, n = counts
    args = (float(x), float(n), _threshold(x, n, alpha) + shift)
    assert _outcome(_beta_binomial_interval, args) == _outcome(_sixty_halvings, args)


def test_scalar_bisection_equals_sixty_computed_halvings_on_a_grid() -> None:
    rng = np.random.default_rng(2026)
    cases = [(0, 0), (0, 1), (1, 1), (1, 2), (2**40, 2**41), (3, 2**50), (2**50 - 3, 2**50)]
    for n in rng.integers(1, 10**6, 400).tolist():
        cases += [(int(rng.integers(0, n + 1)), n), (n // 50, n)]
    for x, n in cases:
        for alpha in (0.05, 0.0125, 1e-6):
            args = (float(x), float(n), _threshold(x, n, alpha))
            # Even failing alike: near 2**50 requests, all but 3 failed, a midpoint
            # rounds to 1.0 and log1p(-1.0) raises in both.
            assert _outcome(_beta_binomial_interval, args) == _outcome(_sixty_halvings, args)


def _outcome(fn: Any, args: tuple[float, float, float]) -> object:
    try:
        return fn(*args)
    except ValueError as e:
        return repr(e)


def test_sequential_test_of_the_judge_equals_the_parent_to_the_last_bit() -> None:
    """The judge's test skips re-validation only: same state after the same looks."""
    rng = np.random.default_rng(7)
    judge = CanaryJudge(JudgeConfig(alpha=0.05))
    parent = SequentialErrorRateTest(0.05)
    for _ in range(200):
        n_c, n_b = (int(v) for v in rng.integers(0, 3000, 2))
        c = ArmCounts(n_c, int(rng.integers(0, n_c + 1)) // 4)
        b = ArmCounts(n_b, int(rng.integers(0, n_b + 1)) // 4)
        judge.update(c, b)
        parent.update(
            canary_errors=c.errors,
            canary_requests=c.requests,
            baseline_errors=b.errors,
            baseline_requests=b.requests,
        )
        ours = judge._tests["errors"]
        assert ours._s.tobytes() == parent._s.tobytes()
        assert (ours._log_m, ours._max_log_m, ours.p_value) == (
            parent._log_m,
            parent._max_log_m,
            parent.p_value,
        )


# ---------------------------------------------------------------- state


@given(config=configs, before=looks, after=looks)
def test_canary_judge_state_round_trip_is_exact(
    config: JudgeConfig,
    before: list[tuple[ArmCounts, ArmCounts]],
    after: list[tuple[ArmCounts, ArmCounts]],
) -> None:
    """Through JSON and back: the same verdict now and after any further looks."""
    judge = CanaryJudge(config)
    for c, b in before:
        judge.update(c, b)
    state = json.loads(json.dumps(judge.state()))
    again = CanaryJudge.from_state(config, state)
    assert again.verdict == judge.verdict
    assert again.state() == judge.state()
    for c, b in after:
        assert again.update(c, b) == judge.update(c, b)


def test_canary_judge_from_state_refuses_other_metrics_and_malformed_state() -> None:
    judge = CanaryJudge(JudgeConfig(slow_margin=0.1))
    judge.update(ArmCounts(100, 1, 2), ArmCounts(900, 9, 10))
    state = judge.state()
    with pytest.raises(ValueError, match=r"state\.metrics must hold exactly \['errors'\]"):
        CanaryJudge.from_state(JudgeConfig(), state)
    with pytest.raises(ValueError, match=r"state\.version"):
        CanaryJudge.from_state(JudgeConfig(slow_margin=0.1), {**state, "version": 99})
    bad = json.loads(json.dumps(state))
    bad["metrics"]["slow"]["s"] = "AAAA"
    with pytest.raises(ValueError, match=r"state\.metrics\.slow\.s"):
        CanaryJudge.from_state(JudgeConfig(slow_margin=0.1), bad)
    bad = json.loads(json.dumps(state))
    bad["metrics"]["errors"]["upper"] = "x"
    with pytest.raises(ValueError, match=r"state\.metrics\.errors\.upper"):
        CanaryJudge.from_state(JudgeConfig(slow_margin=0.1), bad)


@given(config=configs, seq=looks, bad=st.sampled_from([None, (10, 1), {"requests": 1}]))
def test_canary_judge_refused_update_changes_nothing(
    config: JudgeConfig, seq: list[tuple[ArmCounts, ArmCounts]], bad: object
) -> None:
    judge = CanaryJudge(config)
    for c, b in seq:
        judge.update(c, b)
    state, verdict = judge.state(), judge.verdict
    with pytest.raises(ValueError, match="baseline must be an ArmCounts"):
        judge.update(ArmCounts(10, 1), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="canary must be an ArmCounts"):
        judge.update(bad, ArmCounts(10, 1))  # type: ignore[arg-type]
    assert judge.state() == state
    assert judge.verdict == verdict


# ---------------------------------------------------------------- behaviour


def test_canary_judge_rejects_a_clear_regression_and_stays_rejected() -> None:
    judge = CanaryJudge(JudgeConfig(alpha=0.05, margin=0.02))
    v = judge.update(ArmCounts(500, 50), ArmCounts(9500, 95))  # 10 % against 1 %
    assert v.decision == "reject"
    assert v.metrics[0].decision == "reject"
    assert v.p_value <= 0.05
    assert "error rate is higher" in v.reason
    for _ in range(5):  # plenty of clean traffic afterwards changes nothing
        v = judge.update(ArmCounts(10_000, 100), ArmCounts(10_000, 100))
    assert v.decision == "reject"


def test_canary_judge_rejects_a_slow_regression_only_when_slow_is_judged() -> None:
    c, b = ArmCounts(2000, 20, 400), ArmCounts(38000, 380, 1900)  # 20 % slow against 5 %
    judged = CanaryJudge(JudgeConfig(slow_margin=0.05)).update(c, b)
    assert judged.decision == "reject"
    assert [m.decision for m in judged.metrics] == ["promote", "reject"]
    assert "slow-request rate" in judged.reason
    ignored = CanaryJudge(JudgeConfig()).update(c, b)
    assert ignored.decision == "promote"
    assert [m.name for m in ignored.metrics] == ["errors"]


def test_canary_judge_promotes_only_after_min_canary_requests() -> None:
    judge = CanaryJudge(JudgeConfig(margin=0.02, min_canary_requests=6000))
    v = judge.update(ArmCounts(4000, 80), ArmCounts(76000, 1520))
    assert v.metrics[0].decision == "promote"
    assert v.decision == "continue"
    assert "4000 of the 6000 canary requests" in v.reason
    v = judge.update(ArmCounts(2000, 40), ArmCounts(38000, 760))
    assert v.decision == "promote"
    assert v.bounds.high < 0.02


def test_canary_judge_look_without_requests_counts_a_look_only() -> None:
    judge = CanaryJudge(JudgeConfig())
    v1 = judge.update(ArmCounts(1000, 10), ArmCounts(9000, 90))
    v2 = judge.update(ArmCounts(0, 0), ArmCounts(0, 0))
    assert v2.looks == 2
    assert (v2.bounds, v2.p_value, v2.decision) == (v1.bounds, v1.p_value, v1.decision)


def test_canary_judge_false_rejection_at_most_alpha_looking_after_every_batch() -> None:
    """Seeded Monte-Carlo: equal rates on both metrics, a look after every batch."""
    rng = np.random.default_rng(20260901)
    alpha, runs, batches = 0.2, 300, 12
    rejected = 0
    for _ in range(runs):
        judge = CanaryJudge(JudgeConfig(alpha=alpha, margin=0.001, slow_margin=0.001))
        for _ in range(batches):
            n_c, n_b = 200, 1800
            c = ArmCounts(n_c, int(rng.binomial(n_c, 0.05)), int(rng.binomial(n_c, 0.1)))
            b = ArmCounts(n_b, int(rng.binomial(n_b, 0.05)), int(rng.binomial(n_b, 0.1)))
            if judge.update(c, b).decision == "reject":
                rejected += 1
                break
    rate = rejected / runs
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert rate <= alpha + 3 * se, f"false rejection {rate:.3f} > {alpha} + 3 s.e."
