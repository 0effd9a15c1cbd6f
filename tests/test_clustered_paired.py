"""Spec tests for eq-clustered-paired: paired non-inferiority clustered by prompt.

Parity with statsmodels (a one-sample t test on the per-prompt differences,
and the cluster-robust OLS it equals up to a known factor) and with the
formula written out; the one-sample-per-prompt case against
eq-paired-noninferiority; size by simulation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from release_spec.statistics import clustered_paired_noninferiority, paired_noninferiority


@st.composite
def prompt_samples(draw: st.DrawFn, equal: bool = False) -> tuple[list[Any], list[Any]]:
    """Per-prompt 0/1 samples of both models; ragged unless ``equal``."""
    m = draw(st.integers(2, 25))
    k = draw(st.integers(1, 6))

    def one() -> list[int]:
        size = k if equal else draw(st.integers(1, 6))
        return draw(st.lists(st.integers(0, 1), min_size=size, max_size=size))

    return [one() for _ in range(m)], [one() for _ in range(m)]


def literal(cand: list[Any], prod: list[Any], margin: float, alpha: float) -> tuple[float, ...]:
    from scipy import stats

    d = [sum(c) / len(c) - sum(p) / len(p) for c, p in zip(cand, prod, strict=True)]
    m = len(d)
    mean = sum(d) / m
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (m * (m - 1)))
    lower = mean - stats.t.ppf(1 - alpha, m - 1) * se
    return mean, se, lower


@pytest.mark.spec("eq-clustered-paired", kind="parity")
@given(prompt_samples(), st.floats(0.0, 0.5), st.sampled_from([0.01, 0.05, 0.1]))
def test_clustered_paired_matches_statsmodels_ttest_and_formula(
    samples: tuple[list[Any], list[Any]], margin: float, alpha: float
) -> None:
    from statsmodels.stats.weightstats import DescrStatsW

    cand, prod = samples
    r = clustered_paired_noninferiority(cand, prod, margin=margin, alpha=alpha)
    mean, se, lower = literal(cand, prod, margin, alpha)
    assert r.difference == pytest.approx(mean, abs=1e-12)
    assert r.standard_error == pytest.approx(se, abs=1e-12)
    assert r.lower_bound == pytest.approx(lower, abs=1e-9)
    if se > 0:
        d = np.array([np.mean(c) - np.mean(p) for c, p in zip(cand, prod, strict=True)])
        ds = DescrStatsW(d)
        _, p_value, _ = ds.ttest_mean(-margin, alternative="larger")
        low, _ = ds.tconfint_mean(alpha=2 * alpha)
        assert r.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-12)
        assert r.lower_bound == pytest.approx(low, rel=1e-9, abs=1e-12)


@pytest.mark.spec("eq-clustered-paired", kind="parity")
# The intercept's sandwich variance can round to a tiny negative number; only the slope is read.
@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")
@given(prompt_samples(equal=True))
def test_clustered_paired_se_is_cluster_robust_ols(samples: tuple[list[Any], list[Any]]) -> None:
    import statsmodels.api as sm

    cand, prod = np.array(samples[0]), np.array(samples[1])
    m, k = cand.shape
    r = clustered_paired_noninferiority(cand, prod, margin=0.1)
    y = np.concatenate([cand.ravel(), prod.ravel()]).astype(float)
    x = sm.add_constant(np.r_[np.ones(m * k), np.zeros(m * k)])
    groups = np.tile(np.repeat(np.arange(m), k), 2)
    if np.ptp(y) == 0 or r.standard_error == 0:
        return  # no spread between prompts: statsmodels' sandwich is 0 or NaN there
    fit = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": groups})
    n = 2 * m * k
    assert fit.params[1] == pytest.approx(r.difference, abs=1e-12)
    # statsmodels' small-sample factor is G/(G-1) (N-1)/(N-K) with K = 2; ours G/(G-1).
    assert fit.bse[1] ** 2 == pytest.approx(r.standard_error**2 * (n - 1) / (n - 2), abs=1e-12)


@pytest.mark.spec("eq-clustered-paired", kind="parity")
def test_clustered_paired_worked_example() -> None:
    cand = [[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1]]
    prod = [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1], [1, 1, 0, 1]]
    r = clustered_paired_noninferiority(cand, prod, margin=0.2)
    # d = (-0.25, 0, 0, 0, 0): mean -0.05, sd sqrt(0.05^2*4 + 0.2^2)/2 = sqrt(0.05)/2 / ... :
    d = np.array([-0.25, 0.0, 0.0, 0.0, 0.0])
    se = d.std(ddof=1) / math.sqrt(5)
    assert se == pytest.approx(0.05)
    assert r.difference == pytest.approx(-0.05)
    assert r.standard_error == pytest.approx(0.05)
    # T = (-0.05 + 0.2) / 0.05 = 3 on 4 df: p = 0.0200; lower = -0.05 - 2.1318 * 0.05.
    assert r.p_value == pytest.approx(0.019970, abs=1e-6)
    assert r.lower_bound == pytest.approx(-0.05 - 2.131847 * 0.05, abs=1e-6)
    assert r.passed
    assert (r.candidate_rate, r.production_rate) == (0.75, 0.8)


@pytest.mark.spec("eq-clustered-paired", kind="parity")
@given(st.integers(2, 200), st.data())
def test_clustered_paired_one_sample_reduces_to_paired(n: int, data: st.DataObject) -> None:
    cand = data.draw(hnp.arrays(np.bool_, (n,)))
    prod = data.draw(hnp.arrays(np.bool_, (n,)))
    r = clustered_paired_noninferiority(cand[:, None], prod[:, None], margin=0.05)
    tango = paired_noninferiority(cand, prod, margin=0.05)
    b, c = tango.candidate_only, tango.production_only
    assert r.difference == pytest.approx(tango.difference, abs=1e-12)
    wald = ((b + c) / n - tango.difference**2) / n
    assert r.standard_error**2 * (n - 1) / n == pytest.approx(wald, abs=1e-12)


# ---------------------------------------------------------------- properties


@pytest.mark.spec("eq-clustered-paired", kind="property")
@given(prompt_samples(), st.floats(0.0, 0.5), st.floats(0.01, 0.3))
def test_clustered_paired_verdict_matches_bound(
    samples: tuple[list[Any], list[Any]], margin: float, alpha: float
) -> None:
    r = clustered_paired_noninferiority(*samples, margin=margin, alpha=alpha)
    assert r.lower_bound <= r.difference + 1e-12
    assert r.passed == (r.p_value <= alpha)
    if r.standard_error > 0 and abs(r.lower_bound + margin) > 1e-9:
        assert r.passed == (r.lower_bound > -margin)


@pytest.mark.spec("eq-clustered-paired", kind="property")
@given(prompt_samples(), st.floats(0.0, 0.4), st.floats(0.01, 0.2))
def test_clustered_paired_p_value_decreases_with_margin(
    samples: tuple[list[Any], list[Any]], margin: float, extra: float
) -> None:
    tight = clustered_paired_noninferiority(*samples, margin=margin)
    loose = clustered_paired_noninferiority(*samples, margin=margin + extra)
    assert loose.p_value <= tight.p_value
    assert loose.lower_bound == tight.lower_bound


@pytest.mark.spec("eq-clustered-paired", kind="property")
@given(prompt_samples())
def test_clustered_paired_swap_negates_difference(samples: tuple[list[Any], list[Any]]) -> None:
    cand, prod = samples
    ab = clustered_paired_noninferiority(cand, prod, margin=0.0)
    ba = clustered_paired_noninferiority(prod, cand, margin=0.0)
    assert ab.difference == pytest.approx(-ba.difference, abs=1e-12)
    assert ab.standard_error == pytest.approx(ba.standard_error, abs=1e-12)


@pytest.mark.spec("eq-clustered-paired", kind="property")
@given(prompt_samples(), st.randoms(use_true_random=False))
def test_clustered_paired_invariant_to_prompt_and_sample_order(
    samples: tuple[list[Any], list[Any]], rnd: Any
) -> None:
    cand, prod = samples
    order = list(range(len(cand)))
    rnd.shuffle(order)
    shuffled_c = [rnd.sample(cand[i], len(cand[i])) for i in order]
    shuffled_p = [rnd.sample(prod[i], len(prod[i])) for i in order]
    a = clustered_paired_noninferiority(cand, prod, margin=0.1)
    b = clustered_paired_noninferiority(shuffled_c, shuffled_p, margin=0.1)
    assert b.difference == pytest.approx(a.difference, abs=1e-12)
    assert b.p_value == pytest.approx(a.p_value, abs=1e-12)


@pytest.mark.spec("eq-clustered-paired", kind="property")
@given(prompt_samples(), st.data())
def test_clustered_paired_monotone_in_candidate_passes(
    samples: tuple[list[Any], list[Any]], data: st.DataObject
) -> None:
    cand, prod = samples
    fails = [(i, j) for i, c in enumerate(cand) for j, v in enumerate(c) if v == 0]
    if not fails:
        return
    i, j = data.draw(st.sampled_from(fails))
    better = [list(c) for c in cand]
    better[i][j] = 1
    a = clustered_paired_noninferiority(cand, prod, margin=0.1)
    b = clustered_paired_noninferiority(better, prod, margin=0.1)
    assert b.difference > a.difference


def _rejection_rate(rng: np.random.Generator, reps: int, clustered: bool) -> float:
    """Share of rejections at the null boundary: the candidate is `margin` worse on average.

    The candidate's change differs by prompt (on half of the prompts it is 0.3
    better than the average change, on the other half 0.3 worse), so samples of
    one prompt share its effect; 40 prompts, 5 samples each at temperature > 0.
    """
    margin, m, k, spread = 0.1, 40, 5, 0.3
    rejected = 0
    for _ in range(reps):
        p_prod = rng.uniform(0.45, 0.75, m)
        effect = -margin + spread * rng.choice([-1.0, 1.0], m)
        cand = rng.random((m, k)) < (p_prod + effect)[:, None]
        prod = rng.random((m, k)) < p_prod[:, None]
        if clustered:
            r = clustered_paired_noninferiority(cand, prod, margin=margin)
            rejected += r.passed
        else:  # every sample its own pair: the wrong independence assumption
            rejected += paired_noninferiority(cand.ravel(), prod.ravel(), margin=margin).passed
    return rejected / reps


@pytest.mark.spec("eq-clustered-paired", kind="property")
def test_clustered_paired_size_at_the_margin() -> None:
    rate = _rejection_rate(np.random.default_rng(20261202), reps=2000, clustered=True)
    # alpha = 0.05; 2000 replications: binomial standard error 0.005.
    assert 0.03 <= rate <= 0.065


@pytest.mark.spec("eq-clustered-paired", kind="property")
def test_samples_as_independent_pairs_inflate_false_passes() -> None:
    rate = _rejection_rate(np.random.default_rng(3), reps=1000, clustered=False)
    assert rate > 0.08  # why prompts, not samples, are the units


# ---------------------------------------------------------------- errors


@pytest.mark.spec("eq-clustered-paired", kind="errors")
@pytest.mark.parametrize(
    ("cand", "prod", "kwargs", "message"),
    [
        ([[1, 0]], [[1, 1]], {}, "at least 2 prompts"),
        ([[1], [0]], [[1], [0], [1]], {}, "differ in prompts: 2 != 3"),
        ([[1], []], [[1], [0]], {}, r"candidate_passes\[1\] must be a non-empty"),
        ([[1], [2]], [[1], [0]], {}, r"candidate_passes\[1\] must hold only 0/1"),
        (np.array([[1, 0], [0, 5]]), np.ones((2, 2)), {}, "candidate_passes must hold only 0/1"),
        ([], [], {}, "non-empty sequence"),
        ([[1], [0]], [[1], [0]], {"margin": 1.0}, "margin"),
        ([[1], [0]], [[1], [0]], {"margin": -0.1}, "margin"),
        ([[1], [0]], [[1], [0]], {"margin": 0.1, "alpha": 0.0}, "alpha"),
    ],
)
def test_clustered_paired_rejects_bad_input(
    cand: Any, prod: Any, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"margin": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        clustered_paired_noninferiority(cand, prod, **kwargs)
