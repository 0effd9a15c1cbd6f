"""Spec tests for release_spec.optimizers: eq-gd, eq-momentum and eq-adam.

Three-way agreement per rule, over many steps:
- ours in float64 == the update written out below with plain Python loops,
  to ~1e-12 (only float64 rounding separates them);
- ours in float32 == Keras 3's optimizer on a float32 ``keras.Variable``.
  Keras keeps the learning rate in a float32 variable and casts the betas and
  momentum to float32, so both sides get the float32-rounded hyperparameters
  (``f32(x) = float(np.float32(x))``); what remains is float32 rounding of each
  operation (u = 2**-24), bounded in ``float32_tolerance``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from release_spec.optimizers import (
    AdamState,
    adam_init,
    adam_step,
    gradient_descent_step,
    momentum_init,
    momentum_step,
)

ROOT = Path(__file__).resolve().parents[1]
U32 = 2.0**-24
KERAS_EXAMPLES = 15


def f32(x: float) -> float:
    return float(np.float32(x))


def keras_run(keras: Any, optimizer: Any, theta0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    var = keras.Variable(theta0.astype(np.float32))
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g.astype(np.float32)), var)])
    return np.asarray(var, dtype=np.float64)


def float32_tolerance(steps: int, trajectory: np.ndarray, step_bound: float) -> float:
    """Float32 rounding over ``steps`` updates: each step rounds the parameter
    (<= u |theta|) and computes the update with a few roundings, each relative
    to the largest quantity it involves (<= 8 u step_bound, the moments being
    averages of terms no larger than the gradients)."""
    scale = 1.0 + float(np.max(np.abs(trajectory)))
    return steps * (4 * U32 * scale + 64 * U32 * step_bound)


# ---------------------------------------------------------------- strategies

learning_rates = st.floats(1e-4, 0.5).map(f32)


@st.composite
def runs(draw: st.DrawFn, max_steps: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A float32-exact starting point (n,) and a gradient sequence (steps, n)."""
    n = draw(st.integers(1, 5))
    steps = draw(st.integers(1, max_steps))
    elems = st.floats(-10, 10, width=32)
    theta = draw(hnp.arrays(np.float32, (n,), elements=elems)).astype(np.float64)
    grads = draw(hnp.arrays(np.float32, (steps, n), elements=elems)).astype(np.float64)
    return theta, grads


def literal_gd(theta: np.ndarray, grads: np.ndarray, lr: float) -> list[float]:
    th = theta.tolist()
    for g in grads.tolist():
        th = [t - lr * gi for t, gi in zip(th, g, strict=True)]
    return th


def literal_momentum(
    theta: np.ndarray, grads: np.ndarray, lr: float, mu: float, nesterov: bool
) -> list[float]:
    th, vel = theta.tolist(), [0.0] * theta.size
    for g in grads.tolist():
        for i, gi in enumerate(g):
            vel[i] = mu * vel[i] - lr * gi
            th[i] = th[i] + (mu * vel[i] - lr * gi if nesterov else vel[i])
    return th


def literal_adam(
    theta: np.ndarray,
    grads: np.ndarray,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    form: str,
) -> list[float]:
    th, m, v = theta.tolist(), [0.0] * theta.size, [0.0] * theta.size
    for t, g in enumerate(grads.tolist(), start=1):
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            if form == "paper":  # Kingma & Ba 2015, Algorithm 1
                m_hat = m[i] / (1 - b1**t)
                v_hat = v[i] / (1 - b2**t)
                th[i] = th[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
            else:  # Keras: correction folded into the step, eps on the raw sqrt(v)
                alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                th[i] = th[i] - alpha * m[i] / (math.sqrt(v[i]) + eps)
    return th


def run_adam(theta: np.ndarray, grads: np.ndarray, **kw: Any) -> np.ndarray:
    state = adam_init(theta)
    for g in grads:
        theta, state = adam_step(theta, g, state, **kw)
    return theta


# ---------------------------------------------------------------- eq-gd


@pytest.mark.spec("eq-gd", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(runs(), learning_rates)
def test_gradient_descent_step_matches_keras_and_formula(
    keras: Any, run: tuple[np.ndarray, np.ndarray], lr: float
) -> None:
    theta0, grads = run
    ours64, ours32 = theta0.copy(), theta0.astype(np.float32)
    for g in grads:
        ours64 = gradient_descent_step(ours64, g, learning_rate=lr)
        ours32 = gradient_descent_step(ours32, g.astype(np.float32), learning_rate=lr)
    literal = literal_gd(theta0, grads, lr)
    theirs = keras_run(keras, keras.optimizers.SGD(learning_rate=lr), theta0, grads)
    np.testing.assert_allclose(ours64, literal, rtol=1e-13, atol=1e-13)
    assert ours32.dtype == np.float32
    tol = float32_tolerance(len(grads), np.asarray(literal), lr * 10)
    np.testing.assert_allclose(ours32, theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(ours32, literal, rtol=0, atol=tol)


@pytest.mark.spec("eq-gd", kind="parity")
def test_gradient_descent_step_worked_example() -> None:
    new = gradient_descent_step([1.0, -2.0], [0.5, -1.0], learning_rate=0.1)
    np.testing.assert_allclose(new, [0.95, -1.9], rtol=1e-15)


@st.composite
def quadratics(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    """(A, theta0, L): A symmetric positive definite with eigenvalues in [0.1, 10]
    and largest eigenvalue L; theta0 has a component >= 0.1 along every eigenvector."""
    n = draw(st.integers(1, 6))
    eig = np.array(draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    coords = np.array(draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)))
    signs = rng.choice([-1.0, 1.0], n)
    return (q * eig) @ q.T, q @ (coords * signs), float(eig.max())


def quadratic(a: np.ndarray, theta: np.ndarray) -> float:
    return 0.5 * float(theta @ a @ theta)


def gd_problems(fractions: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[Any, ...]]:
    """(A, theta0, lr) with lr a fraction of 2 / L, the stability limit of gradient descent."""
    return st.builds(lambda p, f: (p[0], p[1], f * 2.0 / p[2]), quadratics(), fractions)


@pytest.mark.spec("eq-gd", kind="property")
@given(gd_problems(st.floats(0.05, 0.95)))
def test_gradient_descent_step_decreases_convex_quadratic(
    problem: tuple[np.ndarray, np.ndarray, float],
) -> None:
    a, theta, lr = problem
    loss = quadratic(a, theta)
    for _ in range(25):
        theta = gradient_descent_step(theta, a @ theta, learning_rate=lr)
        new_loss = quadratic(a, theta)
        assert new_loss < loss or new_loss == loss == 0.0  # 0: landed on the minimum
        loss = new_loss


@pytest.mark.spec("eq-gd", kind="property")
@given(gd_problems(st.floats(1.05, 2.0)))
def test_gradient_descent_step_diverges_above_two_over_l(
    problem: tuple[np.ndarray, np.ndarray, float],
) -> None:
    a, theta, lr = problem
    start = quadratic(a, theta)
    for _ in range(100):
        theta = gradient_descent_step(theta, a @ theta, learning_rate=lr)
    # Along the top eigenvector each step multiplies by |1 - lr L| >= 1.1.
    assert quadratic(a, theta) > 1e4 * start


# ---------------------------------------------------------------- eq-momentum


@pytest.mark.spec("eq-momentum", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(runs(), learning_rates, st.floats(0.0, 1.0).map(f32), st.booleans())
def test_momentum_step_matches_keras_and_formula(
    keras: Any, run: tuple[np.ndarray, np.ndarray], lr: float, mu: float, nesterov: bool
) -> None:
    theta0, grads = run
    assume(mu > 0.0)  # Keras SGD without momentum is the eq-gd test
    ours64, ours32 = theta0.copy(), theta0.astype(np.float32)
    v64, v32 = momentum_init(ours64), momentum_init(ours32)
    for g in grads:
        kw = {"learning_rate": lr, "momentum": mu, "nesterov": nesterov}
        ours64, v64 = momentum_step(ours64, g, v64, **kw)
        ours32, v32 = momentum_step(ours32, g.astype(np.float32), v32, **kw)
    literal = literal_momentum(theta0, grads, lr, mu, nesterov)
    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=mu, nesterov=nesterov)
    theirs = keras_run(keras, optimizer, theta0, grads)
    np.testing.assert_allclose(ours64, literal, rtol=1e-12, atol=1e-12)
    assert ours32.dtype == v32.dtype == np.float32
    # The velocity sums up to `steps` gradient steps, so bound a step by that.
    tol = float32_tolerance(len(grads), np.asarray(literal), lr * 10 * len(grads))
    np.testing.assert_allclose(ours32, theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(ours32, literal, rtol=0, atol=tol)


@pytest.mark.spec("eq-momentum", kind="parity")
def test_momentum_step_worked_example() -> None:
    theta, v = momentum_step([1.0], [0.5], [0.0], learning_rate=0.1, momentum=0.9)
    np.testing.assert_allclose((theta[0], v[0]), (0.95, -0.05), rtol=1e-15)
    theta, v = momentum_step(theta, [0.5], v, learning_rate=0.1, momentum=0.9)
    np.testing.assert_allclose((theta[0], v[0]), (0.855, -0.095), rtol=1e-15)
    nesterov, _ = momentum_step([1.0], [0.5], [0.0], learning_rate=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(nesterov, [0.905], rtol=1e-15)


@pytest.mark.spec("eq-momentum", kind="property")
@given(runs(), learning_rates, st.booleans())
def test_momentum_step_zero_momentum_is_gradient_descent(
    run: tuple[np.ndarray, np.ndarray], lr: float, nesterov: bool
) -> None:
    theta, grads = run
    plain, velocity = theta, momentum_init(theta)
    for g in grads:
        theta, velocity = momentum_step(
            theta, g, velocity, learning_rate=lr, momentum=0.0, nesterov=nesterov
        )
        plain = gradient_descent_step(plain, g, learning_rate=lr)
        np.testing.assert_array_equal(theta, plain)
        np.testing.assert_array_equal(velocity, -lr * g)


@pytest.mark.spec("eq-momentum", kind="property")
@given(quadratics(), st.floats(0.05, 0.9), st.booleans())
def test_momentum_step_converges_on_convex_quadratic(
    problem: tuple[np.ndarray, np.ndarray, float], mu: float, nesterov: bool
) -> None:
    # Heavy ball and Nesterov converge on a quadratic for lr < 2(1 + mu)/L;
    # lr = 1/L sits well inside that region for every mu in [0, 1).
    a, theta, lipschitz = problem
    start = quadratic(a, theta)
    velocity = momentum_init(theta)
    for _ in range(300):
        theta, velocity = momentum_step(
            theta, a @ theta, velocity, learning_rate=1 / lipschitz, momentum=mu, nesterov=nesterov
        )
    # The slowest direction (lr lambda >= 0.01) contracts by <= 0.99 a step.
    assert quadratic(a, theta) < 1e-2 * start


# ---------------------------------------------------------------- eq-adam

# beta_2 >= 0.5: below that, v can shrink by orders of magnitude in one step
# and Keras's v + (g^2 - v)(1 - beta_2) cancels catastrophically against the
# paper's beta_2 v + (1 - beta_2) g^2, so no float64 tolerance would hold.
betas_1 = st.floats(0.0, 0.99).map(f32)
betas_2 = st.floats(0.5, 0.9999).map(f32)
epsilons = st.sampled_from([1e-7, 1e-8, 1e-4, 1e-2]).map(f32)


@dataclass(frozen=True)
class AdamRun:
    """A float32-exact run of gradients and Adam's float32-rounded hyperparameters."""

    theta0: np.ndarray
    grads: np.ndarray
    lr: float
    b1: float
    b2: float
    eps: float

    @property
    def kw(self) -> dict[str, float]:
        """The hyperparameters as `adam_step` (and Keras's Adam) name them."""
        return {"learning_rate": self.lr, "beta_1": self.b1, "beta_2": self.b2, "epsilon": self.eps}

    def literal(self, form: str) -> list[float]:
        return literal_adam(self.theta0, self.grads, self.lr, self.b1, self.b2, self.eps, form)

    def ours(self, dtype: type = np.float64, **kw: Any) -> np.ndarray:
        return run_adam(self.theta0.astype(dtype), self.grads.astype(dtype), **self.kw, **kw)

    def float32_tolerance(self, literal: list[float]) -> float:
        # |m| <= max|g| and sqrt(v) >= sqrt(1 - b2) |g_latest|..., so one step is
        # at most lr (1 - b1) / sqrt(1 - b2) / (1 - b1) per unit ratio; 1/sqrt(1 - b2)
        # bounds how far float32 rounding in v can move the step.
        step_bound = self.lr * max(1.0, 1.0 / math.sqrt(1.0 - self.b2))
        return float32_tolerance(len(self.grads), np.asarray(literal), step_bound)


adam_runs = st.builds(
    lambda run, *hyper: AdamRun(*run, *hyper), runs(), learning_rates, betas_1, betas_2, epsilons
)


@pytest.mark.spec("eq-adam", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(adam_runs)
def test_adam_step_matches_keras_and_formula(keras: Any, run: AdamRun) -> None:
    ours64, ours32 = run.ours(), run.ours(np.float32)
    literal = run.literal("keras")
    theirs = keras_run(keras, keras.optimizers.Adam(**run.kw), run.theta0, run.grads)
    np.testing.assert_allclose(ours64, literal, rtol=1e-12, atol=1e-12)
    assert ours32.dtype == np.float32
    tol = run.float32_tolerance(literal)
    np.testing.assert_allclose(ours32, theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(ours32, literal, rtol=0, atol=tol)


@pytest.mark.spec("eq-adam", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(st.integers(0, 2**32 - 1))
def test_adam_step_matches_keras_defaults_over_many_steps(keras: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(64).astype(np.float32).astype(np.float64)
    grads = rng.standard_normal((60, 64)).astype(np.float32).astype(np.float64)
    # Keras computes beta_2 ** t in float32 (0.999 -> 0.99900001), so give
    # both sides that rounded value, exactly as for the learning rate.
    ours = run_adam(theta0.astype(np.float32), grads.astype(np.float32), beta_2=f32(0.999))
    theirs = keras_run(keras, keras.optimizers.Adam(beta_2=f32(0.999)), theta0, grads)
    tol = float32_tolerance(len(grads), theirs, 0.001 * 32)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol)


@pytest.mark.spec("eq-adam", kind="parity")
@given(adam_runs)
def test_adam_step_paper_form_matches_algorithm_1(run: AdamRun) -> None:
    literal = run.literal("paper")
    np.testing.assert_allclose(run.ours(form="paper"), literal, rtol=1e-12, atol=1e-12)


@pytest.mark.spec("eq-adam", kind="parity")
def test_adam_step_worked_example() -> None:
    theta, state = adam_step([1.0, 1.0], [0.5, -2.0], adam_init([1.0, 1.0]), learning_rate=0.1)
    # alpha_1 = 0.1 sqrt(0.001) / 0.1; m = 0.1 g; v = 0.001 g^2
    alpha = 0.1 * math.sqrt(0.001) / 0.1
    expected = [
        1 - alpha * 0.05 / (math.sqrt(0.00025) + 1e-7),
        1 + alpha * 0.2 / (0.063245553 + 1e-7),
    ]
    np.testing.assert_allclose(theta, expected, rtol=1e-9)
    np.testing.assert_allclose(theta, [0.90000063, 1.09999984], atol=5e-9)
    np.testing.assert_allclose(state.m, [0.05, -0.2], rtol=1e-15)
    np.testing.assert_allclose(state.v, [0.00025, 0.004], rtol=1e-12)
    assert state.t == 1
    paper, _ = adam_step(
        [1.0, 1.0], [0.5, -2.0], adam_init([1.0, 1.0]), learning_rate=0.1, form="paper"
    )
    np.testing.assert_allclose(
        paper, [1 - 0.1 * 0.5 / (0.5 + 1e-7), 1 + 0.1 * 2 / (2 + 1e-7)], rtol=1e-15
    )
    np.testing.assert_allclose(paper, [0.90000002, 1.099999995], atol=5e-10)


@pytest.mark.spec("eq-adam", kind="parity")
def test_adam_worked_example_in_keras_float32(keras: Any) -> None:
    """The page's float32 figures: Keras (0.9000013, 1.0999992), ours (0.90000063, 1.0999998)."""
    theta0, grad = np.array([[1.0, 1.0]]), np.array([[0.5, -2.0]])
    theirs = keras_run(keras, keras.optimizers.Adam(learning_rate=0.1), theta0[0], grad)
    assert [str(x) for x in np.float32(theirs)] == ["0.9000013", "1.0999992"]
    ours, _ = adam_step(
        theta0[0].astype(np.float32),
        grad[0].astype(np.float32),
        adam_init(theta0[0].astype(np.float32)),
        learning_rate=0.1,
    )
    assert [str(x) for x in ours] == ["0.90000063", "1.0999998"]
    # The page's explanation, recomputed: Keras's bias corrections use float32
    # powers of the betas, its moment updates Python's 1 - beta.
    one = np.float32(1)
    alpha = np.float32(0.1) * np.sqrt(one - np.float32(0.999)) / (one - np.float32(0.9))
    g = grad[0].astype(np.float32)
    m, v = g * np.float32(1 - 0.9), g * g * np.float32(1 - 0.999)
    emulated = one - m * alpha / (np.sqrt(v) + np.float32(1e-7))
    np.testing.assert_array_equal(emulated, np.float32(theirs))
    gap = theirs[0] - float(ours[0])
    assert 6.5e-7 < gap < 6.9e-7
    assert abs(1 - math.sqrt(f32(1 - f32(0.999)) / 0.001) / f32(1 - f32(0.9)) * 0.1 - 6.7e-6) < 1e-7


@pytest.fixture(scope="module")
def torch() -> Any:
    """PyTorch (the test extra pins the CPU build 2.13.0)."""
    import torch

    return torch


def torch_run(torch: Any, theta0: np.ndarray, grads: np.ndarray, **kw: Any) -> np.ndarray:
    param = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float32))
    optimizer = torch.optim.Adam([param], **kw)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float32)
        optimizer.step()
    return param.detach().numpy().astype(np.float64)


@pytest.mark.spec("eq-adam", kind="parity")
@settings(max_examples=KERAS_EXAMPLES)
@given(adam_runs)
def test_torch_adam_is_the_paper_form(torch: Any, run: AdamRun) -> None:
    theirs = torch_run(torch, run.theta0, run.grads, lr=run.lr, betas=(run.b1, run.b2), eps=run.eps)
    ours32 = run.ours(np.float32, form="paper")
    literal = run.literal("paper")
    tol = run.float32_tolerance(literal)
    np.testing.assert_allclose(ours32, theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(theirs, literal, rtol=0, atol=tol)


@pytest.mark.spec("eq-adam", kind="parity")
def test_torch_and_keras_adam_first_steps_on_the_page(torch: Any, keras: Any) -> None:
    """The optimisation page's table: one step from (1, 1) at lr 0.1, float32."""
    theta0 = np.array([1.0, 1.0])
    table = {
        (0.5, -2.0): (["0.90000004", "1.1"], ["0.9000013", "1.0999992"]),
        (1e-7, -1e-6): (["0.90909094", "1.0990099"], ["0.99693465", "1.0240252"]),
    }
    for g, (torch_row, keras_row) in table.items():
        grads = np.array([g])
        t = torch_run(torch, theta0, grads, lr=0.1)
        k = keras_run(keras, keras.optimizers.Adam(learning_rate=0.1), theta0, grads)
        assert [str(x) for x in np.float32(t)] == torch_row
        assert [str(x) for x in np.float32(k)] == keras_row
        paper, _ = adam_step(
            np.float32(theta0),
            np.float32(g),
            adam_init(np.float32(theta0)),
            learning_rate=0.1,
            epsilon=1e-8,
            form="paper",
        )
        np.testing.assert_allclose(paper, t, rtol=0, atol=1e-7)
    # eps = 1e-7 / sqrt(1 - beta_2) gives Keras's first step, as the identity says.
    matched = torch_run(
        torch, theta0, np.array([[1e-7, -1e-6]]), lr=0.1, eps=1e-7 / math.sqrt(1e-3)
    )
    assert [str(x) for x in np.float32(matched)] == ["0.99693465", "1.0240253"]
    # Keras's equivalent paper epsilon: 316x PyTorch's at t = 1, > 10x until ~3,900 steps.
    assert 1e-7 / math.sqrt(1 - 0.999) / 1e-8 == pytest.approx(316.2, abs=0.1)
    crossing = math.ceil(math.log(1 - 0.99**2) / math.log(0.999))
    assert 3900 <= crossing <= 3920


@pytest.mark.spec("eq-adam", kind="property")
@given(runs(), st.integers(0, 20), learning_rates, betas_1, betas_2, st.floats(1e-9, 1e-2))
def test_adam_step_keras_paper_identity(
    run: tuple[np.ndarray, np.ndarray],
    warmup: int,
    lr: float,
    b1: float,
    b2: float,
    eps_hat: float,
) -> None:
    theta, grads = run
    rng = np.random.default_rng(warmup)
    state = adam_init(theta)
    for _ in range(warmup):
        theta, state = adam_step(theta, rng.standard_normal(theta.shape), state)
    t = state.t + 1
    eps_paper = eps_hat / math.sqrt(1 - b2**t)
    kw = {"learning_rate": lr, "beta_1": b1, "beta_2": b2}
    keras_form, ks = adam_step(theta, grads[0], state, epsilon=eps_hat, form="keras", **kw)
    paper_form, ps = adam_step(theta, grads[0], state, epsilon=eps_paper, form="paper", **kw)
    np.testing.assert_allclose(paper_form, keras_form, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(ps.m, ks.m)
    np.testing.assert_array_equal(ps.v, ks.v)


@pytest.mark.spec("eq-adam", kind="property")
@given(
    hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e6, 1e6)),
    hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e6, 1e6)),
    learning_rates,
    betas_1,
    betas_2,
    st.floats(1e-12, 1.0),
    st.sampled_from(["keras", "paper"]),
)
def test_adam_step_first_step_bounded_by_learning_rate(
    theta: np.ndarray,
    grad: np.ndarray,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    form: str,
) -> None:
    grad = np.resize(grad, theta.shape)
    new, _ = adam_step(
        theta,
        grad,
        adam_init(theta),
        learning_rate=lr,
        beta_1=b1,
        beta_2=b2,
        epsilon=eps,
        form=form,
    )
    # |step| = lr |g| sqrt(1 - b2) / (|g| sqrt(1 - b2) + eps) <= lr (Keras form),
    # lr |g| / (|g| + eps) <= lr (paper form); allow the rounding of theta - step.
    slack = 2 * np.spacing(np.abs(theta) + lr) + 4e-16 * lr
    assert np.all(np.abs(new - theta) <= lr + slack)


@pytest.mark.spec("eq-adam", kind="property")
def test_adam_step_blocked_path_equals_vectorised_formula() -> None:
    # 2**18 + 12345 elements: several 2**15-element blocks and a ragged last one.
    rng = np.random.default_rng(11)
    n = 2**18 + 12345
    theta = rng.standard_normal(n).astype(np.float32)
    grad = rng.standard_normal(n).astype(np.float32)
    state = AdamState(
        m=rng.standard_normal(n).astype(np.float32) * 0.1,
        v=rng.random(n).astype(np.float32),
        t=3,
    )
    new, after = adam_step(theta, grad, state, learning_rate=0.01)
    t = 4
    alpha = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    m = state.m + (grad - state.m) * (1 - 0.9)
    v = state.v + (grad * grad - state.v) * (1 - 0.999)
    expected = theta - (m * alpha) / (np.sqrt(v) + 1e-7)
    np.testing.assert_array_equal(after.m, m)
    np.testing.assert_array_equal(after.v, v)
    np.testing.assert_allclose(new, expected, rtol=2 * U32, atol=2 * U32 * alpha)
    assert new.dtype == after.m.dtype == after.v.dtype == np.float32
    assert after.t == t


# ---------------------------------------------------------------- purity


@pytest.mark.spec("eq-gd", kind="property")
@pytest.mark.spec("eq-momentum", kind="property")
@pytest.mark.spec("eq-adam", kind="property")
@given(runs(max_steps=1), st.sampled_from([np.float32, np.float64]))
def test_optimizer_steps_do_not_mutate_inputs(
    run: tuple[np.ndarray, np.ndarray], dtype: Any
) -> None:
    theta, grads = run
    theta, grad = theta.astype(dtype), grads[0].astype(dtype)
    velocity = theta * 0.5
    state = AdamState(m=theta * 0.1, v=np.abs(theta), t=2)
    inputs = [theta, grad, velocity, state.m, state.v]
    before = [a.copy() for a in inputs]
    outputs = [
        gradient_descent_step(theta, grad, learning_rate=0.1),
        *momentum_step(theta, grad, velocity, learning_rate=0.1, momentum=0.9, nesterov=True),
        *momentum_step(theta, grad, velocity, learning_rate=0.1, momentum=0.9),
    ]
    for form in ("keras", "paper"):
        new, after = adam_step(theta, grad, state, form=form)  # type: ignore[arg-type]
        outputs += [new, after.m, after.v]
        assert after.t == 3
    for a, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b)
    for out in outputs:
        assert out.dtype == dtype
        assert not any(np.shares_memory(out, a) for a in inputs)
    assert state.t == 2


# ---------------------------------------------------------------- out=

shapes = st.sampled_from([(), (1,), (5,), (3, 4), (2, 3, 2)])


@st.composite
def steps(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, AdamState]:
    """theta, a gradient sequence of 1 to 4 steps, a velocity and an Adam state
    (m of either sign, v >= 0, any t), all of one shape and float dtype."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(shapes)
    elems = st.floats(-10, 10, width=32)
    theta = draw(hnp.arrays(dtype, shape, elements=elems))
    grads = draw(hnp.arrays(dtype, (draw(st.integers(1, 4)), *shape), elements=elems))
    velocity = draw(hnp.arrays(dtype, shape, elements=elems))
    m = draw(hnp.arrays(dtype, shape, elements=elems))
    v = draw(hnp.arrays(dtype, shape, elements=st.floats(0, 100, width=32)))
    return theta, grads, velocity, AdamState(m=m, v=v, t=draw(st.integers(0, 50)))


def spare(like: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    # Filled with NaN so that an element the step forgot to write shows.
    return tuple(np.full_like(like, np.nan) for _ in range(count))


@pytest.mark.spec("eq-adam", kind="property")
@given(steps(), st.sampled_from(["keras", "paper"]), learning_rates)
def test_adam_step_out_equals_fresh_arrays(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, AdamState], form: Any, lr: float
) -> None:
    theta, grads, _, state = case
    inputs = [theta, grads, state.m, state.v]
    before = [a.copy() for a in inputs]
    buffers = [spare(theta, 3), spare(theta, 3)]
    fresh, fresh_state = theta, state
    ours, our_state = theta, state
    for k, g in enumerate(grads):
        fresh, fresh_state = adam_step(fresh, g, fresh_state, learning_rate=lr, form=form)
        ours, our_state = adam_step(
            ours, g, our_state, learning_rate=lr, form=form, out=buffers[k % 2]
        )
        # The results live in the buffers handed in, bit-identical to fresh arrays.
        assert ours is buffers[k % 2][0]
        assert our_state.m is buffers[k % 2][1]
        assert our_state.v is buffers[k % 2][2]
        np.testing.assert_array_equal(ours, fresh)
        np.testing.assert_array_equal(our_state.m, fresh_state.m)
        np.testing.assert_array_equal(our_state.v, fresh_state.v)
        assert our_state.t == fresh_state.t == state.t + k + 1
    for a, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.spec("eq-adam", kind="property")
def test_adam_step_out_equals_fresh_arrays_over_many_blocks() -> None:
    # Several 2**15-element blocks, a ragged end, a 2-D shape, double buffering.
    rng = np.random.default_rng(5)
    theta = rng.standard_normal((3, 40_000)).astype(np.float32)
    state = adam_init(theta)
    buffers = [spare(theta, 3), spare(theta, 3)]
    fresh, fresh_state, ours, our_state = theta, state, theta, state
    for k in range(4):
        g = rng.standard_normal(theta.shape).astype(np.float32)
        fresh, fresh_state = adam_step(fresh, g, fresh_state)
        ours, our_state = adam_step(ours, g, our_state, out=buffers[k % 2])
    np.testing.assert_array_equal(ours, fresh)
    np.testing.assert_array_equal(our_state.m, fresh_state.m)
    np.testing.assert_array_equal(our_state.v, fresh_state.v)


@pytest.mark.spec("eq-gd", kind="property")
@pytest.mark.spec("eq-momentum", kind="property")
@given(steps(), learning_rates, st.floats(0.0, 1.0), st.booleans())
def test_gradient_descent_and_momentum_step_out_equal_fresh_arrays(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, AdamState],
    lr: float,
    mu: float,
    nesterov: bool,
) -> None:
    theta, grads, velocity, _ = case
    g = grads[0]
    before = [a.copy() for a in (theta, g, velocity)]
    (out,) = spare(theta, 1)
    assert gradient_descent_step(theta, g, learning_rate=lr, out=out) is out
    np.testing.assert_array_equal(out, gradient_descent_step(theta, g, learning_rate=lr))
    kw = {"learning_rate": lr, "momentum": mu, "nesterov": nesterov}
    pair = spare(theta, 2)
    new_theta, new_velocity = momentum_step(theta, g, velocity, out=pair, **kw)
    assert new_theta is pair[0]
    assert new_velocity is pair[1]
    fresh_theta, fresh_velocity = momentum_step(theta, g, velocity, **kw)
    np.testing.assert_array_equal(new_theta, fresh_theta)
    np.testing.assert_array_equal(new_velocity, fresh_velocity)
    for a, b in zip((theta, g, velocity), before, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- errors

THETA = np.array([1.0, 2.0])
GRAD = np.array([0.1, -0.1])


@pytest.mark.spec("eq-gd", kind="errors")
@pytest.mark.parametrize(
    ("theta", "grad", "lr", "message"),
    [
        (THETA, GRAD, 0.0, "learning_rate must be finite and > 0"),
        (THETA, GRAD, -0.1, "learning_rate must be finite and > 0"),
        (THETA, GRAD, float("nan"), "learning_rate must be finite and > 0"),
        (THETA, GRAD, float("inf"), "learning_rate must be finite and > 0"),
        (THETA, [0.1, 0.2, 0.3], 0.1, "shape mismatch"),
        ([1.0, np.nan], GRAD, 0.1, "theta contains NaN or inf"),
        (THETA, [np.inf, 0.0], 0.1, "grad contains NaN or inf"),
        ([], [], 0.1, "theta is empty"),
    ],
)
def test_gradient_descent_step_errors(theta: Any, grad: Any, lr: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gradient_descent_step(theta, grad, learning_rate=lr)


@pytest.mark.spec("eq-momentum", kind="errors")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum": 1.1}, r"momentum must be in \[0, 1\]"),
        ({"momentum": -0.1}, r"momentum must be in \[0, 1\]"),
        ({"momentum": float("nan")}, r"momentum must be in \[0, 1\]"),
        ({"learning_rate": 0.0}, "learning_rate must be finite and > 0"),
        ({"velocity": [0.0]}, "shape mismatch: theta"),
        ({"grad": [[0.1, 0.2]]}, "shape mismatch: theta"),
        ({"velocity": [np.nan, 0.0]}, "velocity contains NaN or inf"),
        ({"grad": [np.nan, 0.0]}, "grad contains NaN or inf"),
    ],
)
def test_momentum_step_errors(kwargs: dict[str, Any], message: str) -> None:
    args = {"theta": THETA, "grad": GRAD, "velocity": [0.0, 0.0], "learning_rate": 0.1}
    args["momentum"] = 0.9
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        momentum_step(**args)


@pytest.mark.spec("eq-adam", kind="errors")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be finite and > 0"),
        ({"learning_rate": float("inf")}, "learning_rate must be finite and > 0"),
        ({"beta_1": 1.0}, r"beta_1 must be in \[0, 1\)"),
        ({"beta_1": -0.1}, r"beta_1 must be in \[0, 1\)"),
        ({"beta_2": 1.0}, r"beta_2 must be in \[0, 1\)"),
        ({"beta_2": float("nan")}, r"beta_2 must be in \[0, 1\)"),
        ({"epsilon": 0.0}, "epsilon must be finite and > 0"),
        ({"form": "adamw"}, "form must be 'keras' or 'paper'"),
        ({"grad": [0.1]}, "shape mismatch: theta"),
        ({"grad": [np.nan, 0.1]}, "grad contains NaN or inf"),
        ({"theta": [np.inf, 0.1]}, "theta contains NaN or inf"),
        ({"state": AdamState(m=np.zeros(3), v=np.zeros(3), t=0)}, "shape mismatch: theta"),
        ({"state": AdamState(m=np.zeros(2), v=np.array([np.inf, 0]), t=0)}, "state.v contains"),
        ({"state": AdamState(m=np.array([np.nan, 0]), v=np.zeros(2), t=0)}, "state.m contains"),
        ({"state": AdamState(m=np.zeros(2), v=np.array([-1.0, 0]), t=0)}, "non-negative"),
        ({"state": AdamState(m=np.zeros(2), v=np.zeros(2), t=-1)}, "state.t must be"),
        ({"state": (np.zeros(2), np.zeros(2), 0)}, "state must be an AdamState"),
        ({"theta": np.zeros(0), "grad": np.zeros(0)}, "theta is empty"),
    ],
)
def test_adam_step_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"theta": THETA, "grad": GRAD, "state": adam_init(THETA)}
    args.update(kwargs)
    theta, grad, state = args.pop("theta"), args.pop("grad"), args.pop("state")
    with pytest.raises(ValueError, match=message):
        adam_step(theta, grad, state, **args)


def out_cases(theta: np.ndarray, grad: np.ndarray, state: AdamState) -> list[Any]:
    """(out, message) pairs that adam_step must refuse, built around these inputs."""
    a, b, c = (np.empty_like(theta) for _ in range(3))
    wide = np.empty(2 * theta.size, theta.dtype)
    read_only = np.empty_like(theta)
    read_only.flags.writeable = False
    return [
        ([a, b, c], r"out must be a tuple of 3 arrays \(out\[0\] \(theta\)"),
        ((a, b), "out must be a tuple of 3 arrays"),
        ((a, b, [0.0, 0.0]), r"out\[2\] \(v\) must be a NumPy array, got list"),
        ((a, b, c.astype(np.float32)), r"out\[2\] \(v\) has dtype float32, the parameters'"),
        ((np.empty(3), b, c), r"out\[0\] \(theta\) has shape \(3,\), theta has shape \(2,\)"),
        ((a, read_only, c), r"out\[1\] \(m\) is not writable"),
        ((a, b, wide[::2]), r"out\[2\] \(v\) is not C-contiguous"),
        ((theta, b, c), r"out\[0\] \(theta\) shares memory with theta"),
        ((a, grad, c), r"out\[1\] \(m\) shares memory with grad"),
        ((state.v, b, c), r"out\[0\] \(theta\) shares memory with state.v"),
        ((a, state.m, c), r"out\[1\] \(m\) shares memory with state.m"),
        ((a, b, a), r"out\[0\] \(theta\) and out\[2\] \(v\) share memory"),
    ]


@pytest.mark.spec("eq-adam", kind="errors")
@pytest.mark.parametrize("case", range(12))
def test_adam_step_refuses_unsuitable_out(case: int) -> None:
    theta, grad = THETA.copy(), GRAD.copy()
    state = AdamState(m=np.array([0.1, 0.2]), v=np.array([0.3, 0.4]), t=1)
    cases = out_cases(theta, grad, state)
    assert len(cases) == 12
    out, message = cases[case]
    inputs = [theta, grad, state.m, state.v]
    before = [a.copy() for a in inputs]
    with pytest.raises(ValueError, match=message):
        adam_step(theta, grad, state, out=out)
    for a, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.spec("eq-adam", kind="errors")
def test_adam_step_refuses_out_overlapping_an_input_view() -> None:
    # out[2] and state.v are different views of one buffer that overlap.
    base = np.zeros(3)
    state = AdamState(m=np.zeros(2), v=base[:2], t=0)
    out = (np.empty(2), np.empty(2), base[1:])
    with pytest.raises(ValueError, match=r"out\[2\] \(v\) shares memory with state.v"):
        adam_step(THETA, GRAD, state, out=out)
    np.testing.assert_array_equal(base, 0.0)


@pytest.mark.spec("eq-adam", kind="errors")
@pytest.mark.parametrize(
    ("theta", "grad", "state", "message"),
    [
        ([1.0, np.nan], GRAD, AdamState(np.zeros(2), np.zeros(2), 0), "theta contains NaN"),
        (THETA, GRAD, AdamState(np.zeros(2), np.array([np.inf, 0.0]), 0), "state.v contains"),
        (THETA, GRAD, AdamState(np.zeros(2), np.array([-1.0, 0.0]), 0), "non-negative"),
    ],
)
def test_adam_step_with_out_still_reports_bad_values(
    theta: Any, grad: Any, state: AdamState, message: str
) -> None:
    out = (np.empty(2), np.empty(2), np.empty(2))
    with pytest.raises(ValueError, match=message):
        adam_step(theta, grad, state, out=out)


@pytest.mark.spec("eq-gd", kind="errors")
@pytest.mark.spec("eq-momentum", kind="errors")
def test_gradient_descent_and_momentum_step_refuse_unsuitable_out() -> None:
    theta, grad, velocity = THETA.copy(), GRAD.copy(), np.zeros(2)
    with pytest.raises(ValueError, match="out shares memory with theta"):
        gradient_descent_step(theta, grad, learning_rate=0.1, out=theta)
    with pytest.raises(ValueError, match="out has dtype float32"):
        gradient_descent_step(theta, grad, learning_rate=0.1, out=np.empty(2, np.float32))
    kw = {"learning_rate": 0.1, "momentum": 0.9}
    with pytest.raises(ValueError, match=r"out\[1\] \(velocity\) shares memory with velocity"):
        momentum_step(theta, grad, velocity, out=(np.empty(2), velocity), **kw)
    with pytest.raises(ValueError, match=r"out must be a tuple of 2 arrays"):
        momentum_step(theta, grad, velocity, out=(np.empty(2),), **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(theta, THETA)
    np.testing.assert_array_equal(velocity, 0.0)


@pytest.mark.spec("eq-adam", kind="errors")
def test_adam_step_reports_non_finite_input_in_the_blocked_path() -> None:
    n = 2**18 + 3
    theta = np.zeros(n, np.float32)
    grad = np.ones(n, np.float32)
    grad[-1] = np.nan
    with pytest.raises(ValueError, match="grad contains NaN or inf"):
        adam_step(theta, grad, adam_init(theta))


@pytest.mark.spec("eq-adam", kind="errors")
def test_adam_step_reports_float32_overflow() -> None:
    theta = np.zeros(2, np.float32)
    grad = np.array([1e30, 1.0], np.float32)  # g**2 overflows float32
    with pytest.raises(ValueError, match="overflows float32"):
        adam_step(theta, grad, adam_init(theta))


# ------------------------------------------- robustness: scalars, flags, overflow, raises

NOT_A_REAL = [None, "0.1", b"1", [0.1], 1j, True, np.bool_(True), np.array([0.1, 0.1])]
NOT_A_REAL += [math.nan, math.inf, -math.inf, np.float32("nan"), 10**400]
bad_real = st.sampled_from(NOT_A_REAL) | st.floats().filter(lambda x: not math.isfinite(x))

ADAM_ARGS = (THETA, GRAD, adam_init(THETA))
MOMENTUM_ARGS = (THETA, GRAD, np.zeros(2))
HYPERPARAMETERS: list[tuple[str, Any]] = [
    ("learning_rate", lambda v: gradient_descent_step(THETA, GRAD, learning_rate=v)),
    ("learning_rate", lambda v: momentum_step(*MOMENTUM_ARGS, learning_rate=v, momentum=0.9)),
    ("momentum", lambda v: momentum_step(*MOMENTUM_ARGS, learning_rate=0.1, momentum=v)),
    ("learning_rate", lambda v: adam_step(*ADAM_ARGS, learning_rate=v)),
    ("beta_1", lambda v: adam_step(*ADAM_ARGS, beta_1=v)),
    ("beta_2", lambda v: adam_step(*ADAM_ARGS, beta_2=v)),
    ("epsilon", lambda v: adam_step(*ADAM_ARGS, epsilon=v)),
]


@pytest.mark.spec("eq-adam", kind="errors")
@pytest.mark.parametrize(("name", "call"), HYPERPARAMETERS)
@given(value=bad_real)
def test_every_hyperparameter_names_itself_when_refused(
    name: str, call: Any, value: object
) -> None:
    # None used to give float()'s TypeError, which names nothing.
    with pytest.raises(ValueError, match=name):
        call(value)


@pytest.mark.spec("eq-momentum", kind="errors")
@given(value=st.sampled_from(["no", "yes", "", 0, 1, 1.0, None, [True], np.array([True])]))
def test_nesterov_must_be_a_bool(value: object) -> None:
    # "no" is truthy: it used to select the Nesterov form silently.
    with pytest.raises(ValueError, match="nesterov must be True or False"):
        momentum_step(*MOMENTUM_ARGS, learning_rate=0.1, momentum=0.9, nesterov=value)  # type: ignore[arg-type]


@pytest.mark.spec("eq-momentum", kind="property")
def test_nesterov_accepts_numpy_bools() -> None:
    for flag in (True, False):
        ours = momentum_step(
            *MOMENTUM_ARGS, learning_rate=0.1, momentum=0.9, nesterov=np.bool_(flag)
        )
        ref = momentum_step(*MOMENTUM_ARGS, learning_rate=0.1, momentum=0.9, nesterov=flag)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.spec("eq-adam", kind="property")
@given(
    lr=st.floats(1e-4, 1.0),
    beta=st.floats(0.0, 0.999),
    conv=st.sampled_from([np.float32, np.float64, np.float16]),
    t=st.sampled_from([np.int64(3), np.int32(3), np.uint8(3)]),
)
def test_numpy_scalars_give_the_python_scalars_results(
    lr: float, beta: float, conv: Any, t: Any
) -> None:
    nlr, nbeta = conv(lr), conv(beta)
    assume(float(nlr) > 0 and 0 <= float(nbeta) < 1)
    plr, pbeta = float(nlr), float(nbeta)
    state = AdamState(m=np.array([0.1, -0.2]), v=np.array([0.3, 0.4]), t=t)
    py_state = AdamState(m=state.m, v=state.v, t=3)
    pairs = [
        (
            adam_step(
                THETA, GRAD, state, learning_rate=nlr, beta_1=nbeta, beta_2=nbeta, epsilon=nlr
            ),
            adam_step(
                THETA, GRAD, py_state, learning_rate=plr, beta_1=pbeta, beta_2=pbeta, epsilon=plr
            ),
        ),
        (
            momentum_step(*MOMENTUM_ARGS, learning_rate=nlr, momentum=nbeta),
            momentum_step(*MOMENTUM_ARGS, learning_rate=plr, momentum=pbeta),
        ),
        (
            (gradient_descent_step(THETA, GRAD, learning_rate=nlr),),
            (gradient_descent_step(THETA, GRAD, learning_rate=plr),),
        ),
    ]
    for ours, ref in pairs:
        flat_ours = [ours[0], ours[1].m, ours[1].v] if isinstance(ours[-1], AdamState) else ours
        flat_ref = [ref[0], ref[1].m, ref[1].v] if isinstance(ref[-1], AdamState) else ref
        for a, b in zip(flat_ours, flat_ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.spec("eq-adam", kind="errors")
@given(
    neg=st.floats(-1e-3, -1e-300) | st.sampled_from([-5e-324, -1e-20]),
    g=st.floats(1e-3, 1e3),
    size=st.sampled_from([1, 2, 2**15 + 7]),
    where=st.floats(0.0, 1.0),
)
def test_adam_step_refuses_any_negative_second_moment(
    neg: float, g: float, size: int, where: float
) -> None:
    # A tiny negative v plus a large g**2 gives a finite, positive new v: the check
    # must look at the v it is given, not only at a non-finite result.
    v = np.full(size, 0.25)
    v[min(int(where * size), size - 1)] = neg
    theta = np.zeros(size)
    with pytest.raises(ValueError, match=r"state\.v must be non-negative"):
        adam_step(theta, np.full(size, g), AdamState(m=np.zeros(size), v=v, t=3))


@pytest.mark.spec("eq-gd", kind="errors")
@pytest.mark.spec("eq-momentum", kind="errors")
@pytest.mark.spec("eq-adam", kind="errors")
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gradient_descent_step(np.ones(2, np.float16), [1e6, 0.0], learning_rate=0.1),
            r"grad overflows float16: its largest magnitude 1e\+06 exceeds the largest finite "
            r"float16 \(65504\)",
        ),
        (
            lambda: gradient_descent_step(
                np.full(2, 60000, np.float16), [-60000.0, 0.0], learning_rate=1.0
            ),
            r"the result overflows float16: the new theta exceeds the largest finite float16",
        ),
        (
            lambda: momentum_step(
                np.ones(2, np.float16), [0.0, 0.0], [1e5, 0.0], learning_rate=0.1, momentum=0.9
            ),
            "velocity overflows float16",
        ),
        (
            lambda: adam_step(
                np.ones(2, np.float16),
                [0.0, 0.0],
                AdamState(np.zeros(2), np.array([1e10, 0.0]), 1),
            ),
            "state.v overflows float16",
        ),
        (
            lambda: adam_step(
                np.zeros(2, np.float16), [300.0, 1.0], adam_init(np.zeros(2, np.float16))
            ),
            "the result overflows float16: the new state.v",
        ),
        (
            lambda: gradient_descent_step(np.ones(2, np.float16), [np.inf, 0.0], learning_rate=0.1),
            "grad contains NaN or inf",
        ),
    ],
)
def test_float16_overflow_is_reported_as_overflow(call: Any, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RuntimeWarning on the way
        with pytest.raises(ValueError, match=message):
            call()


# Every clause of every "Raises:" section in release_spec/optimizers.py not tested above.
@pytest.mark.spec("eq-gd", kind="errors")
@pytest.mark.spec("eq-momentum", kind="errors")
@pytest.mark.spec("eq-adam", kind="errors")
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gradient_descent_step(["a"], ["b"], learning_rate=0.1), "theta must be a real"),
        (lambda: gradient_descent_step([1.0], [1j], learning_rate=0.1), "grad must be a real"),
        (lambda: gradient_descent_step([1.0], [1.0], learning_rate="0.1"), "learning_rate"),
        (lambda: momentum_step([], [], [], learning_rate=0.1, momentum=0.9), "theta is empty"),
        (
            lambda: momentum_step([1.0], [1.0], ["x"], learning_rate=0.1, momentum=0.9),
            "velocity must be a real",
        ),
        (lambda: momentum_step([1.0], [1.0], [0.0], learning_rate=0.1, momentum=None), "momentum"),
        (lambda: adam_step([1.0], [1.0], adam_init([1.0]), form=None), "form must be"),
        (lambda: adam_step([1.0], [1.0], adam_init([1.0]), epsilon=-1.0), "epsilon must be"),
        (
            lambda: adam_step([1.0], [1.0], AdamState(np.zeros(1), np.zeros(1), True)),
            "state.t must be",
        ),
        (
            lambda: adam_step([1.0], [1.0], AdamState(np.zeros(1), np.zeros(1), 1.5)),
            "state.t must be",
        ),
        (
            lambda: adam_step([1.0], [1.0], AdamState(np.zeros(1), np.array(["v"]), 0)),
            "state.v must be a real",
        ),
    ],
)
def test_every_documented_raise_happens(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
