"""Statistics for release decisions: anytime-valid canary judging, intervals, paired tests, drift.

Everything here is NumPy plus SciPy special functions and distributions; the module
imports nothing else from ``release_spec`` so it can be copied alone.

The canary judge (:class:`SequentialErrorRateTest`, eq-sequential) may be consulted after
every batch of traffic without inflating its false-rejection rate: it is built on a
nonnegative supermartingale and Ville's inequality instead of a fixed-level test repeated
at every look (which :func:`two_proportion_z_test`, eq-two-proportion-z, is kept for, to
show the problem).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

__all__ = [
    "SequentialErrorRateTest",
    "sequential_log_evidence",
    "two_proportion_z_test",
]

FloatArray = NDArray[np.float64]


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a finite number in (0, 1), got {alpha!r}")
    return float(alpha)


def _counts(name: str, value: ArrayLike) -> FloatArray:
    """Validate a count (or array of counts): finite, nonnegative, whole numbers."""
    raw = np.asarray(value)
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a number, got {value!r}")
    arr = raw.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be nonnegative, got {value!r}")
    if np.any(arr != np.floor(arr)):
        raise ValueError(f"{name} must be whole numbers, got {value!r}")
    return arr


def _errors_and_requests(
    prefix: str, errors: ArrayLike, requests: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    e = _counts(f"{prefix}_errors", errors)
    n = _counts(f"{prefix}_requests", requests)
    if np.any(e > n):
        raise ValueError(f"{prefix}_errors exceed {prefix}_requests: {errors!r} > {requests!r}")
    return e, n


def _scalar_count(name: str, value: object) -> float:
    """Fast scalar form of :func:`_counts` for the per-look path."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if v < 0:
        raise ValueError(f"{name} must be nonnegative, got {value!r}")
    if v != math.floor(v):
        raise ValueError(f"{name} must be whole numbers, got {value!r}")
    return v


# --8<-- [start:sequential_log_evidence]
def _odds_ratio_prior(prior_scale: float, grid_size: int) -> tuple[FloatArray, FloatArray]:
    """Discrete half-normal prior on the log odds ratio u = log(theta) >= 0.

    The grid *is* the prior (its weights sum to one), so no quadrature error can touch
    validity: a mixture of martingales with any fixed weights is a martingale.
    """
    if not (math.isfinite(prior_scale) and prior_scale > 0):
        raise ValueError(f"prior_scale must be a positive finite number, got {prior_scale!r}")
    if grid_size < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size!r}")
    u = np.linspace(0.0, 6.0 * prior_scale, grid_size)
    log_w = -0.5 * (u / prior_scale) ** 2
    log_w -= special.logsumexp(log_w)
    return u, log_w


def sequential_log_evidence(
    canary_errors: ArrayLike,
    canary_requests: ArrayLike,
    baseline_errors: ArrayLike,
    baseline_requests: ArrayLike,
    *,
    prior_scale: float = 1.0,
    grid_size: int = 64,
) -> FloatArray:
    r"""Log of the mixture martingale after each look, for many rollouts at once.

    Each argument holds the counts *per look* (not cumulative), shape ``(..., looks)``;
    leading axes are independent rollouts. With $\rho_i$ the canary's share of the
    requests in look $i$, $x_i$ the canary's errors and $n_i$ all errors in it,

    $$
    M_k = \sum_j w_j \prod_{i \le k}
          \frac{\theta_j^{\,x_i}}{\bigl(1 + \rho_i(\theta_j - 1)\bigr)^{n_i}},
    \qquad \theta_j = e^{u_j},\; u_j \ge 0,\; \sum_j w_j = 1 .
    $$

    See :class:`SequentialErrorRateTest` for why $M_k$ is a test supermartingale.

    Spec: eq-sequential

    Matches: :class:`SequentialErrorRateTest` (its ``log_evidence`` after each update).

    References:
        Johari, Koomen, Pekelis, Walsh, "Peeking at A/B Tests", KDD 2017.
        Lindon, Sanden, Shirikian, "Rapid Regression Detection in Software Deployments
        through Sequential Testing", KDD 2022, arXiv:2205.14762.

    Args:
        canary_errors: canary errors in each look.
        canary_requests: canary requests in each look.
        baseline_errors: baseline errors in each look.
        baseline_requests: baseline requests in each look.
        prior_scale: standard deviation $\tau$ of the half-normal prior on $\log\theta$.
        grid_size: number of prior atoms $u_j$, evenly spaced on $[0, 6\tau]$.

    Returns:
        $\log M_k$ for every look, same shape as the inputs (broadcast).

    Raises:
        ValueError: negative, non-finite or fractional counts, errors above requests.

    Example:
        >>> log_m = sequential_log_evidence([3, 9], [100, 100], [20, 20], [1900, 1900])
        >>> np.round(log_m, 3)
        array([0.697, 8.092])
    """
    x, m_c = _errors_and_requests("canary", canary_errors, canary_requests)
    y, m_b = _errors_and_requests("baseline", baseline_errors, baseline_requests)
    x, m_c, y, m_b = np.broadcast_arrays(x, m_c, y, m_b)
    u, log_w = _odds_ratio_prior(float(prior_scale), int(grid_size))
    expm1_u = np.expm1(u)
    total = m_c + m_b
    # A look without traffic carries no information; its share is irrelevant (n_i = 0).
    rho = np.divide(m_c, total, out=np.zeros_like(m_c), where=total > 0)
    n = x + y
    log_m = np.empty(x.shape, dtype=np.float64)
    s = np.zeros((*x.shape[:-1], u.size), dtype=np.float64) + log_w
    for i in range(x.shape[-1]):
        s += x[..., i, None] * u - n[..., i, None] * np.log1p(rho[..., i, None] * expm1_u)
        log_m[..., i] = special.logsumexp(s, axis=-1)
    return log_m


# --8<-- [end:sequential_log_evidence]


# --8<-- [start:sequentialerrorratetest]
class SequentialErrorRateTest:
    r"""Anytime-valid one-sided test that the canary's error rate exceeds the baseline's.

    Condition on the errors. In look $i$ the canary receives a share
    $\rho_i = m_{c,i} / (m_{c,i} + m_{b,i})$ of the requests. If the canary's error rate
    is $\theta$ times the baseline's (Poisson counts), each error is the canary's with
    probability $\rho_i\theta / (\rho_i\theta + 1 - \rho_i)$; under "no regression"
    ($\theta = 1$) that probability is $\rho_i$. The likelihood ratio of look $i$'s
    $x_i$ canary errors among $n_i$ errors, $\theta$ against 1, is
    $\theta^{x_i} / (1 + \rho_i(\theta - 1))^{n_i}$. Mixing over $\theta \ge 1$ with a
    fixed prior $w$ (a discrete half-normal on $\log\theta$, all mass on the
    canary-worse side) gives

    $$
    M_k = \sum_j w_j \prod_{i \le k}
          \frac{\theta_j^{\,x_i}}{\bigl(1 + \rho_i(\theta_j - 1)\bigr)^{n_i}},
    \qquad
    p_k = \min\Bigl(1, \frac{1}{\max_{i \le k} M_i}\Bigr),
    $$

    and the test rejects at the first $k$ with $p_k \le \alpha$.

    Why it is valid at every look: for each fixed $\theta \ge 1$ the factor has
    conditional expectation $\le 1$ given the past, the look's request counts and
    $n_i$, so each product and their mixture $M_k$ are nonnegative supermartingales
    with $M_0 = 1$, and Ville's inequality gives
    $P(\exists k: M_k \ge 1/\alpha) \le \alpha$. The share $\rho_i$ may change between
    looks (even as a function of earlier data); it only has to be fixed before the
    look's errors are seen.

    * Poisson errors, equal rates: $x_i \mid n_i \sim \mathrm{Binomial}(n_i, \rho_i)$ and
      the expectation is exactly 1 (a martingale, the mixture SPRT of Johari et al. on
      the binomial "which arm erred" likelihood as in Lindon et al.).
    * Bernoulli requests, equal rates (the exact model for an error per request, any
      rate): the $n_i$ errors fall on a uniformly random subset of the look's requests,
      so $x_i \mid n_i$ is hypergeometric. $\theta^{x}$ is convex in $x$ and sampling
      without replacement is smaller in convex order than with replacement (Hoeffding
      1963, Thm. 4), so $E[\theta^{x_i}] \le (1 + \rho_i(\theta-1))^{n_i}$: the factor is
      a supermartingale, the test stays valid and is slightly conservative when error
      rates are large.
    * Canary better than baseline (odds ratio $\psi \le 1$): $x_i \mid n_i$ is Fisher's
      noncentral hypergeometric, stochastically smaller than at $\psi = 1$, and
      $\theta^x$ increases in $x$, so the bound still holds: the null is the composite
      "canary not worse".

    Spec: eq-sequential

    Matches: :func:`sequential_log_evidence` (the vectorised form used in simulations);
    with a constant share, the Beta-mixture form of the same likelihood.

    References:
        Johari, Koomen, Pekelis, Walsh, "Peeking at A/B Tests: Why it Matters, and What
        to Do About It", KDD 2017 (mixture SPRT, always-valid p-values).
        Lindon, Sanden, Shirikian, "Rapid Regression Detection in Software Deployments
        through Sequential Testing", KDD 2022, arXiv:2205.14762.
        Ville, "Étude critique de la notion de collectif", 1939 (Ville's inequality).
        Hoeffding, "Probability inequalities for sums of bounded random variables",
        JASA 1963, Theorem 4.

    Args:
        alpha: false-rejection rate guaranteed over any number of looks, in (0, 1).
        prior_scale: standard deviation $\tau$ of the half-normal prior on
            $\log\theta$; the default 1 puts most mass on odds ratios 1 to 7.
        grid_size: number of prior atoms, evenly spaced on $[0, 6\tau]$.

    Raises:
        ValueError: alpha outside (0, 1), bad prior settings, bad counts in ``update``.

    Example:
        >>> test = SequentialErrorRateTest(alpha=0.05)
        >>> test.update(canary_errors=3, canary_requests=100,
        ...             baseline_errors=20, baseline_requests=1900)
        >>> test.decision, round(test.p_value, 3)
        ('continue', 0.498)
        >>> test.update(canary_errors=9, canary_requests=100,
        ...             baseline_errors=20, baseline_requests=1900)
        >>> test.decision, round(test.p_value, 4)
        ('reject', 0.0003)
    """

    def __init__(
        self, alpha: float = 0.05, *, prior_scale: float = 1.0, grid_size: int = 64
    ) -> None:
        self.alpha = _check_alpha(alpha)
        self._u, log_w = _odds_ratio_prior(float(prior_scale), int(grid_size))
        self._expm1_u = np.expm1(self._u)
        self._s = log_w.copy()
        self._log_m = 0.0
        self._max_log_m = 0.0
        self.looks = 0
        self.canary_requests = 0
        self.baseline_requests = 0

    def update(
        self,
        *,
        canary_errors: int,
        canary_requests: int,
        baseline_errors: int,
        baseline_requests: int,
    ) -> None:
        """Add the counts observed since the previous update (one look)."""
        x = _scalar_count("canary_errors", canary_errors)
        m_c = _scalar_count("canary_requests", canary_requests)
        y = _scalar_count("baseline_errors", baseline_errors)
        m_b = _scalar_count("baseline_requests", baseline_requests)
        if x > m_c:
            raise ValueError(f"canary_errors exceed canary_requests: {x} > {m_c}")
        if y > m_b:
            raise ValueError(f"baseline_errors exceed baseline_requests: {y} > {m_b}")
        self.looks += 1
        self.canary_requests += int(m_c)
        self.baseline_requests += int(m_b)
        n = x + y
        if n == 0:
            return
        rho = m_c / (m_c + m_b)
        s = self._s
        s += x * self._u
        s -= n * np.log1p(rho * self._expm1_u)
        top = float(s.max())
        self._log_m = top + math.log(float(np.exp(s - top).sum()))
        self._max_log_m = max(self._max_log_m, self._log_m)

    @property
    def log_evidence(self) -> float:
        r"""$\log M_k$ after the latest look (0 before any)."""
        return self._log_m

    @property
    def p_value(self) -> float:
        r"""Always-valid p-value $\min(1, 1/\max_{i \le k} M_i)$; never increases."""
        return min(1.0, math.exp(-self._max_log_m))

    @property
    def decision(self) -> Literal["continue", "reject"]:
        r"""``"reject"`` once $p_k \le \alpha$ (the canary errs more), else ``"continue"``."""
        return "reject" if self.p_value <= self.alpha else "continue"


# --8<-- [end:sequentialerrorratetest]


# --8<-- [start:two_proportion_z_test]
def two_proportion_z_test(
    canary_errors: ArrayLike,
    canary_requests: ArrayLike,
    baseline_errors: ArrayLike,
    baseline_requests: ArrayLike,
    *,
    alternative: Literal["larger", "two-sided"] = "larger",
) -> FloatArray:
    r"""Pooled two-proportion z-test: valid at one pre-planned look, not at every look.

    $$
    \hat p = \frac{x_c + x_b}{m_c + m_b},\qquad
    z = \frac{x_c/m_c - x_b/m_b}{\sqrt{\hat p(1-\hat p)(1/m_c + 1/m_b)}},\qquad
    p = 1 - \Phi(z)\ \text{(larger)}\ \text{or}\ 2(1 - \Phi(|z|)).
    $$

    Repeating it on the cumulative counts at every look and stopping at the first
    $p \le \alpha$ is the "naive" judge whose false-rejection rate exceeds $\alpha$.
    When no request erred (or all did) $z$ is undefined and the p-value is 1.

    Spec: eq-two-proportion-z

    Matches: ``statsmodels.stats.proportion.proportions_ztest(count, nobs,
    alternative="larger")`` with the canary first (pooled variance).

    References:
        Agresti, "Categorical Data Analysis", 3rd ed., 2013, Section 3.1.

    Args:
        canary_errors: canary errors (cumulative); arrays broadcast.
        canary_requests: canary requests, at least 1.
        baseline_errors: baseline errors.
        baseline_requests: baseline requests, at least 1.
        alternative: ``"larger"`` (canary errs more, the default) or ``"two-sided"``.

    Returns:
        The p-value(s), a NumPy array of the broadcast shape (0-d for scalars).

    Raises:
        ValueError: bad counts, zero requests in an arm, unknown alternative.

    Example:
        >>> float(np.round(two_proportion_z_test(12, 200, 40, 1800), 5))
        0.00072
    """
    x_c, m_c = _errors_and_requests("canary", canary_errors, canary_requests)
    x_b, m_b = _errors_and_requests("baseline", baseline_errors, baseline_requests)
    if np.any(m_c == 0) or np.any(m_b == 0):
        raise ValueError("canary_requests and baseline_requests must be at least 1")
    if alternative not in ("larger", "two-sided"):
        raise ValueError(f"alternative must be 'larger' or 'two-sided', got {alternative!r}")
    pooled = (x_c + x_b) / (m_c + m_b)
    var = pooled * (1.0 - pooled) * (1.0 / m_c + 1.0 / m_b)
    diff = x_c / m_c - x_b / m_b
    z = np.divide(diff, np.sqrt(var), out=np.zeros_like(var), where=var > 0)
    p = stats.norm.sf(z) if alternative == "larger" else 2.0 * stats.norm.sf(np.abs(z))
    return np.where(var > 0, p, 1.0)


# --8<-- [end:two_proportion_z_test]
