"""Spec tests for release_spec.statistics: parity, properties and errors for every equation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.integrate import quad
from scipy.optimize import minimize_scalar
from scipy.special import rel_entr
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from release_spec.statistics import (
    MAX_BINS,
    MAX_COUNT,
    MAX_GRID_SIZE,
    MAX_PRIOR_SCALE,
    ErrorRateConfidenceSequence,
    SampleSize,
    SequentialErrorRateTest,
    _tango_z,
    bernoulli_confidence_sequence,
    error_rate_difference_bounds,
    fixed_horizon_sample_size,
    holm,
    ks_two_sample,
    mcnemar_exact,
    paired_noninferiority,
    population_stability_index,
    sequential_log_evidence,
    two_proportion_z_test,
    wilson_interval,
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
        assert 0.0 <= test.p_value <= previous
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
    # The support only: beyond it the pmf is 0 and the factor may overflow (0 x inf = NaN).
    k = np.arange(max(0, n - m_b), min(n, m_c) + 1)
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
    assert np.median(exposure) < 610  # the one-sided fixed horizon


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
    # All requests in error carry no evidence (p = 1 by convention): outside the property.
    assume(x2 + y < mc + mb)
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


# ------------------------------------------------------- eq-confidence-sequence


def _log_mixture_ratio(x: int, n: int, p: float, a: float = 0.5, b: float = 0.5) -> float:
    """log M_n(p) = log B(a+x, b+n-x) - log B(a, b) - x log p - (n-x) log(1-p), literally."""

    def log_beta(s: float, t: float) -> float:
        return math.lgamma(s) + math.lgamma(t) - math.lgamma(s + t)

    loglik = (x * math.log(p) if x else 0.0) + ((n - x) * math.log1p(-p) if n - x else 0.0)
    return log_beta(a + x, b + n - x) - log_beta(a, b) - loglik


arm = st.tuples(st.integers(1, 5000), st.floats(0.0, 1.0)).map(lambda t: (int(t[1] * t[0]), t[0]))


@pytest.mark.spec("eq-confidence-sequence", kind="parity")
@given(arm, st.sampled_from([0.01, 0.05, 0.2]))
def test_bernoulli_confidence_sequence_ends_solve_the_defining_equation(
    counts: tuple[int, int], alpha: float
) -> None:
    x, n = counts
    lo, hi = (float(v) for v in bernoulli_confidence_sequence(x, n, alpha=alpha))
    for end, inward in ((lo, 1.0), (hi, -1.0)):
        if 0.0 < end < 1.0:
            # The boundary: M_n(end) = 1/alpha, outside just beyond, inside just within.
            assert _log_mixture_ratio(x, n, end) == pytest.approx(math.log(1 / alpha), abs=1e-6)
            step = 1e-9 * inward
            assert _log_mixture_ratio(x, n, end - step) >= math.log(1 / alpha) - 1e-9
            assert _log_mixture_ratio(x, n, end + 100 * step) < math.log(1 / alpha)
        else:
            assert (end == 0.0 and x == 0) or (end == 1.0 and x == n)


@pytest.mark.spec("eq-confidence-sequence", kind="parity")
@given(st.integers(0, 40), st.integers(0, 40), st.floats(0.01, 0.99))
def test_beta_binomial_mixture_matches_scipy_betabinom(x: int, more: int, p: float) -> None:
    # M_n(p) * p^x (1-p)^(n-x) = B(a+x, b+n-x)/B(a, b), the Beta(a, b) mixture of
    # the likelihood: SciPy's beta-binomial pmf without its binomial coefficient, and the
    # integral itself (q = sin^2 t removes the Jeffreys prior's end singularities).
    n = x + more
    log_lik = x * math.log(p) + (n - x) * math.log1p(-p)
    closed = math.exp(_log_mixture_ratio(x, n, p) + log_lik)
    assert closed == pytest.approx(sps.betabinom.pmf(x, n, 0.5, 0.5) / math.comb(n, x), rel=1e-9)
    integral, _ = quad(
        lambda t: 2 / math.pi * math.sin(t) ** (2 * x) * math.cos(t) ** (2 * (n - x)),
        0,
        math.pi / 2,
        epsabs=0.0,
        epsrel=1e-11,
    )
    assert closed == pytest.approx(integral, rel=1e-8)


@pytest.mark.spec("eq-confidence-sequence", kind="property")
@given(st.lists(arm, min_size=1, max_size=20))
def test_bernoulli_confidence_sequence_scalar_and_array_paths_agree(
    arms: list[tuple[int, int]],
) -> None:
    x, n = np.array(arms).T
    lo, hi = bernoulli_confidence_sequence(x, n)
    for k, (xk, nk) in enumerate(arms):
        lo_k, hi_k = bernoulli_confidence_sequence(xk, nk)
        assert float(lo_k) == pytest.approx(lo[k], abs=1e-14)
        assert float(hi_k) == pytest.approx(hi[k], abs=1e-14)


@pytest.mark.spec("eq-confidence-sequence", kind="property")
@given(arm)
def test_bernoulli_confidence_sequence_contains_estimate_within_unit_interval(
    counts: tuple[int, int],
) -> None:
    x, n = counts
    lo, hi = (float(v) for v in bernoulli_confidence_sequence(x, n))
    assert 0.0 <= lo <= x / n <= hi <= 1.0


@pytest.mark.spec("eq-confidence-sequence", kind="property")
@given(arm, st.integers(2, 20))
def test_bernoulli_confidence_sequence_narrows_with_more_data(
    counts: tuple[int, int], factor: int
) -> None:
    x, n = counts
    lo1, hi1 = bernoulli_confidence_sequence(x, n)
    lo2, hi2 = bernoulli_confidence_sequence(x * factor, n * factor)
    assert float(hi2 - lo2) < float(hi1 - lo1)


@pytest.mark.spec("eq-confidence-sequence", kind="property")
@given(arm)
def test_bernoulli_confidence_sequence_wider_for_smaller_alpha(counts: tuple[int, int]) -> None:
    x, n = counts
    lo1, hi1 = bernoulli_confidence_sequence(x, n, alpha=0.1)
    lo2, hi2 = bernoulli_confidence_sequence(x, n, alpha=0.01)
    assert float(lo2) <= float(lo1)
    assert float(hi1) <= float(hi2)
    # Always wider than the fixed-n Wilson interval at the same level: the price of peeking.
    w_lo, w_hi = wilson_interval(x, n, confidence=0.99)
    assert float(lo2) <= w_lo + 1e-12
    assert w_hi - 1e-12 <= float(hi2)


@pytest.mark.spec("eq-confidence-sequence", kind="property")
def test_error_rate_difference_covers_truth_at_every_look() -> None:
    rng = np.random.default_rng(5)
    runs, n_looks, per_look, p_c, p_b = 400, 40, 1000, 0.03, 0.02
    share = rng.uniform(0.01, 0.5, size=(runs, n_looks))
    m_c = rng.binomial(per_look, share)
    m_b = per_look - m_c
    cum = [np.cumsum(a, axis=1) for a in (rng.binomial(m_c, p_c), m_c, rng.binomial(m_b, p_b), m_b)]
    lo, hi = error_rate_difference_bounds(*cum, alpha=ALPHA)
    missed = ((lo > p_c - p_b) | (hi < p_c - p_b)).any(axis=1).mean()
    assert missed <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert np.all(lo <= hi)


@pytest.mark.spec("eq-confidence-sequence", kind="property")
@given(looks)
def test_error_rate_confidence_sequence_is_running_intersection(
    data: list[tuple[int, int, int, int]],
) -> None:
    cs = ErrorRateConfidenceSequence()
    cum = np.cumsum(np.array(data), axis=0).T
    lo, hi = error_rate_difference_bounds(*cum)
    for k, (x, mc, y, mb) in enumerate(data):
        cs.update(canary_errors=x, canary_requests=mc, baseline_errors=y, baseline_requests=mb)
        assert cs.lower == pytest.approx(max(-1.0, *lo[: k + 1]))
        assert cs.upper == pytest.approx(min(1.0, *hi[: k + 1]))
        assert cs.shows_not_worse(0.5) == (cs.upper < 0.5)


@pytest.mark.spec("eq-confidence-sequence", kind="property")
@given(looks)
def test_error_rate_confidence_sequence_equals_the_bounds_on_the_totals_to_the_last_bit(
    data: list[tuple[int, int, int, int]],
) -> None:
    """`update` is `error_rate_difference_bounds` on the running totals, intersected.

    Looks without requests included: they leave the totals, hence the bounds, alone.
    """
    cs = ErrorRateConfidenceSequence(0.1, prior_a=0.7, prior_b=2.0)
    lower, upper, totals = -1.0, 1.0, np.zeros(4, dtype=np.int64)
    for look in [(0, 0, 0, 0), *data, (0, 0, 0, 0)]:
        cs.update(**dict(zip(COUNT_NAMES, look, strict=True)))
        totals += look
        lo, hi = error_rate_difference_bounds(
            *map(int, totals), alpha=0.1, prior_a=0.7, prior_b=2.0
        )
        lower, upper = max(lower, float(lo)), min(upper, float(hi))
        assert (cs.lower, cs.upper) == (lower, upper)
    assert (cs.canary_errors, cs.canary_requests, cs.baseline_errors, cs.baseline_requests) == (
        tuple(int(t) for t in totals)
    )


@pytest.mark.spec("eq-confidence-sequence", kind="property")
def test_error_rate_confidence_sequence_promotes_equal_canary() -> None:
    # Equal 2 % error rates, 5 % share: the upper bound falls below a 2-point margin.
    cs = ErrorRateConfidenceSequence()
    for _ in range(40):
        cs.update(canary_errors=4, canary_requests=200, baseline_errors=76, baseline_requests=3800)
    assert cs.lower < 0.0 < cs.upper < 0.02
    assert cs.shows_not_worse(0.02)


@pytest.mark.spec("eq-confidence-sequence", kind="errors")
def test_confidence_sequence_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="errors exceed requests"):
        bernoulli_confidence_sequence(5, 4)
    with pytest.raises(ValueError, match="errors must be nonnegative"):
        bernoulli_confidence_sequence(-1, 4)
    with pytest.raises(ValueError, match="alpha"):
        bernoulli_confidence_sequence(1, 4, alpha=1.0)
    with pytest.raises(ValueError, match="prior_a"):
        bernoulli_confidence_sequence(1, 4, prior_a=0.0)
    with pytest.raises(ValueError, match="canary_errors exceed"):
        ErrorRateConfidenceSequence().update(
            canary_errors=3, canary_requests=2, baseline_errors=0, baseline_requests=1
        )
    with pytest.raises(ValueError, match="margin"):
        ErrorRateConfidenceSequence().shows_not_worse(math.nan)
    with pytest.raises(ValueError, match="prior_b"):
        ErrorRateConfidenceSequence(prior_b=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        ErrorRateConfidenceSequence(alpha=0.0)


# ---------------------------------------------------------------- eq-sample-size


@pytest.mark.spec("eq-sample-size", kind="parity")
@given(
    st.floats(0.005, 0.3),
    st.floats(0.1, 0.8),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.floats(0.5, 0.95),
    st.floats(0.01, 0.5),
    st.sampled_from(["two-sided", "greater"]),
)
def test_sample_size_matches_statsmodels_and_formula(
    p0: float, rel: float, alpha: float, power: float, fraction: float, alternative: str
) -> None:
    p1 = p0 * (1 + rel)
    k = (1 - fraction) / fraction
    # statsmodels' two-sided solution also counts power from the opposite tail; the
    # textbook formula does not, and equals its one-sided solution at alpha / 2.
    sm_alpha = alpha / 2 if alternative == "two-sided" else alpha
    for method in ("wald", "arcsine"):
        ours = fixed_horizon_sample_size(
            p0,
            p1,
            alpha=alpha,
            power=power,
            canary_fraction=fraction,
            alternative=alternative,
            method=method,
        )
        if method == "wald":
            var = p1 * (1 - p1) + p0 * (1 - p0) / k
            es = (p1 - p0) / math.sqrt(var / (1 + 1 / k))
            za = NormalDist().inv_cdf(1 - sm_alpha)
            literal = (za + NormalDist().inv_cdf(power)) ** 2 * var / (p1 - p0) ** 2
            assert ours.canary_requests == math.ceil(round(literal, 9))
        else:
            es = float(proportion_effectsize(p1, p0))
        n1 = float(
            NormalIndPower().solve_power(
                effect_size=es, alpha=sm_alpha, power=power, ratio=k, alternative="larger"
            )
        )
        assert ours.canary_requests == math.ceil(round(n1, 6))
        assert ours.baseline_requests == math.ceil(round(n1 * k, 6))
        if alternative == "two-sided" and power >= 0.8:
            n2 = NormalIndPower().solve_power(
                effect_size=es, alpha=alpha, power=power, ratio=k, alternative="two-sided"
            )
            assert ours.canary_requests == pytest.approx(float(n2), rel=0.01, abs=1.0)


@pytest.mark.spec("eq-sample-size", kind="property")
def test_fixed_horizon_sample_size_two_to_four_percent_is_774_two_sided_610_one_sided() -> None:
    plan = fixed_horizon_sample_size(0.02, 0.04, alpha=0.05, power=0.8, canary_fraction=0.05)
    assert plan == SampleSize(canary_requests=774, baseline_requests=14701)
    assert plan.total_requests == 15475
    assert fixed_horizon_sample_size(0.02, 0.04, canary_fraction=0.5).canary_requests == 1139
    one_sided = fixed_horizon_sample_size(0.02, 0.04, canary_fraction=0.05, alternative="greater")
    assert one_sided.canary_requests == 610
    assert (
        fixed_horizon_sample_size(
            0.02, 0.04, canary_fraction=0.05, method="arcsine"
        ).canary_requests
        == 585
    )


@pytest.mark.spec("eq-sample-size", kind="property")
@given(st.floats(0.005, 0.2), st.floats(0.2, 2.0), st.floats(0.5, 0.9), st.floats(0.02, 0.5))
def test_fixed_horizon_sample_size_monotone(p0: float, rel: float, power: float, s: float) -> None:
    p1 = p0 * (1 + rel)
    base = fixed_horizon_sample_size(p0, p1, power=power, canary_fraction=s).canary_requests
    assert (
        fixed_horizon_sample_size(p0, p1 * 1.2, power=power, canary_fraction=s).canary_requests
        <= base
    )
    assert (
        fixed_horizon_sample_size(p0, p1, power=power + 0.05, canary_fraction=s).canary_requests
        >= base
    )
    assert (
        fixed_horizon_sample_size(
            p0, p1, power=power, canary_fraction=s, alternative="greater"
        ).canary_requests
        <= base
    )


@pytest.mark.spec("eq-sample-size", kind="property")
def test_fixed_horizon_sample_size_reaches_its_power() -> None:
    # At the planned size a one-look z-test for 2 % -> 4 % detects it with the planned 80 %
    # when the variance is the one the formula assumes; the usual test with estimated
    # variances does at least as well.
    plan = fixed_horizon_sample_size(0.02, 0.04, canary_fraction=0.05)
    rng = np.random.default_rng(11)
    x = rng.binomial(plan.canary_requests, 0.04, size=20000) / plan.canary_requests
    y = rng.binomial(plan.baseline_requests, 0.02, size=20000) / plan.baseline_requests
    sd = math.sqrt(0.04 * 0.96 / plan.canary_requests + 0.02 * 0.98 / plan.baseline_requests)
    assert np.mean((x - y) / sd > 1.959964) == pytest.approx(0.8, abs=0.02)
    se = np.sqrt(x * (1 - x) / plan.canary_requests + y * (1 - y) / plan.baseline_requests)
    assert np.mean((x - y) / se > 1.959964) >= 0.78


@pytest.mark.spec("eq-sample-size", kind="errors")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p0": 0.0}, "p0 must be in"),
        ({"p1": 1.0}, "p1 must be in"),
        ({"p1": 0.02}, "must differ"),
        ({"power": 1.0}, "power must be in"),
        ({"canary_fraction": 0.0}, "canary_fraction must be in"),
        ({"alternative": "larger"}, "statsmodels' word; use SciPy's 'greater'"),
        ({"alpha": 0.0}, "alpha must be"),
        ({"alternative": "less"}, "alternative"),
        ({"method": "exact"}, "method"),
    ],
)
def test_fixed_horizon_sample_size_rejects_bad_input(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"p0": 0.02, "p1": 0.04} | kwargs
    with pytest.raises(ValueError, match=message):
        fixed_horizon_sample_size(**args)  # type: ignore[arg-type]


# -------------------------------------------------------------------- eq-wilson


@pytest.mark.spec("eq-wilson", kind="parity")
@given(arm, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_interval_matches_statsmodels_and_formula(
    counts: tuple[int, int], confidence: float
) -> None:
    x, n = counts
    lo, hi = wilson_interval(x, n, confidence=confidence)
    sm_lo, sm_hi = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert lo == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert hi == pytest.approx(min(1.0, centre + half), abs=1e-12)
    assert lo == pytest.approx(float(sm_lo), abs=1e-12)
    assert hi == pytest.approx(float(sm_hi), abs=1e-12)


@pytest.mark.spec("eq-wilson", kind="property")
@given(arm)
def test_wilson_interval_contains_estimate_within_unit_interval(counts: tuple[int, int]) -> None:
    x, n = counts
    lo, hi = wilson_interval(x, n)
    assert 0.0 <= lo <= x / n <= hi <= 1.0
    assert lo < hi


@pytest.mark.spec("eq-wilson", kind="property")
@given(arm, st.integers(2, 50))
def test_wilson_interval_narrows_with_n(counts: tuple[int, int], factor: int) -> None:
    x, n = counts
    lo1, hi1 = wilson_interval(x, n)
    lo2, hi2 = wilson_interval(x * factor, n * factor)
    assert hi2 - lo2 < hi1 - lo1


@pytest.mark.spec("eq-wilson", kind="property")
@pytest.mark.parametrize("n", [30, 100, 400])
def test_wilson_interval_coverage_near_nominal(n: int) -> None:
    # Exact coverage, averaged over p in (0.05, 0.95): close to 95 % (Brown, Cai, DasGupta).
    k = np.arange(n + 1)
    bounds = np.array([wilson_interval(int(v), n) for v in k])
    coverage = []
    for p in np.linspace(0.05, 0.95, 91):
        covered = (bounds[:, 0] <= p) & (p <= bounds[:, 1])
        coverage.append(float(np.sum(sps.binom.pmf(k, n, p)[covered])))
    assert 0.935 <= float(np.mean(coverage)) <= 0.96
    assert min(coverage) >= 0.88


@pytest.mark.spec("eq-wilson", kind="errors")
def test_wilson_interval_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes exceed n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="successes must be nonnegative"):
        wilson_interval(-1, 4)
    with pytest.raises(ValueError, match="n must be finite"):
        wilson_interval(1, math.inf)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 4, confidence=1.0)


# ------------------------------------------------------------------- eq-mcnemar


@pytest.mark.spec("eq-mcnemar", kind="parity")
@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_exact_matches_statsmodels_scipy_and_formula(b: int, c: int) -> None:
    ours = mcnemar_exact(b, c)
    assert ours == pytest.approx(float(mcnemar([[10, b], [c, 10]], exact=True).pvalue), rel=1e-9)
    n = b + c
    literal = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)
    assert ours == pytest.approx(literal, rel=1e-9)
    if n:
        for alt in ("two-sided", "greater", "less"):
            ref = sps.binomtest(b, n, 0.5, alternative=alt).pvalue
            assert mcnemar_exact(b, c, alternative=alt) == pytest.approx(float(ref), rel=1e-9)


@pytest.mark.spec("eq-mcnemar", kind="property")
@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_exact_symmetric_and_one_sided_consistent(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(mcnemar_exact(c, b), rel=1e-12)
    greater, less = (
        mcnemar_exact(b, c, alternative="greater"),
        mcnemar_exact(b, c, alternative="less"),
    )
    assert greater + less >= 1.0 - 1e-12
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, 2 * min(greater, less)), rel=1e-9)
    assert mcnemar_exact(b + 1, c, alternative="greater") <= greater + 1e-15


@pytest.mark.spec("eq-mcnemar", kind="errors")
def test_mcnemar_exact_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="b must be nonnegative"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="c must be whole"):
        mcnemar_exact(1, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alternative"):
        mcnemar_exact(1, 2, alternative="both")  # type: ignore[arg-type]


# ---------------------------------------------------- eq-paired-noninferiority


def _pairs(b: int, c: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    cand = np.r_[np.ones(b), np.zeros(c), np.ones(both), np.zeros(neither)].astype(bool)
    prod = np.r_[np.zeros(b), np.ones(c), np.ones(both), np.zeros(neither)].astype(bool)
    return cand, prod


def _tango_literal(b: int, c: int, n: int, delta: float) -> float:
    """Tango (1998), eq. for delta >= 0 as published; delta < 0 by swapping b and c."""
    if delta < 0:
        return -_tango_literal(c, b, n, -delta)
    w = -b - c + (2 * n - b + c) * delta
    q21 = (math.sqrt(w**2 + 8 * n * c * delta * (1 - delta)) - w) / (4 * n)
    return (b - c - n * delta) / math.sqrt(n * (2 * q21 + delta * (1 - delta)))


def _tango_numeric(b: int, c: int, n: int, delta: float) -> float:
    """The same statistic with the restricted MLE found by numerical maximisation."""
    m = n - b - c
    lo = max(0.0, -delta) + 1e-12
    hi = (1 - delta) / 2 - 1e-12

    def negloglik(q21: float) -> float:
        q12 = q21 + delta
        return -(b * math.log(q12) + c * math.log(q21) + m * math.log(1 - q12 - q21))

    q21 = minimize_scalar(negloglik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
    return (b - c - n * delta) / math.sqrt(n * (2 * q21 + delta - delta**2))


discordant = st.tuples(
    st.integers(1, 60), st.integers(1, 60), st.integers(0, 400), st.integers(0, 100)
)


@pytest.mark.spec("eq-paired-noninferiority", kind="parity")
@given(discordant, st.floats(0.0, 0.2))
def test_paired_noninferiority_matches_tango_formula_and_numeric_mle(
    cells: tuple[int, int, int, int], margin: float
) -> None:
    b, c, both, neither = cells
    n = b + c + both + neither
    result = paired_noninferiority(*_pairs(b, c, both, neither), margin=margin)
    z = _tango_literal(b, c, n, -margin)
    assert result.p_value == pytest.approx(NormalDist().cdf(-z), rel=1e-9, abs=1e-15)
    if margin > 0.001:
        assert z == pytest.approx(_tango_numeric(b, c, n, -margin), rel=1e-5)
    assert result.difference == pytest.approx((b - c) / n)
    assert (result.candidate_only, result.production_only, result.n) == (b, c, n)


@pytest.mark.spec("eq-paired-noninferiority", kind="parity")
@given(discordant)
def test_paired_noninferiority_at_zero_margin_is_mcnemar_z(
    cells: tuple[int, int, int, int],
) -> None:
    b, c, both, neither = cells
    result = paired_noninferiority(*_pairs(b, c, both, neither), margin=0.0)
    chi2 = mcnemar([[both, b], [c, neither]], exact=False, correction=False).statistic
    z = (b - c) / math.sqrt(b + c)
    assert z**2 == pytest.approx(float(chi2), rel=1e-9)
    assert result.p_value == pytest.approx(NormalDist().cdf(-z), rel=1e-9)


@pytest.mark.spec("eq-paired-noninferiority", kind="property")
@given(discordant, st.floats(-0.5, 0.5), st.floats(0.001, 0.3))
def test_paired_noninferiority_statistic_decreases_in_delta(
    cells: tuple[int, int, int, int], delta: float, step: float
) -> None:
    b, c, both, neither = cells
    n = b + c + both + neither
    assert _tango_z(b, c, n, delta + step) < _tango_z(b, c, n, delta) + 1e-12


@pytest.mark.spec("eq-paired-noninferiority", kind="property")
@given(discordant, st.floats(0.0, 0.2), st.sampled_from([0.01, 0.05, 0.1]))
def test_paired_noninferiority_bound_and_p_value_agree(
    cells: tuple[int, int, int, int], margin: float, alpha: float
) -> None:
    b, c, both, neither = cells
    result = paired_noninferiority(*_pairs(b, c, both, neither), margin=margin, alpha=alpha)
    assert -1.0 <= result.lower_bound <= result.difference
    n = b + c + both + neither
    if result.lower_bound > -1.0 + 1e-9:
        # The bound is where the score statistic crosses the one-sided critical value.
        z_crit = NormalDist().inv_cdf(1 - alpha)
        assert _tango_literal(b, c, n, result.lower_bound) == pytest.approx(z_crit, abs=1e-6)
    if abs(result.lower_bound + margin) > 1e-9:
        assert result.passed == (result.lower_bound > -margin)
    assert result.passed == (result.p_value <= alpha)
    wider = paired_noninferiority(*_pairs(b, c, both, neither), margin=margin + 0.05, alpha=alpha)
    assert wider.p_value <= result.p_value + 1e-15


@pytest.mark.spec("eq-paired-noninferiority", kind="property")
@pytest.mark.parametrize(("margin", "discordance"), [(0.02, 0.1), (0.05, 0.2), (0.1, 0.4)])
def test_paired_noninferiority_exact_size_near_alpha(margin: float, discordance: float) -> None:
    # Exact rejection probability on the null boundary (Delta = -margin), n = 150 pairs.
    n = 150
    p12, p21 = (discordance - margin) / 2, (discordance + margin) / 2
    z_crit = NormalDist().inv_cdf(1 - ALPHA)
    size = 0.0
    for b in range(n + 1):
        cs = np.arange(n - b + 1)
        rejects = np.array([_tango_z(b, int(c), n, -margin) >= z_crit for c in cs])
        size += sps.binom.pmf(b, n, p12) * float(
            np.sum(sps.binom.pmf(cs, n - b, p21 / (1 - p12))[rejects])
        )
    assert 0.02 <= size <= 0.065


@pytest.mark.spec("eq-paired-noninferiority", kind="errors")
def test_paired_noninferiority_rejects_bad_input() -> None:
    cand, prod = _pairs(3, 2, 10, 1)
    with pytest.raises(ValueError, match="differ in length"):
        paired_noninferiority(cand, prod[:-1], margin=0.02)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        paired_noninferiority([], [], margin=0.02)
    with pytest.raises(ValueError, match="only 0/1"):
        paired_noninferiority(cand * 2.0, prod, margin=0.02)
    with pytest.raises(ValueError, match="margin"):
        paired_noninferiority(cand, prod, margin=1.0)
    with pytest.raises(ValueError, match="alpha"):
        paired_noninferiority(cand, prod, margin=0.02, alpha=0.0)


# ----------------------------------------------------------------------- eq-psi

samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=5, max_size=300)
EDGES = [-1e3, -100.0, -10.0, 0.0, 10.0, 100.0, 1e3]


def _psi_literal(expected: list[float], actual: list[float], edges: list[float]) -> float:
    total = 0.0
    for k in range(len(edges) - 1):
        last = k == len(edges) - 2

        def frac(xs: list[float], k: int = k, last: bool = last) -> float:
            inside = [v for v in xs if edges[k] <= v < edges[k + 1] or (last and v == edges[-1])]
            return max(len(inside) / len(xs), 1e-4)

        e, a = frac(expected), frac(actual)
        total += (a - e) * math.log(a / e)
    return total


@pytest.mark.spec("eq-psi", kind="parity")
@given(samples, samples)
def test_psi_matches_literal_formula_and_symmetrised_kl(
    expected: list[float], actual: list[float]
) -> None:
    ours = population_stability_index(expected, actual, bins=EDGES)
    assert ours == pytest.approx(_psi_literal(expected, actual, EDGES), rel=1e-9, abs=1e-12)
    e = np.maximum(np.histogram(expected, bins=EDGES)[0] / len(expected), 1e-4)
    a = np.maximum(np.histogram(actual, bins=EDGES)[0] / len(actual), 1e-4)
    kl = float(np.sum(rel_entr(a, e) + rel_entr(e, a)))
    assert ours == pytest.approx(kl, rel=1e-9, abs=1e-12)


@pytest.mark.spec("eq-psi", kind="parity")
def test_psi_quantile_bins_worked_example() -> None:
    ref = np.arange(1000) / 1000
    live = ref**2
    inner = [float(np.quantile(ref, k / 10)) for k in range(1, 10)]
    edges = [-math.inf, *inner, math.inf]

    def fractions(xs: np.ndarray) -> list[float]:
        return [sum(lo <= v < hi for v in xs) / len(xs) for lo, hi in itertools.pairwise(edges)]

    e, a = fractions(ref), fractions(live)
    literal = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))
    assert population_stability_index(ref, live) == pytest.approx(literal, rel=1e-12)
    assert population_stability_index(ref, live) == pytest.approx(0.3831, abs=5e-5)


@pytest.mark.spec("eq-psi", kind="property")
@given(samples, samples)
def test_population_stability_index_nonnegative_and_symmetric(
    expected: list[float], actual: list[float]
) -> None:
    forward = population_stability_index(expected, actual, bins=EDGES)
    assert forward >= 0.0
    assert forward == pytest.approx(population_stability_index(actual, expected, bins=EDGES))
    assert population_stability_index(expected, actual, bins=4) >= 0.0


@pytest.mark.spec("eq-psi", kind="property")
@given(samples, samples)
def test_population_stability_index_zero_iff_same_binned_distribution(
    expected: list[float], actual: list[float]
) -> None:
    assert population_stability_index(expected, expected, bins=EDGES) == 0.0
    assert population_stability_index(expected, list(reversed(expected)) * 3, bins=EDGES) == 0.0
    same = np.array_equal(
        np.histogram(expected, bins=EDGES)[0] / len(expected),
        np.histogram(actual, bins=EDGES)[0] / len(actual),
    )
    assert (population_stability_index(expected, actual, bins=EDGES) == 0.0) == same


@pytest.mark.spec("eq-psi", kind="errors")
def test_population_stability_index_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="expected must be a non-empty 1-D"):
        population_stability_index([], [1.0])
    with pytest.raises(ValueError, match="actual contains NaN"):
        population_stability_index([1.0, 2.0], [math.nan])
    with pytest.raises(ValueError, match="bins must be at least 2"):
        population_stability_index([1.0, 2.0], [1.0], bins=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        population_stability_index([1.0, 2.0], [1.0], bins=[0.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="actual has values outside the bin edges"):
        population_stability_index([1.0, 2.0], [5.0], bins=[0.0, 3.0])
    with pytest.raises(ValueError, match="epsilon"):
        population_stability_index([1.0, 2.0], [1.0], epsilon=0.0)


# ------------------------------------------------------------------------ eq-ks

ks_samples = st.lists(st.integers(-50, 50).map(float), min_size=1, max_size=200)


@pytest.mark.spec("eq-ks", kind="parity")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # SciPy's n_e = 0 case
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@given(ks_samples, ks_samples)
def test_ks_two_sample_matches_scipy_and_formula(x: list[float], y: list[float]) -> None:
    ours = ks_two_sample(x, y)
    ref = sps.ks_2samp(x, y, method="asymp")
    assert ours.statistic == pytest.approx(float(ref.statistic), abs=1e-12)
    if round(len(x) * len(y) / (len(x) + len(y))) >= 1:
        assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)
    else:  # one point each: SciPy's n_e rounds to 0 (NaN); ours uses n_e = 1
        assert ours.p_value == pytest.approx(float(sps.kstwo.sf(ours.statistic, 1)))
    assert ours.statistic == pytest.approx(float(sps.ks_2samp(x, y).statistic), abs=1e-12)
    literal = max(
        abs(sum(v <= t for v in x) / len(x) - sum(v <= t for v in y) / len(y)) for t in x + y
    )
    assert ours.statistic == pytest.approx(literal, abs=1e-12)


@pytest.mark.spec("eq-ks", kind="property")
@given(ks_samples, ks_samples)
def test_ks_two_sample_symmetric_bounded_and_invariant(x: list[float], y: list[float]) -> None:
    r = ks_two_sample(x, y)
    assert 0.0 <= r.statistic <= 1.0
    assert 0.0 <= r.p_value <= 1.0
    assert ks_two_sample(y, x).statistic == pytest.approx(r.statistic, abs=1e-12)
    # Invariant under a strictly increasing transformation of both samples.
    assert ks_two_sample(np.exp(np.array(x) / 10), np.exp(np.array(y) / 10)).statistic == (
        pytest.approx(r.statistic, abs=1e-12)
    )
    assert ks_two_sample(x, x).statistic == 0.0


@pytest.mark.spec("eq-ks", kind="errors")
def test_ks_two_sample_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="x must be a non-empty 1-D"):
        ks_two_sample([], [1.0])
    with pytest.raises(ValueError, match="y contains NaN"):
        ks_two_sample([1.0], [math.inf])
    with pytest.raises(ValueError, match="y must be numeric"):
        ks_two_sample([1.0], ["a"])


# ---------------------------------------------------------------------- eq-holm

p_lists = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40)


@pytest.mark.spec("eq-holm", kind="parity")
@settings(max_examples=40)  # multipletests costs ~0.1 s per call
@given(p_lists, st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_matches_statsmodels_and_formula(p: list[float], alpha: float) -> None:
    ours = holm(p, alpha)
    reject, corrected, _, _ = multipletests(p, alpha=alpha, method="holm")
    np.testing.assert_allclose(ours.adjusted, corrected, rtol=1e-12, atol=1e-15)
    assert ours.reject == tuple(bool(v) for v in reject)
    # Literal step-down: reject in sorted order while p_(j) <= alpha / (m - j + 1).
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    literal = [False] * m
    for j, i in enumerate(order):
        if p[i] > alpha / (m - j):
            break
        literal[i] = True
    assert ours.reject == tuple(literal)


@pytest.mark.spec("eq-holm", kind="property")
@given(p_lists, st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_monotone_adjusted_and_subset_of_unadjusted(p: list[float], alpha: float) -> None:
    r = holm(p, alpha)
    order = np.argsort(p, kind="stable")
    adjusted = np.array(r.adjusted)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= np.array(p))
    assert np.all(adjusted <= 1.0)
    for raw, rej in zip(p, r.reject, strict=True):
        if rej:
            assert raw <= alpha
        if raw <= alpha / len(p):
            assert rej  # at least what Bonferroni rejects


@pytest.mark.spec("eq-holm", kind="property")
def test_holm_controls_family_wise_error() -> None:
    rng = np.random.default_rng(3)
    runs, m = 4000, 10
    # 6 true nulls (uniform p-values), 4 false nulls with small p-values.
    p = np.concatenate([rng.uniform(size=(runs, 6)), rng.beta(0.1, 5, size=(runs, 4))], axis=1)
    false_rejections = np.array([any(holm(row, ALPHA).reject[:6]) for row in p])
    assert false_rejections.mean() <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    naive = (p[:, :6] <= ALPHA).any(axis=1).mean()
    assert naive > 4 * ALPHA
    assert m == p.shape[1]


@pytest.mark.spec("eq-holm", kind="errors")
def test_holm_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="p_values must lie in"):
        holm([0.1, 1.5])
    with pytest.raises(ValueError, match="p_values contains NaN"):
        holm([math.nan])
    with pytest.raises(ValueError, match="p_values must be a non-empty"):
        holm([])
    with pytest.raises(ValueError, match="alpha"):
        holm([0.1], alpha=0.0)


# ------------------------------------------- robustness: scalars, caps, atomic updates

# Values that no real-number parameter accepts: wrong types, bools, non-finite numbers.
NOT_A_REAL = [
    None,
    "0.5",
    b"1",
    [0.5],
    (0.5,),
    1j,
    np.complex128(0.5),
    True,
    np.bool_(False),
    np.array([0.5, 0.5]),
    math.nan,
    math.inf,
    -math.inf,
    np.float32("nan"),
    np.float64("-inf"),
    10**400,
]
bad_real = st.sampled_from(NOT_A_REAL) | st.floats(allow_nan=True).filter(
    lambda x: not math.isfinite(x)
)
# Counts: also negative, fractional and beyond MAX_COUNT.
bad_count = bad_real | st.sampled_from([-1, 2.5, np.float32(-3.0), 2**60, np.uint64(2**63)])

TWO_LOOKS = ([1, 2], [10, 20], [3, 4], [100, 200])

# (parameter, a call taking its value); every other argument is valid.
REAL_PARAMETERS: list[tuple[str, Callable[[Any], object]]] = [
    ("alpha", lambda v: SequentialErrorRateTest(alpha=v)),
    ("prior_scale", lambda v: SequentialErrorRateTest(prior_scale=v)),
    ("grid_size", lambda v: SequentialErrorRateTest(grid_size=v)),
    ("prior_scale", lambda v: sequential_log_evidence(*TWO_LOOKS, prior_scale=v)),
    ("grid_size", lambda v: sequential_log_evidence(*TWO_LOOKS, grid_size=v)),
    ("alpha", lambda v: bernoulli_confidence_sequence(3, 10, alpha=v)),
    ("prior_a", lambda v: bernoulli_confidence_sequence(3, 10, prior_a=v)),
    ("prior_b", lambda v: bernoulli_confidence_sequence(3, 10, prior_b=v)),
    ("alpha", lambda v: error_rate_difference_bounds(1, 10, 2, 20, alpha=v)),
    ("prior_a", lambda v: error_rate_difference_bounds(1, 10, 2, 20, prior_a=v)),
    ("alpha", lambda v: ErrorRateConfidenceSequence(alpha=v)),
    ("prior_a", lambda v: ErrorRateConfidenceSequence(prior_a=v)),
    ("prior_b", lambda v: ErrorRateConfidenceSequence(prior_b=v)),
    ("margin", lambda v: ErrorRateConfidenceSequence().shows_not_worse(v)),
    ("p0", lambda v: fixed_horizon_sample_size(v, 0.04)),
    ("p1", lambda v: fixed_horizon_sample_size(0.02, v)),
    ("alpha", lambda v: fixed_horizon_sample_size(0.02, 0.04, alpha=v)),
    ("power", lambda v: fixed_horizon_sample_size(0.02, 0.04, power=v)),
    ("canary_fraction", lambda v: fixed_horizon_sample_size(0.02, 0.04, canary_fraction=v)),
    ("successes", lambda v: wilson_interval(v, 10)),
    ("n", lambda v: wilson_interval(3, v)),
    ("confidence", lambda v: wilson_interval(3, 10, confidence=v)),
    ("b", lambda v: mcnemar_exact(v, 3)),
    ("c", lambda v: mcnemar_exact(3, v)),
    ("margin", lambda v: paired_noninferiority([1, 0, 1], [1, 1, 0], margin=v)),
    ("alpha", lambda v: paired_noninferiority([1, 0, 1], [1, 1, 0], margin=0.1, alpha=v)),
    ("epsilon", lambda v: population_stability_index([1.0, 2.0], [1.5], epsilon=v)),
    ("bins", lambda v: population_stability_index([1.0, 2.0], [1.5], bins=v)),
    ("alpha", lambda v: holm([0.01, 0.2], alpha=v)),
]
COUNT_NAMES = ("canary_errors", "canary_requests", "baseline_errors", "baseline_requests")
VALID_LOOK = {"canary_errors": 1, "canary_requests": 10, "baseline_errors": 2}
VALID_LOOK |= {"baseline_requests": 100}


@pytest.mark.parametrize(("name", "call"), REAL_PARAMETERS)
@given(value=bad_real)
def test_every_numeric_parameter_names_itself_when_refused(
    name: str, call: Callable[[Any], object], value: object
) -> None:
    with pytest.raises(ValueError, match=name):
        call(value)


@pytest.mark.parametrize("name", COUNT_NAMES)
@pytest.mark.parametrize("cls", [SequentialErrorRateTest, ErrorRateConfidenceSequence])
@given(value=bad_count)
def test_every_count_names_itself_when_refused(name: str, cls: type, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        cls().update(**(VALID_LOOK | {name: value}))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: two_proportion_z_test(1, 10, 2, 20, alternative=np.array(["greater"])),
            "alternative",
        ),
        (lambda: mcnemar_exact(1, 2, alternative=None), "alternative"),
        (lambda: fixed_horizon_sample_size(0.02, 0.04, method=["wald"]), "method"),
        (lambda: fixed_horizon_sample_size(0.02, 0.04, alternative="less"), "alternative"),
        (lambda: sequential_log_evidence([1, 2], [10, 20, 30], [1], [5]), "do not broadcast"),
        (lambda: bernoulli_confidence_sequence([1, 2], [10, 20, 30]), "errors and requests"),
    ],
)
def test_choices_and_shapes_are_named(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def _snapshot(obj: object) -> dict[str, object]:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(obj).items()}


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a
    )


@pytest.mark.parametrize("cls", [SequentialErrorRateTest, ErrorRateConfidenceSequence])
@given(
    before=looks,
    after=looks,
    name=st.sampled_from(COUNT_NAMES),
    value=bad_count | st.sampled_from([np.array([5, 6]), [5, 6], np.array(7.0)]),
)
def test_refused_update_leaves_the_object_exactly_as_before(
    cls: type, before: list[Any], after: list[Any], name: str, value: object
) -> None:
    judged, clean = cls(), cls()
    for counts in before:
        for obj in (judged, clean):
            obj.update(**dict(zip(COUNT_NAMES, counts, strict=True)))
    state = _snapshot(judged)
    bad = dict(zip(COUNT_NAMES, after[0], strict=True)) | {name: value}
    with pytest.raises(ValueError, match=name):
        judged.update(**bad)
    assert _same(_snapshot(judged), state)
    # And the next valid updates report exactly what they would have without the refusal.
    for counts in after:
        for obj in (judged, clean):
            obj.update(**dict(zip(COUNT_NAMES, counts, strict=True)))
    assert _same(_snapshot(judged), _snapshot(clean))


@pytest.mark.parametrize("cls", [SequentialErrorRateTest, ErrorRateConfidenceSequence])
@given(before=looks)
def test_update_with_errors_above_requests_changes_nothing(cls: type, before: list[Any]) -> None:
    obj = cls()
    for counts in before:
        obj.update(**dict(zip(COUNT_NAMES, counts, strict=True)))
    state = _snapshot(obj)
    with pytest.raises(ValueError, match="baseline_errors exceed baseline_requests"):
        obj.update(canary_errors=1, canary_requests=5, baseline_errors=9, baseline_requests=8)
    assert _same(_snapshot(obj), state)


@given(x=st.floats(1e-3, 0.999), k=st.integers(1, 200))
def test_numpy_scalars_give_the_python_scalars_results(x: float, k: int) -> None:
    for conv_f, conv_i in ((np.float64, np.int64), (np.float32, np.int32), (np.float16, np.uint16)):
        v = conv_f(x)
        if not 0.0 < float(v) < 1.0:
            continue
        i = conv_i(k)
        same = float(v)
        assert wilson_interval(i, i + 3, confidence=v) == wilson_interval(k, k + 3, confidence=same)
        assert mcnemar_exact(i, conv_i(3)) == mcnemar_exact(k, 3)
        assert np.array_equal(
            bernoulli_confidence_sequence(i, k + 5, alpha=v, prior_a=v),
            bernoulli_confidence_sequence(k, k + 5, alpha=same, prior_a=same),
        )
        if same != 0.02:
            assert fixed_horizon_sample_size(0.02, v, canary_fraction=v, power=v) == (
                fixed_horizon_sample_size(0.02, same, canary_fraction=same, power=same)
            )
        seq, ref = (
            SequentialErrorRateTest(v, grid_size=i + 1),
            SequentialErrorRateTest(same, grid_size=k + 1),
        )
        for obj, conv in ((seq, conv_i), (ref, int)):
            obj.update(
                canary_errors=conv(2),
                canary_requests=conv(k + 2),
                baseline_errors=conv(1),
                baseline_requests=conv(k + 9),
            )
        assert (seq.p_value, seq.decision) == (ref.p_value, ref.decision)
        cs, cs_ref = ErrorRateConfidenceSequence(v), ErrorRateConfidenceSequence(same)
        cs.update(
            canary_errors=i, canary_requests=i, baseline_errors=conv_i(0), baseline_requests=i
        )
        cs_ref.update(canary_errors=k, canary_requests=k, baseline_errors=0, baseline_requests=k)
        assert (cs.lower, cs.upper, cs.shows_not_worse(v)) == (
            cs_ref.lower,
            cs_ref.upper,
            cs_ref.shows_not_worse(same),
        )
        data = np.arange(20.0)
        assert population_stability_index(data, data + 1, bins=conv_i(4), epsilon=v) == (
            population_stability_index(data, data + 1, bins=4, epsilon=same)
        )
        assert holm([0.01, 0.2], alpha=v) == holm([0.01, 0.2], alpha=same)
        cand, prod = [1, 0, 1, 1], [1, 1, 0, 1]
        assert paired_noninferiority(cand, prod, margin=v, alpha=v) == (
            paired_noninferiority(cand, prod, margin=same, alpha=same)
        )


def test_wilson_interval_accepts_a_float32_confidence() -> None:
    # The example: refused with "confidence must be in (0, 1), got np.float32(0.95)".
    lo, hi = wilson_interval(95, 100, confidence=np.float32(0.95))
    assert (round(lo, 4), round(hi, 4)) == (0.8882, 0.9785)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SequentialErrorRateTest(grid_size=10**9), "grid_size must be at most 4096"),
        (lambda: SequentialErrorRateTest(grid_size=MAX_GRID_SIZE + 1), "at most 4096"),
        (lambda: sequential_log_evidence(*TWO_LOOKS, grid_size=10**9), "grid_size must be at most"),
        (lambda: SequentialErrorRateTest(prior_scale=1e6), r"prior_scale must be in \(0, 100\]"),
        (
            lambda: population_stability_index([1.0, 2.0], [1.5], bins=10**9),
            "bins must be at most 4096",
        ),
        (
            lambda: population_stability_index([0.5], [0.5], bins=np.arange(MAX_BINS + 2.0)),
            "at most 4096 bins",
        ),
        (lambda: wilson_interval(1, 2**60), "n must be at most MAX_COUNT"),
        (lambda: mcnemar_exact(10**400, 1), "b must be at most MAX_COUNT"),
        (
            lambda: two_proportion_z_test(1, 2**60, 1, 10),
            "canary_requests must be at most MAX_COUNT",
        ),
    ],
)
def test_sizes_past_the_documented_caps_are_refused_by_name(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_sizes_at_the_caps_are_accepted() -> None:
    assert (
        SequentialErrorRateTest(grid_size=MAX_GRID_SIZE, prior_scale=MAX_PRIOR_SCALE).p_value == 1.0
    )
    data = np.linspace(0.0, 1.0, 2 * MAX_BINS)
    assert population_stability_index(data, data, bins=MAX_BINS) == 0.0
    assert wilson_interval(MAX_COUNT, MAX_COUNT)[1] == 1.0
    # The largest prior scale keeps the evidence finite even for a look without errors.
    log_m = sequential_log_evidence([0, 5], [10, 10], [0, 0], [10, 10], prior_scale=MAX_PRIOR_SCALE)
    assert np.all(np.isfinite(log_m))


@pytest.mark.spec("eq-sequential", kind="property")
@given(look)
def test_sequential_log_evidence_of_scalars_is_one_look(counts: tuple[int, int, int, int]) -> None:
    zero_d = sequential_log_evidence(*counts)
    assert zero_d.shape == ()
    assert float(zero_d) == float(sequential_log_evidence(*[[c] for c in counts])[0])
    test = SequentialErrorRateTest()
    test.update(**dict(zip(COUNT_NAMES, counts, strict=True)))
    assert float(zero_d) == pytest.approx(test.log_evidence, abs=1e-9)


# Every clause of every "Raises:" section in release_spec/statistics.py, one case each.
DOCUMENTED_RAISES: list[tuple[Callable[[], object], str]] = [
    # sequential_log_evidence
    (lambda: sequential_log_evidence([-1], [10], [0], [10]), "canary_errors must be nonnegative"),
    (lambda: sequential_log_evidence([1], [math.inf], [0], [10]), "canary_requests must be finite"),
    (lambda: sequential_log_evidence([1], [10], [0.5], [10]), "baseline_errors must be whole"),
    (
        lambda: sequential_log_evidence([1], [10], [0], [2.0**60]),
        "baseline_requests must be at most",
    ),
    (
        lambda: sequential_log_evidence([11], [10], [0], [10]),
        "canary_errors exceed canary_requests",
    ),
    (lambda: sequential_log_evidence([1, 1], [10] * 3, [0], [10]), "canary_errors and canary_req"),
    (lambda: sequential_log_evidence([1], [10], [0], [10], prior_scale=0), "prior_scale"),
    (lambda: sequential_log_evidence([1], [10], [0], [10], grid_size=1), "grid_size"),
    # SequentialErrorRateTest
    (lambda: SequentialErrorRateTest(alpha=1.0), "alpha must be in"),
    (lambda: SequentialErrorRateTest(prior_scale=-1.0), "prior_scale must be in"),
    (lambda: SequentialErrorRateTest().update(**(VALID_LOOK | {"canary_errors": -1})), "canary_e"),
    # two_proportion_z_test
    (lambda: two_proportion_z_test(1.5, 10, 1, 10), "canary_errors must be whole"),
    (lambda: two_proportion_z_test(0, 0, 1, 10), "must be at least 1"),
    (lambda: two_proportion_z_test(1, 10, 1, 10, alternative="less"), "alternative"),
    # bernoulli_confidence_sequence and error_rate_difference_bounds
    (lambda: bernoulli_confidence_sequence(-1, 10), "errors must be nonnegative"),
    (lambda: bernoulli_confidence_sequence(1, 10, alpha=0.0), "alpha must be in"),
    (lambda: bernoulli_confidence_sequence(1, 10, prior_b=0.0), "prior_b must be > 0"),
    (lambda: error_rate_difference_bounds(1, 10, 11, 10), "baseline_errors exceed"),
    (lambda: error_rate_difference_bounds(1, 10, 1, 10, alpha=2), "alpha must be in"),
    (lambda: error_rate_difference_bounds(1, 10, 1, 10, prior_a=-1), "prior_a must be > 0"),
    # ErrorRateConfidenceSequence.update
    (
        lambda: ErrorRateConfidenceSequence().update(**(VALID_LOOK | {"canary_requests": [5, 6]})),
        "canary_requests must be a number",
    ),
    (
        lambda: ErrorRateConfidenceSequence().update(**(VALID_LOOK | {"baseline_requests": 2**60})),
        "baseline_requests must be at most MAX_COUNT",
    ),
    (
        lambda: ErrorRateConfidenceSequence().update(**(VALID_LOOK | {"canary_errors": 11})),
        "canary_errors exceed canary_requests",
    ),
    # fixed_horizon_sample_size
    (lambda: fixed_horizon_sample_size(0.0, 0.04), "p0 must be in"),
    (lambda: fixed_horizon_sample_size(0.02, 0.04, alpha=1.0), "alpha must be in"),
    (lambda: fixed_horizon_sample_size(0.02, 0.04, power=0.0), "power must be in"),
    (
        lambda: fixed_horizon_sample_size(0.02, 0.04, canary_fraction=1.0),
        "canary_fraction must be in",
    ),
    (lambda: fixed_horizon_sample_size(0.02, 0.02), "must differ"),
    (lambda: fixed_horizon_sample_size(0.02, 0.04, method="exact"), "method"),
    # wilson_interval
    (lambda: wilson_interval(-1, 10), "successes must be nonnegative"),
    (lambda: wilson_interval(1.5, 10), "successes must be whole"),
    (lambda: wilson_interval(1, math.nan), "n must be finite"),
    (lambda: wilson_interval(11, 10), "successes exceed n"),
    (lambda: wilson_interval(0, 0), "n must be at least 1"),
    (lambda: wilson_interval(1, 10, confidence=0.0), "confidence must be in"),
    # mcnemar_exact
    (lambda: mcnemar_exact(-1, 1), "b must be nonnegative"),
    (lambda: mcnemar_exact(1, 0.5), "c must be whole"),
    (lambda: mcnemar_exact(1, math.inf), "c must be finite"),
    (lambda: mcnemar_exact(1, 2, alternative="both"), "alternative"),
    # paired_noninferiority
    (lambda: paired_noninferiority([], [], margin=0.1), "candidate_correct must be a non-empty"),
    (lambda: paired_noninferiority([1, 0], [1], margin=0.1), "differ in length"),
    (lambda: paired_noninferiority([1, 2], [1, 0], margin=0.1), "only 0/1"),
    (lambda: paired_noninferiority([1, 0], [1, 0], margin=1.0), "margin must be in"),
    (lambda: paired_noninferiority([1, 0], [1, 0], margin=0.1, alpha=0), "alpha must be in"),
    # population_stability_index
    (lambda: population_stability_index([], [1.0]), "expected must be a non-empty"),
    (lambda: population_stability_index([[1.0]], [1.0]), "expected must be a non-empty 1-D"),
    (lambda: population_stability_index([1.0], [math.inf]), "actual contains NaN or infinite"),
    (lambda: population_stability_index([1.0], [1.0], bins=1), "bins must be at least 2"),
    (lambda: population_stability_index([1.0], [1.0], bins=MAX_BINS + 1), "bins must be at most"),
    (lambda: population_stability_index([1.0], [1.0], bins=[0.0, 2.0, 1.0]), "strictly increasing"),
    (lambda: population_stability_index([1.0], [3.0], bins=[0.0, 2.0]), "outside the bin edges"),
    (lambda: population_stability_index([1.0], [1.0], epsilon=1.0), "epsilon must be in"),
    # ks_two_sample
    (lambda: ks_two_sample([], [1.0]), "x must be a non-empty"),
    (lambda: ks_two_sample([1.0], [[1.0]]), "y must be a non-empty 1-D"),
    (lambda: ks_two_sample([math.nan], [1.0]), "x contains NaN"),
    # holm
    (lambda: holm([]), "p_values must be a non-empty"),
    (lambda: holm([[0.1]]), "p_values must be a non-empty 1-D"),
    (lambda: holm([math.inf]), "p_values contains NaN or infinite"),
    (lambda: holm([1.5]), "p_values must lie in"),
    (lambda: holm([0.5], alpha=math.nan), "alpha must be in"),
]


@pytest.mark.parametrize(("call", "message"), DOCUMENTED_RAISES)
def test_every_documented_raise_happens(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
