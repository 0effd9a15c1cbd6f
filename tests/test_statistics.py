"""Spec tests for release_spec.statistics: parity, properties and errors for every equation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import proportions_ztest

from release_spec.statistics import (
    SequentialErrorRateTest,
    sequential_log_evidence,
    two_proportion_z_test,
)

ALPHA = 0.05

# One look: (canary_errors, canary_requests, baseline_errors, baseline_requests).
look = st.tuples(
    st.integers(1, 400), st.integers(1, 4000), st.floats(0.0, 1.0), st.floats(0.0, 1.0)
).map(lambda t: (int(t[2] * t[0]), t[0], int(t[3] * t[1]), t[1]))
looks = st.lists(look, min_size=1, max_size=12)


def _prior(scale: float = 1.0, size: int = 64) -> tuple[list[float], list[float]]:
    """The discrete half-normal prior, written out."""
    u = [6.0 * scale * j / (size - 1) for j in range(size)]
    w = [math.exp(-0.5 * (v / scale) ** 2) for v in u]
    total = sum(w)
    return u, [v / total for v in w]


def _literal_m(data: list[tuple[int, int, int, int]]) -> list[float]:
    """M_k = sum_j w_j prod_i theta_j^x_i / (1 + rho_i (theta_j - 1))^n_i, term by term."""
    u, w = _prior()
    out = []
    for k in range(1, len(data) + 1):
        m = 0.0
        for uj, wj in zip(u, w, strict=True):
            theta = math.exp(uj)
            log_term = 0.0
            for x, mc, y, mb in data[:k]:
                rho = mc / (mc + mb)
                log_term += x * math.log(theta) - (x + y) * math.log(1 + rho * (theta - 1))
            m += wj * math.exp(log_term)
        out.append(m)
    return out


def _run(data: list[tuple[int, int, int, int]], **kwargs: float) -> SequentialErrorRateTest:
    test = SequentialErrorRateTest(**kwargs)
    for x, mc, y, mb in data:
        test.update(canary_errors=x, canary_requests=mc, baseline_errors=y, baseline_requests=mb)
    return test


# ---------------------------------------------------------------- eq-sequential


@pytest.mark.spec("eq-sequential", kind="parity")
@given(looks)
def test_sequential_matches_literal_formula(data: list[tuple[int, int, int, int]]) -> None:
    small = [(x % 30, mc, y % 60, mb) for x, mc, y, mb in data]
    small = [(min(x, mc), mc, min(y, mb), mb) for x, mc, y, mb in small]
    literal = _literal_m(small)
    arr = np.array(small, dtype=float).T
    vectorised = sequential_log_evidence(arr[0], arr[1], arr[2], arr[3])
    test = SequentialErrorRateTest()
    for k, (x, mc, y, mb) in enumerate(small):
        test.update(canary_errors=x, canary_requests=mc, baseline_errors=y, baseline_requests=mb)
        assert test.log_evidence == pytest.approx(math.log(literal[k]), rel=1e-9, abs=1e-9)
        assert vectorised[k] == pytest.approx(math.log(literal[k]), rel=1e-9, abs=1e-9)
    assert test.p_value == pytest.approx(min(1.0, 1.0 / max(literal)), rel=1e-9)


@pytest.mark.spec("eq-sequential", kind="parity")
@given(st.integers(0, 50), st.integers(0, 50), st.floats(0.01, 0.99), st.floats(0.0, 4.0))
def test_sequential_factor_is_binomial_likelihood_ratio(
    x: int, extra: int, rho: float, u: float
) -> None:
    # theta^x / (1 + rho(theta-1))^n == Binom(x; n, p_theta) / Binom(x; n, rho),
    # p_theta = rho theta / (rho theta + 1 - rho): the "which arm erred" likelihood ratio.
    n = x + extra
    theta = math.exp(u)
    p_theta = rho * theta / (rho * theta + 1 - rho)
    scipy_lr = sps.binom.logpmf(x, n, p_theta) - sps.binom.logpmf(x, n, rho)
    ours = x * u - n * math.log1p(rho * (theta - 1))
    assert ours == pytest.approx(scipy_lr, rel=1e-9, abs=1e-9)


@pytest.mark.spec("eq-sequential", kind="property")
@given(looks)
def test_sequential_p_value_never_increases(data: list[tuple[int, int, int, int]]) -> None:
    test = SequentialErrorRateTest()
    previous = 1.0
    for x, mc, y, mb in data:
        test.update(canary_errors=x, canary_requests=mc, baseline_errors=y, baseline_requests=mb)
        assert 0.0 < test.p_value <= previous
        previous = test.p_value


@pytest.mark.spec("eq-sequential", kind="property")
@given(looks, st.floats(0.001, 0.5))
def test_sequential_decision_is_p_value_at_most_alpha(
    data: list[tuple[int, int, int, int]], alpha: float
) -> None:
    test = _run(data, alpha=alpha)
    assert (test.decision == "reject") == (test.p_value <= alpha)


@pytest.mark.spec("eq-sequential", kind="property")
@given(st.integers(0, 60), st.floats(0.01, 0.99))
def test_sequential_factor_has_expectation_one_under_poisson_null(n: int, rho: float) -> None:
    # Under H0 the canary's errors given n are Binomial(n, rho): E[M_1] = 1 exactly.
    u, w = _prior()
    k = np.arange(n + 1)
    pmf = sps.binom.pmf(k, n, rho)
    expectation = sum(
        wj * float(np.sum(pmf * np.exp(k * uj - n * math.log1p(rho * math.expm1(uj)))))
        for uj, wj in zip(u, w, strict=True)
    )
    assert expectation == pytest.approx(1.0, rel=1e-9)


@pytest.mark.spec("eq-sequential", kind="property")
@given(st.integers(1, 200), st.integers(1, 200), st.floats(0.0, 1.0))
def test_sequential_factor_is_supermartingale_under_bernoulli_null(
    m_c: int, m_b: int, frac: float
) -> None:
    # Bernoulli requests: given n errors the canary's count is hypergeometric; Hoeffding's
    # convex-order bound keeps E[M_1] <= 1 for every prior atom.
    n = int(frac * (m_c + m_b))
    rho = m_c / (m_c + m_b)
    k = np.arange(n + 1)
    pmf = sps.hypergeom.pmf(k, m_c + m_b, m_c, n)
    for uj in _prior()[0]:
        factor = np.exp(k * uj - n * math.log1p(rho * math.expm1(uj)))
        assert float(np.sum(pmf * factor)) <= 1.0 + 1e-9


@pytest.mark.spec("eq-sequential", kind="property")
def test_sequential_false_rejection_rate_with_varying_shares() -> None:
    rng = np.random.default_rng(20261129)
    runs, n_looks, per_look = 1500, 60, 2000
    share = rng.uniform(0.01, 0.5, size=(runs, n_looks))
    m_c = rng.binomial(per_look, share)
    m_b = per_look - m_c
    x = rng.binomial(m_c, 0.02)
    y = rng.binomial(m_b, 0.02)
    rejected = (sequential_log_evidence(x, m_c, y, m_b) >= math.log(1 / ALPHA)).any(axis=1)
    rate = rejected.mean()
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    # The same data judged by a z-test at every look rejects far more often than alpha.
    naive = two_proportion_z_test(*(np.cumsum(a, axis=1) for a in (x, m_c, y, m_b))) <= ALPHA
    assert naive.any(axis=1).mean() > 2 * ALPHA


@pytest.mark.spec("eq-sequential", kind="property")
def test_sequential_detects_two_to_four_percent_within_2500_canary_requests() -> None:
    rng = np.random.default_rng(7)
    runs, per_look, share = 400, 1000, 0.05
    n_looks = int(2500 / (per_look * share))
    m_c = np.full((runs, n_looks), int(per_look * share))
    m_b = per_look - m_c
    x = rng.binomial(m_c, 0.04)
    y = rng.binomial(m_b, 0.02)
    rejected = sequential_log_evidence(x, m_c, y, m_b) >= math.log(1 / ALPHA)
    assert rejected.any(axis=1).mean() >= 0.95
    exposure = (np.where(rejected.any(axis=1), rejected.argmax(axis=1), n_looks) + 1) * 50
    assert np.median(exposure) < 770


@pytest.mark.spec("eq-sequential", kind="property")
def test_sequential_log_evidence_batches_rollouts_independently() -> None:
    data = np.array([[[2, 100, 20, 1900], [5, 100, 18, 1900]], [[0, 10, 1, 990], [9, 50, 9, 950]]])
    both = sequential_log_evidence(*np.moveaxis(data, -1, 0))
    for r in range(2):
        single = sequential_log_evidence(*data[r].T)
        np.testing.assert_allclose(both[r], single, rtol=1e-12)


@pytest.mark.spec("eq-sequential", kind="property")
def test_sequential_canary_better_never_rejects_on_favourable_data() -> None:
    # All errors on the baseline: every factor is <= 1, so M_k <= 1 and p stays 1.
    test = _run([(0, 500, 40, 500)] * 20)
    assert test.p_value == 1.0
    assert test.decision == "continue"


@pytest.mark.spec("eq-sequential", kind="errors")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary_errors": -1}, "canary_errors must be nonnegative"),
        ({"baseline_requests": -5}, "baseline_requests must be nonnegative"),
        ({"canary_errors": 11}, "canary_errors exceed canary_requests"),
        ({"baseline_errors": 101}, "baseline_errors exceed baseline_requests"),
        ({"canary_requests": math.nan}, "canary_requests must be finite"),
        ({"baseline_errors": math.inf}, "baseline_errors must be finite"),
        ({"canary_errors": 1.5}, "canary_errors must be whole numbers"),
        ({"canary_errors": "3"}, "canary_errors must be a number"),
    ],
)
def test_sequential_rejects_bad_counts(kwargs: dict[str, float], message: str) -> None:
    counts = {"canary_errors": 1, "canary_requests": 10, "baseline_errors": 2}
    counts |= {"baseline_requests": 100} | kwargs
    with pytest.raises(ValueError, match=message):
        SequentialErrorRateTest().update(**counts)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message.split()[0]):
        sequential_log_evidence(*[[counts[k]] for k in counts])


@pytest.mark.spec("eq-sequential", kind="errors")
@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
def test_sequential_rejects_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha must be"):
        SequentialErrorRateTest(alpha=alpha)


@pytest.mark.spec("eq-sequential", kind="errors")
def test_sequential_rejects_bad_prior() -> None:
    with pytest.raises(ValueError, match="prior_scale"):
        SequentialErrorRateTest(prior_scale=0.0)
    with pytest.raises(ValueError, match="grid_size"):
        sequential_log_evidence([1], [10], [1], [10], grid_size=1)


# --------------------------------------------------------- eq-two-proportion-z


@pytest.mark.spec("eq-two-proportion-z", kind="parity")
@given(look)
def test_two_proportion_z_matches_statsmodels_and_formula(
    counts: tuple[int, int, int, int],
) -> None:
    x, mc, y, mb = counts
    ours = float(two_proportion_z_test(x, mc, y, mb))
    pooled = (x + y) / (mc + mb)
    if 0 < pooled < 1:
        z = (x / mc - y / mb) / math.sqrt(pooled * (1 - pooled) * (1 / mc + 1 / mb))
        literal = 0.5 * math.erfc(z / math.sqrt(2))
        _, statsmodels_p = proportions_ztest([x, y], [mc, mb], alternative="larger")
        assert ours == pytest.approx(literal, rel=1e-9, abs=1e-300)
        assert ours == pytest.approx(float(statsmodels_p), rel=1e-9, abs=1e-300)
        two = float(two_proportion_z_test(x, mc, y, mb, alternative="two-sided"))
        _, sm_two = proportions_ztest([x, y], [mc, mb], alternative="two-sided")
        assert two == pytest.approx(float(sm_two), rel=1e-9, abs=1e-300)
    else:
        assert ours == 1.0


@pytest.mark.spec("eq-two-proportion-z", kind="property")
@given(look, st.integers(1, 50))
def test_two_proportion_z_test_monotone_in_canary_errors(
    counts: tuple[int, int, int, int], more: int
) -> None:
    x, mc, y, mb = counts
    x2 = min(mc, x + more)
    assert (
        float(two_proportion_z_test(x2, mc, y, mb))
        <= float(two_proportion_z_test(x, mc, y, mb)) + 1e-12
    )


@pytest.mark.spec("eq-two-proportion-z", kind="errors")
def test_two_proportion_z_test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        two_proportion_z_test(0, 0, 1, 10)
    with pytest.raises(ValueError, match="canary_errors exceed"):
        two_proportion_z_test(5, 4, 1, 10)
    with pytest.raises(ValueError, match="alternative"):
        two_proportion_z_test(1, 4, 1, 10, alternative="smaller")  # type: ignore[arg-type]
