"""Simulate many canary rollouts at once: how often does a judge roll back, and how soon?

Every rollout is a sequence of *looks*. Before look ``i`` the canary's share
``rho_i`` is fixed (it may differ between looks and between rollouts); the look's
requests are routed at random with that share (what hashing request ids does
for a population of users), every request errs independently with its arm's
error rate, and the judge looks at the counts. Two judges see the same draws:

* ``sequential``: `release_spec.statistics.SequentialErrorRateTest`
  (through its vectorised form ``sequential_log_evidence``), anytime-valid;
* ``naive``: the one-sided two-proportion z-test on the cumulative counts,
  repeated at every look at level alpha, stopping at the first rejection.

Whole arrays of shape ``(runs, looks)`` are drawn and judged at once with NumPy,
so thousands of rollouts take seconds. A rollout's *exposure* is the number of
canary requests served until it was rolled back, or until its last look when it
never was.

Sizes are capped so that an absurd one is refused at once with a `ValueError`
naming the parameter and the cap, instead of ending in a `MemoryError`:
`MAX_RUNS` rollouts, `MAX_LOOKS` looks, `MAX_CELLS` rollouts x looks,
`MAX_LOOK_REQUESTS` requests in one look, `MAX_STEPS` share steps and
`MAX_BATCH_REQUESTS` requests per batch of `simulate_rollout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from release_spec.rollout import (
    Outcome,
    RolloutController,
    RolloutPlan,
    RolloutState,
    check_effect,
)
from release_spec.statistics import (
    fixed_horizon_sample_size,
    sequential_log_evidence,
    two_proportion_z_test,
)

__all__ = [
    "MAX_BATCH_REQUESTS",
    "MAX_CELLS",
    "MAX_LOOKS",
    "MAX_LOOK_REQUESTS",
    "MAX_RUNS",
    "MAX_STEPS",
    "Comparison",
    "JudgeRun",
    "Looks",
    "Simulation",
    "compare_judges",
    "draw_looks",
    "monte_carlo_bound",
    "random_share_schedule",
    "simulate",
    "simulate_rollout",
]

Method = Literal["sequential", "naive"]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

MAX_RUNS = 100_000
"""Most rollouts one call simulates (``runs``)."""

MAX_LOOKS = 100_000
"""Most looks per rollout (``looks``)."""

MAX_CELLS = 2**22
"""Most rollouts x looks in one call: every (runs, looks) array is then at most
32 MiB, and a whole `simulate` stays within a few hundred MiB."""

MAX_LOOK_REQUESTS = 2**40
"""Most requests in one look, ``canary_per_look / share`` (also caps ``canary_per_look``)."""

MAX_STEPS = 16
"""Most share steps per rollout in `random_share_schedule` (``max_steps``)."""

MAX_BATCH_REQUESTS = 2**20
"""Most requests per batch of `simulate_rollout` (``batch_requests``)."""


def _size(name: str, value: object, cap: int, cap_name: str) -> int:
    """A whole number (Python or NumPy, never a bool) in [1, cap], else a ValueError naming both."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    k = int(value)
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    if k > cap:
        raise ValueError(f"{name} must be at most {cap_name} = {cap}, got {k}")
    return k


def _cells(runs: int, looks: int) -> None:
    if runs * looks > MAX_CELLS:
        raise ValueError(
            f"runs x looks must be at most MAX_CELLS = {MAX_CELLS}, got {runs} x {looks}"
        )


def monte_carlo_bound(alpha: float, runs: int, k: float = 3.0) -> float:
    """alpha plus ``k`` binomial standard errors of a rate estimated from ``runs`` rollouts.

    >>> round(monte_carlo_bound(0.05, 2000), 4)
    0.0646
    """
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    return alpha + k * math.sqrt(alpha * (1 - alpha) / runs)


def random_share_schedule(
    rng: np.random.Generator,
    runs: int,
    looks: int,
    *,
    low: float = 0.01,
    high: float = 0.5,
    max_steps: int = 6,
) -> FloatArray:
    """A different piecewise-constant share schedule per rollout, shares in [low, high].

    Each rollout gets 1 to ``max_steps`` steps with random boundaries and shares
    drawn log-uniformly, in random order (shares may go down as well as up: the
    judge must not depend on the schedule).
    """
    if not (0 < low <= high < 1):
        raise ValueError(f"need 0 < low <= high < 1, got low={low}, high={high}")
    runs = _size("runs", runs, MAX_RUNS, "MAX_RUNS")
    looks = _size("looks", looks, MAX_LOOKS, "MAX_LOOKS")
    max_steps = _size("max_steps", max_steps, MAX_STEPS, "MAX_STEPS")
    _cells(runs, looks)
    n_steps = rng.integers(1, max_steps + 1, size=runs)
    shares = np.exp(rng.uniform(math.log(low), math.log(high), size=(runs, max_steps)))
    # Step boundaries: sorted uniform cut points; the step of look i is how many cuts precede it.
    cuts = np.sort(rng.integers(1, max(looks, 2), size=(runs, max_steps - 1)), axis=1)
    cuts = np.where(np.arange(max_steps - 1) < (n_steps - 1)[:, None], cuts, looks)
    step_of_look = (np.arange(looks)[None, :, None] >= cuts[:, None, :]).sum(axis=2)
    out: FloatArray = np.take_along_axis(shares, step_of_look, axis=1)
    return out


@dataclass(frozen=True)
class Looks:
    """Per-look counts of a batch of simulated rollouts, each of shape ``(runs, looks)``."""

    canary_requests: IntArray
    canary_errors: IntArray
    baseline_requests: IntArray
    baseline_errors: IntArray


def draw_looks(
    rng: np.random.Generator,
    shares: FloatArray,
    *,
    baseline_error: float,
    canary_error: float,
    canary_per_look: int,
) -> Looks:
    """Draw the counts of every look of every rollout.

    A look holds ``round(canary_per_look / rho)`` requests, so the canary
    gets about ``canary_per_look`` of them whatever its share; each request
    goes to the canary with probability ``rho`` and errs with its arm's rate.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim != 2:
        raise ValueError(f"shares must have shape (runs, looks), got {shares.shape}")
    if np.any(~np.isfinite(shares)) or np.any(shares <= 0) or np.any(shares >= 1):
        raise ValueError("shares must lie in (0, 1)")
    for name, p in (("baseline_error", baseline_error), ("canary_error", canary_error)):
        if not (0 <= p <= 1):
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    if shares.size > MAX_CELLS:
        raise ValueError(f"shares must have at most MAX_CELLS = {MAX_CELLS} looks in all")
    per_look = _size("canary_per_look", canary_per_look, MAX_LOOK_REQUESTS, "MAX_LOOK_REQUESTS")
    if per_look / shares.min() > MAX_LOOK_REQUESTS:
        raise ValueError(
            f"canary_per_look / share must be at most MAX_LOOK_REQUESTS = {MAX_LOOK_REQUESTS} "
            f"requests per look, got {per_look} / {shares.min():g}"
        )
    total = np.maximum(np.rint(canary_per_look / shares), 1).astype(np.int64)
    m_c = rng.binomial(total, shares)
    m_b = total - m_c
    return Looks(m_c, rng.binomial(m_c, canary_error), m_b, rng.binomial(m_b, baseline_error))


@dataclass(frozen=True)
class JudgeRun:
    """What one judge did on a batch of simulated rollouts.

    ``rejected_at`` is the index of the look that rolled each rollout back (-1 if
    none); ``exposure`` the canary requests served until then (until the last
    look if never).
    """

    method: Method
    alpha: float
    rejected_at: IntArray = field(repr=False, compare=False)
    exposure: IntArray = field(repr=False, compare=False)

    @property
    def runs(self) -> int:
        """Number of simulated rollouts."""
        return int(self.rejected_at.size)

    @property
    def rollback_rate(self) -> float:
        """Fraction of rollouts rolled back at some look."""
        return float(np.mean(self.rejected_at >= 0))

    @property
    def median_exposure(self) -> float:
        """Median canary requests served per rollout (rolled back or not)."""
        return float(np.median(self.exposure))

    def rolled_back_within(self, canary_requests: int) -> float:
        """Fraction of rollouts rolled back by ``canary_requests`` canary requests served."""
        return float(np.mean((self.rejected_at >= 0) & (self.exposure <= canary_requests)))


def _first_true(mask: NDArray[np.bool_]) -> IntArray:
    hit = mask.any(axis=-1)
    first = np.argmax(mask, axis=-1)
    out: IntArray = np.where(hit, first, -1).astype(np.int64)
    return out


def _judge(method: Method, looks: Looks, alpha: float) -> JudgeRun:
    cum_c = np.cumsum(looks.canary_requests, axis=-1)
    if method == "sequential":
        log_m = sequential_log_evidence(
            looks.canary_errors,
            looks.canary_requests,
            looks.baseline_errors,
            looks.baseline_requests,
        )
        # Exactly SequentialErrorRateTest.p_value after each look.
        p = np.minimum(1.0, np.exp(-np.maximum.accumulate(np.maximum(log_m, 0.0), axis=-1)))
    else:
        c_b = np.cumsum(looks.baseline_requests, axis=-1)
        # The z-test needs both arms non-empty; before that a look cannot reject.
        ok = (cum_c > 0) & (c_b > 0)
        p = np.where(
            ok,
            two_proportion_z_test(
                np.cumsum(looks.canary_errors, axis=-1),
                np.maximum(cum_c, 1),
                np.cumsum(looks.baseline_errors, axis=-1),
                np.maximum(c_b, 1),
            ),
            1.0,
        )
    rejected_at = _first_true(p <= alpha)
    last = cum_c[..., -1]
    exposure = np.where(
        rejected_at >= 0,
        np.take_along_axis(cum_c, np.maximum(rejected_at, 0)[:, None], 1)[:, 0],
        last,
    )
    return JudgeRun(method, alpha, rejected_at, exposure.astype(np.int64))


@dataclass(frozen=True)
class Simulation:
    """Both judges on the same simulated rollouts."""

    baseline_error: float
    canary_error: float
    canary_per_look: int
    looks: int
    sequential: JudgeRun
    naive: JudgeRun

    @property
    def max_canary_requests(self) -> int:
        """About how many canary requests a rollout serves if it is never rolled back."""
        return self.canary_per_look * self.looks


def simulate(
    *,
    runs: int,
    baseline_error: float,
    canary_error: float,
    shares: float | FloatArray,
    canary_per_look: int,
    looks: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> Simulation:
    """Simulate ``runs`` rollouts and judge each with both judges.

    Args:
        runs: number of rollouts.
        baseline_error: error rate of the production model.
        canary_error: error rate of the candidate (equal for the no-regression case).
        shares: the canary's share in (0, 1): a constant, one schedule of shape
            ``(looks,)`` shared by all rollouts, or ``(runs, looks)``.
        canary_per_look: expected canary requests between two looks.
        looks: number of looks (needed when ``shares`` is a constant).
        alpha: level of both judges.
        seed: seed of the NumPy generator.

    Example:
        >>> sim = simulate(runs=200, baseline_error=0.02, canary_error=0.04, shares=0.05,
        ...                canary_per_look=50, looks=60, seed=1)
        >>> sim.sequential.rolled_back_within(2500) > 0.9
        True
    """
    runs = _size("runs", runs, MAX_RUNS, "MAX_RUNS")
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arr = np.asarray(shares, dtype=np.float64)
    if looks is not None:
        looks = _size("looks", looks, MAX_LOOKS, "MAX_LOOKS")
    if arr.ndim == 0:
        if looks is None:
            raise ValueError("looks must be >= 1 when shares is a constant")
        _cells(runs, looks)
        arr = np.full((runs, looks), float(arr))
    elif arr.ndim == 1:
        _cells(runs, arr.size)
        arr = np.broadcast_to(arr, (runs, arr.size))
    elif arr.shape[0] != runs:
        raise ValueError(f"shares has {arr.shape[0]} rows for {runs} runs")
    if looks is not None and arr.shape[1] != looks:
        raise ValueError(f"shares has {arr.shape[1]} looks, expected {looks}")
    rng = np.random.default_rng(seed)
    drawn = draw_looks(
        rng,
        arr,
        baseline_error=baseline_error,
        canary_error=canary_error,
        canary_per_look=canary_per_look,
    )
    return Simulation(
        baseline_error=baseline_error,
        canary_error=canary_error,
        canary_per_look=canary_per_look,
        looks=int(arr.shape[1]),
        sequential=_judge("sequential", drawn, alpha),
        naive=_judge("naive", drawn, alpha),
    )


def simulate_rollout(
    plan: RolloutPlan,
    *,
    baseline_error: float,
    canary_error: float,
    batch_requests: int = 2_000,
    max_requests: int = 2_000_000,
    latency_ms: float = 20.0,
    seed: int = 0,
) -> RolloutState:
    """Drive one `RolloutController` request by request.

    Request ids ``r0, r1, ...`` are routed by the controller's hash; each request
    errs with its arm's rate and takes an exponentially distributed latency with
    mean ``latency_ms``. After every batch the controller looks, and a pending
    promotion is applied at once. Stops when the rollout is aborted or complete,
    or after ``max_requests`` (a holding step may never decide).

    Example:
        >>> from release_spec.rollout import default_rollout_plan
        >>> s = simulate_rollout(default_rollout_plan(), baseline_error=0.02, canary_error=0.06)
        >>> s.status, s.production, s.canary_share
        ('aborted', 'production', 0.0)
    """
    for name, p in (("baseline_error", baseline_error), ("canary_error", canary_error)):
        if not (0 <= p <= 1):
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    batch_requests = _size(
        "batch_requests", batch_requests, MAX_BATCH_REQUESTS, "MAX_BATCH_REQUESTS"
    )
    max_requests = _size("max_requests", max_requests, 2**62, "2**62")
    rng = np.random.default_rng(seed)
    ctl = RolloutController(plan, production="production")
    ctl.start("candidate")
    n = 0
    while ctl.state.status not in ("aborted", "completed") and n < max_requests:
        arms = [ctl.route(f"r{i}") for i in range(n, n + batch_requests)]
        u = rng.random(batch_requests)
        lat = rng.exponential(latency_ms, batch_requests)
        ctl.observe(
            Outcome(a, bool(x < (canary_error if a == "canary" else baseline_error)), float(t))
            for a, x, t in zip(arms, u, lat, strict=True)
        )
        ctl.promote()
        n += batch_requests
    return ctl.state


@dataclass(frozen=True)
class Comparison:
    """Both judges with and without a regression, and the fixed-horizon yardstick."""

    alpha: float
    share: float
    null: Simulation
    regression: Simulation
    fixed_horizon: int

    def lines(self, within: int = 2500) -> list[str]:
        """A plain-text table for the command line.

        Detection is reported twice: rolled back at any look, and rolled back
        with at most ``within`` canary requests served.
        """
        n = self.null.sequential.runs
        r = self.regression
        head = (
            f"{n} rollouts per case; canary share {self.share:g}; a look every "
            f"~{r.canary_per_look} canary requests, {r.looks} looks "
            f"(~{r.max_canary_requests} canary requests); alpha {self.alpha:g}"
        )
        out = [
            head,
            f"no regression: error rate {self.null.baseline_error:g} on both arms",
            f"regression: {r.baseline_error:g} -> {r.canary_error:g}",
            "",
            f"{'judge':<12}{'false rollbacks':>17}{'detection':>11}"
            f"{f'by {within}':>10}{'median exposure':>17}",
        ]
        for method in ("sequential", "naive"):
            fp: JudgeRun = getattr(self.null, method)
            tp: JudgeRun = getattr(r, method)
            out.append(
                f"{method:<12}{fp.rollback_rate:>17.4f}{tp.rollback_rate:>11.4f}"
                f"{tp.rolled_back_within(within):>10.4f}{tp.median_exposure:>17.0f}"
            )
        out += [
            "",
            f"false-rollback bound alpha + 3 s.e.: {monte_carlo_bound(self.alpha, n):.4f}",
            f"fixed-horizon canary requests at 80% power (two-sided): {self.fixed_horizon}",
        ]
        return out


def compare_judges(
    *,
    runs: int = 2000,
    baseline_error: float = 0.02,
    regression: float = 0.02,
    share: float = 0.05,
    canary_per_look: int = 25,
    looks: int = 400,
    alpha: float = 0.05,
    seed: int = 0,
) -> Comparison:
    """Simulate both judges without and with a regression of ``regression``.

    Detection is the fraction of regressed rollouts rolled back within the
    ``looks``; exposure is the canary requests served until then (see
    `JudgeRun`).

    Example:
        >>> c = compare_judges(runs=300, looks=100, seed=2)
        >>> c.fixed_horizon, c.null.sequential.rollback_rate <= 0.05 < c.null.naive.rollback_rate
        (774, True)
    """
    if not (0 < share < 1):
        raise ValueError(f"share must be in (0, 1), got {share}")
    check_effect(baseline_error, regression)

    def run(canary_error: float, seed_offset: int) -> Simulation:
        return simulate(
            runs=runs,
            baseline_error=baseline_error,
            canary_error=canary_error,
            shares=share,
            canary_per_look=canary_per_look,
            looks=looks,
            alpha=alpha,
            seed=seed + seed_offset,
        )

    null, bad = run(baseline_error, 0), run(baseline_error + regression, 1)
    fixed = fixed_horizon_sample_size(
        baseline_error, baseline_error + regression, alpha=alpha, power=0.8, share=share
    )
    return Comparison(alpha, share, null, bad, fixed.canary_requests)
