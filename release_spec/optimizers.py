"""Optimizer update rules: gradient descent, momentum (Keras SGD) and Adam.

One file, NumPy only: copy it into a project and it works. Every step is a
pure function: it never writes into its inputs. By default it returns new
arrays; with ``out=`` it writes into arrays the caller supplies (for example
those of two steps ago, see `adam_step`), which saves a large step the cost of
fresh memory. Parameters keep their floating dtype (float32 stays float32, as
in Keras); integer parameters are promoted to float64 and gradients are cast
to the parameters' dtype. Bad input raises `ValueError` naming the problem and
the parameter: hyperparameters may be Python or NumPy numbers (never bools or
strings), flags such as ``nesterov`` must be bools, and a value or result that
does not fit the parameters' dtype (float16 tops out at 65504) is reported as
the overflow it is, not as bad input.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AdamState",
    "adam_init",
    "adam_step",
    "gradient_descent_step",
    "momentum_init",
    "momentum_step",
]

FloatArray = NDArray[np.floating[Any]]

# Adam works through the arrays in blocks so that its temporaries stay in L2
# cache; the arrays are then read and written once each instead of once per
# arithmetic operation. 2**15 elements (128 KiB of float32 per array, about
# 1 MiB for all eight) measured fastest here; from 2**14 to 2**16 the time
# changes by a few percent, smaller blocks pay NumPy's per-call overhead.
# One thread: on this 2-core machine a second one brought no gain under load
# (its CPU time simply added up), so the code stays sequential.
_BLOCK = 1 << 15


def _params(theta: ArrayLike) -> FloatArray:
    arr = np.asarray(theta)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"theta must be a real numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError("theta is empty")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def _like(x: ArrayLike, theta: FloatArray, name: str) -> FloatArray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.shape != theta.shape:
        raise ValueError(f"shape mismatch: theta {theta.shape} vs {name} {arr.shape}")
    # A value too large for theta's dtype becomes inf here; _check_finite names it.
    with np.errstate(over="ignore"):
        return arr.astype(theta.dtype, copy=False)


def _outputs(
    out: tuple[Any, ...] | None,
    labels: tuple[str, ...],
    th: FloatArray,
    inputs: dict[str, NDArray[Any]],
) -> tuple[FloatArray, ...]:
    """The arrays a step writes into: fresh ones, or the caller's ``out`` once checked.

    ``out`` must match ``th`` in shape and dtype, be writable and C-contiguous
    (so that flat views of it are views, not copies), and overlap neither
    itself nor any input: a step never modifies what it is given.
    """
    if out is None:
        return tuple(np.empty(th.shape, th.dtype) for _ in labels)
    if not isinstance(out, tuple) or len(out) != len(labels):
        raise ValueError(
            f"out must be a tuple of {len(labels)} arrays ({', '.join(labels)}), got {out!r:.80}"
        )
    for label, arr in zip(labels, out, strict=True):
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{label} must be a NumPy array, got {type(arr).__name__}")
        if arr.dtype != th.dtype:
            raise ValueError(f"{label} has dtype {arr.dtype}, the parameters' dtype is {th.dtype}")
        if arr.shape != th.shape:
            raise ValueError(f"{label} has shape {arr.shape}, theta has shape {th.shape}")
        if not arr.flags.writeable:
            raise ValueError(f"{label} is not writable")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{label} is not C-contiguous")
        for name, given in inputs.items():
            if np.may_share_memory(arr, given):
                raise ValueError(f"{label} shares memory with {name}; inputs are never overwritten")
    for (label_a, a), (label_b, b) in itertools.combinations(zip(labels, out, strict=True), 2):
        if np.may_share_memory(a, b):
            raise ValueError(f"{label_a} and {label_b} share memory")
    return out


def _real(value: object, name: str) -> float:
    """A Python or NumPy int or float (never a bool or a string) as a float."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float64: not finite for our purposes
        return math.inf


def _flag(value: object, name: str) -> bool:
    """A bool (Python or NumPy); ``"no"`` or ``0`` would silently mean something else."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _learning_rate(learning_rate: object) -> float:
    lr = _real(learning_rate, "learning_rate")
    if not (math.isfinite(lr) and lr > 0.0):
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
    return lr


def _unit_interval(value: object, name: str, *, closed: bool) -> float:
    x = _real(value, name)
    ok = 0.0 <= x <= 1.0 if closed else 0.0 <= x < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return x


def _check_finite(
    outputs: dict[str, FloatArray],
    partial_sums: float,
    inputs: dict[str, tuple[NDArray[Any], FloatArray]],
) -> None:
    """Raise if an input held NaN/inf or a value overflowed the parameters' dtype.

    ``inputs`` maps each name to the array as given and as cast to the
    parameters' dtype. ``partial_sums`` is a sum over the outputs computed while
    they were in cache; it is finite unless an output is non-finite or the sum
    overflowed, so the full checks below run only on that rare path. Three
    different causes get three different messages: NaN/inf in an input; a finite
    input too large for the dtype (float64 gradients into float16 parameters);
    finite inputs whose result overflows the dtype.
    """
    if math.isfinite(partial_sums):
        return
    for name, (given, cast) in inputs.items():
        if not np.isfinite(cast).all():
            if given.dtype.kind == "f" and not np.isfinite(given).all():
                raise ValueError(f"{name} contains NaN or inf")
            top = float(np.max(np.abs(given)))
            raise ValueError(
                f"{name} overflows {cast.dtype}: its largest magnitude {top:g} exceeds the "
                f"largest finite {cast.dtype} ({float(np.finfo(cast.dtype).max):g}), the "
                "parameters' dtype it is cast to"
            )
    for label, out in outputs.items():
        if not np.isfinite(out).all():
            raise ValueError(
                f"the result overflows {out.dtype}: the new {label} exceeds the largest finite "
                f"{out.dtype} ({float(np.finfo(out.dtype).max):g}); use a wider parameter dtype "
                "or a smaller step"
            )


# --8<-- [start:gradient_descent_step]
def gradient_descent_step(
    theta: ArrayLike, grad: ArrayLike, *, learning_rate: float, out: FloatArray | None = None
) -> FloatArray:
    r"""One step of gradient descent.

    $$
    \theta_{t+1} = \theta_t - \alpha\,\nabla J(\theta_t)
    $$

    Spec: eq-gd

    On a quadratic $J(\theta) = \tfrac12 \theta^\top A \theta$ whose largest
    Hessian eigenvalue is $L$, the iteration contracts for
    $0 < \alpha < 2/L$ and diverges along that eigenvector for
    $\alpha > 2/L$.

    Matches: ``keras.optimizers.SGD(learning_rate, momentum=0.0)``, which
    computes ``variable - gradient * learning_rate`` in the variable's dtype.

    References:
        Cauchy, "Méthode générale pour la résolution des systèmes
        d'équations simultanées" (1847); Nocedal and Wright, *Numerical
        Optimization* (2006), chapter 3.

    Args:
        theta: Parameters.
        grad: Gradient of the objective at ``theta``, the same shape.
        learning_rate: Step size $\alpha > 0$.
        out: Optional array to write the new parameters into, as for
            `adam_step`: theta's shape and floating dtype, writable,
            C-contiguous, sharing no memory with ``theta`` or ``grad``.

    Returns:
        The new parameters: a new array, or ``out``. ``theta`` is not modified.

    Raises:
        ValueError: A shape mismatch, empty input, a non-numeric dtype, NaN/inf,
            a gradient or result that overflows the parameters' dtype, a
            learning rate that is not a finite positive number, or an
            unsuitable ``out``.

    Examples:
        >>> gradient_descent_step([1.0, -2.0], [0.5, -1.0], learning_rate=0.1)
        array([ 0.95, -1.9 ])
    """
    lr = _learning_rate(learning_rate)
    given = {"theta": np.asarray(theta), "grad": np.asarray(grad)}
    th = _params(given["theta"])
    g = _like(given["grad"], th, "grad")
    (new,) = _outputs(None if out is None else (out,), ("out",), th, given)
    with np.errstate(all="ignore"):
        np.multiply(g, lr, out=new)
        np.subtract(th, new, out=new)
    _check_finite(
        {"theta": new},
        float(np.add.reduce(new, axis=None)),
        {"theta": (given["theta"], th), "grad": (given["grad"], g)},
    )
    return new


# --8<-- [end:gradient_descent_step]


# --8<-- [start:momentum_init]
def momentum_init(theta: ArrayLike) -> FloatArray:
    """Initial velocity for `momentum_step`: zeros shaped like ``theta``.

    Examples:
        >>> momentum_init([1.0, 2.0])
        array([0., 0.])
    """
    return np.zeros_like(_params(theta))


# --8<-- [end:momentum_init]


# --8<-- [start:momentum_step]
def momentum_step(
    theta: ArrayLike,
    grad: ArrayLike,
    velocity: ArrayLike,
    *,
    learning_rate: float,
    momentum: float,
    nesterov: bool = False,
    out: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""One step of gradient descent with (optionally Nesterov) momentum.

    $$
    v_{t+1} = \mu\,v_t - \alpha\,g_t, \qquad
    \theta_{t+1} = \begin{cases}
        \theta_t + v_{t+1} & \text{classical} \\
        \theta_t + \mu\,v_{t+1} - \alpha\,g_t & \text{Nesterov}
    \end{cases}
    $$

    Spec: eq-momentum

    $g_t$ is the gradient at $\theta_t$. The Nesterov line is the
    reformulation used by Keras (and by Sutskever et al.) in which the stored
    parameters are the look-ahead point.

    Matches: ``keras.optimizers.SGD(learning_rate, momentum, nesterov)``, whose
    momentum buffer holds $v$ (the velocity, already scaled by the learning
    rate).

    References:
        Polyak, "Some methods of speeding up the convergence of iteration
        methods" (1964); Sutskever, Martens, Dahl and Hinton, "On the
        importance of initialization and momentum in deep learning", ICML 2013.

    Args:
        theta: Parameters.
        grad: Gradient at ``theta``, the same shape.
        velocity: Velocity from `momentum_init` or the previous step.
        learning_rate: Step size $\alpha > 0$.
        momentum: $\mu \in [0, 1]$.
        nesterov: Use the Nesterov form; a bool (``"no"`` is refused, not true).
        out: Optional ``(theta_out, velocity_out)`` to write the results
            into, checked as for `adam_step`.

    Returns:
        ``(theta, velocity)`` after the step: new arrays, or the two arrays
        of ``out``. Nothing passed in is modified.

    Raises:
        ValueError: Shape mismatches, empty input, a non-numeric dtype, NaN/inf,
            an input or result that overflows the parameters' dtype, a learning
            rate that is not a finite positive number, momentum outside [0, 1],
            a ``nesterov`` that is not a bool, or an unsuitable ``out``.

    Examples:
        >>> theta, v = momentum_step([1.0], [0.5], [0.0], learning_rate=0.1, momentum=0.9)
        >>> theta, v
        (array([0.95]), array([-0.05]))
        >>> momentum_step(theta, [0.5], v, learning_rate=0.1, momentum=0.9)
        (array([0.855]), array([-0.095]))
    """
    lr = _learning_rate(learning_rate)
    mu = _unit_interval(momentum, "momentum", closed=True)
    look_ahead = _flag(nesterov, "nesterov")
    given = {"theta": np.asarray(theta), "grad": np.asarray(grad), "velocity": np.asarray(velocity)}
    th = _params(given["theta"])
    g = _like(given["grad"], th, "grad")
    vel = _like(given["velocity"], th, "velocity")
    new_th, new_v = _outputs(out, ("out[0] (theta)", "out[1] (velocity)"), th, given)
    step = np.empty(th.shape, th.dtype)
    with np.errstate(all="ignore"):
        np.multiply(g, lr, out=step)
        np.multiply(vel, mu, out=new_v)
        new_v -= step
        if look_ahead:
            np.multiply(new_v, mu, out=new_th)
            new_th -= step
            new_th += th
        else:
            np.add(th, new_v, out=new_th)
    _check_finite(
        {"theta": new_th, "velocity": new_v},
        float(np.add.reduce(new_th, axis=None)),
        {
            "theta": (given["theta"], th),
            "grad": (given["grad"], g),
            "velocity": (given["velocity"], vel),
        },
    )
    return new_th, new_v


# --8<-- [end:momentum_step]


# --8<-- [start:adam_state]
@dataclass(frozen=True, eq=False)
class AdamState:
    """Adam's state after ``t`` steps: the moment estimates, without bias correction.

    Attributes:
        m: First moment (exponential average of gradients), shaped like theta.
        v: Second moment (exponential average of squared gradients).
        t: Number of steps taken so far (0 for a fresh state).
    """

    m: FloatArray
    v: FloatArray
    t: int


# --8<-- [end:adam_state]


# --8<-- [start:adam_init]
def adam_init(theta: ArrayLike) -> AdamState:
    """Initial Adam state: zero moments shaped like ``theta``, ``t = 0``.

    Examples:
        >>> adam_init([1.0, 2.0])
        AdamState(m=array([0., 0.]), v=array([0., 0.]), t=0)
    """
    th = _params(theta)
    return AdamState(m=np.zeros_like(th), v=np.zeros_like(th), t=0)


# --8<-- [end:adam_init]


def _adam_blocks(
    th: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    out: tuple[FloatArray, FloatArray, FloatArray],
    coefficients: tuple[float, float, float, float, float],
) -> float:
    """Write the Adam update of 1-D arrays into ``out``; return a finiteness probe.

    The operations follow Keras's order, m + (g - m)(1 - beta_1) and
    v + (g^2 - v)(1 - beta_2), so float32 results match Keras's to a few ulps.
    ``v_scale`` is 1 (Keras form) or 1/(1 - beta_2^t) (paper form).

    The probe adds, per block, the sum of the new theta and the maximum of
    sqrt(v) + eps, both taken while the block is in cache. It is finite unless
    an output is non-finite (NaN or inf in theta, m or the step reaches the
    sum; in v, the maximum) or the float sum overflowed. It is also NaN when a
    block of the old v holds a negative value, which the update may otherwise
    hide (a tiny negative v plus a large g**2 is positive).
    """
    new_th, new_m, new_v = out
    c1, c2, step, eps, v_scale = coefficients
    scratch = np.empty(min(_BLOCK, th.size), dtype=th.dtype)
    total = 0.0
    # Non-finite values are reported as a ValueError afterwards; NumPy's
    # warnings would only repeat it.
    with np.errstate(all="ignore"):
        for start in range(0, th.size, _BLOCK):
            stop = min(start + _BLOCK, th.size)
            # 12 passes over cache-resident slices, then the probe: two light
            # ones (einsum's float32 sum measured twice as fast as np.add.reduce's).
            gb, mb, vb = g[start:stop], m[start:stop], v[start:stop]
            mo, vo, to, s = (
                new_m[start:stop],
                new_v[start:stop],
                new_th[start:stop],
                scratch[: stop - start],
            )
            np.subtract(gb, mb, out=mo)
            mo *= c1
            mo += mb
            np.multiply(gb, gb, out=vo)
            vo -= vb
            vo *= c2
            vo += vb
            if v_scale == 1.0:
                np.sqrt(vo, out=s)
            else:
                np.multiply(vo, v_scale, out=s)
                np.sqrt(s, out=s)
            s += eps
            np.multiply(mo, step, out=to)
            np.divide(to, s, out=to)
            np.subtract(th[start:stop], to, out=to)
            total += float(np.einsum("i->", to)) + float(np.maximum.reduce(s))
            if np.minimum.reduce(vb) < 0:
                total = math.nan
    return total


# --8<-- [start:adam_step]
def adam_step(
    theta: ArrayLike,
    grad: ArrayLike,
    state: AdamState,
    *,
    learning_rate: float = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    form: Literal["keras", "paper"] = "keras",
    out: tuple[FloatArray, FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, AdamState]:
    r"""One Adam step, in Keras's form (default) or the paper's Algorithm 1.

    Both forms update the moments the same way, with $t$ the new step count:

    $$
    m_t = \beta_1 m_{t-1} + (1-\beta_1)\,g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2
    $$

    Keras form (``form="keras"``): bias correction folded into the step size,
    $\hat\epsilon$ added to the *uncorrected* $\sqrt{v_t}$:

    $$
    \alpha_t = \alpha\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}, \qquad
    \theta_t = \theta_{t-1} - \alpha_t\,\frac{m_t}{\sqrt{v_t} + \hat\epsilon}
    $$

    Paper form (``form="paper"``, Kingma and Ba 2015, Algorithm 1):

    $$
    \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad
    \hat v_t = \frac{v_t}{1-\beta_2^t}, \quad
    \theta_t = \theta_{t-1} - \alpha\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
    $$

    Spec: eq-adam

    The identity linking them: the two forms take exactly the same step when
    $\epsilon_{\text{paper}} = \hat\epsilon / \sqrt{1-\beta_2^t}$, because
    $\alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon) =
    \alpha_t m_t / (\sqrt{v_t} + \epsilon\sqrt{1-\beta_2^t})$. With the same
    $\epsilon$ they differ only while $\sqrt{v_t}$ is comparable to $\epsilon$.
    In the Keras form every element's first step has $|\Delta\theta| \le \alpha$.

    The work runs in cache-sized blocks, so each array is read or written once;
    float32 stays float32. By default the results go into fresh arrays. For
    large models, filling fresh memory is a sizeable part of the step (the
    operating system must map and zero every page), so a training loop can
    pass ``out=(theta_out, m_out, v_out)`` instead: arrays it owns
    and no longer needs, typically those of two steps ago (double buffering,
    see the example). The results are bit-for-bit the same either way.

    Matches: ``keras.optimizers.Adam`` (Keras 3, ``amsgrad=False``): the same
    moment updates, the same step-size folding and $\hat\epsilon = 10^{-7}$.

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR
        2015 (arXiv:1412.6980), Algorithm 1 and the remark in section 2.

    Args:
        theta: Parameters.
        grad: Gradient at ``theta``, the same shape.
        state: Moments and step count from `adam_init` or the last step.
        learning_rate: $\alpha > 0$.
        beta_1: First-moment decay, in [0, 1).
        beta_2: Second-moment decay, in [0, 1).
        epsilon: $\hat\epsilon$ (Keras form) or $\epsilon$ (paper form), > 0.
        form: ``"keras"`` or ``"paper"``.
        out: Optional ``(theta_out, m_out, v_out)`` to write the results into,
            like NumPy's ``out=``: each with theta's shape and floating dtype,
            writable and C-contiguous, no two sharing memory, and none sharing
            memory with ``theta``, ``grad``, ``state.m`` or ``state.v``. If a
            ValueError is raised after the checks, their contents are
            unspecified.

    Returns:
        ``(theta, state)`` after the step, with ``t`` increased by one: new
        arrays, or the arrays of ``out`` (``theta is out[0]``,
        ``state.m is out[1]``, ``state.v is out[2]``). Nothing passed in is
        modified.

    Raises:
        ValueError: Shape mismatches, empty input, a non-numeric dtype, NaN/inf,
            an input or result that overflows the parameters' dtype, a learning
            rate that is not a finite positive number, a beta outside [0, 1), an
            epsilon that is not a finite positive number, a ``state`` that is
            not an `AdamState`, a negative step count or second moment (any
            element of ``state.v`` below 0), an unknown form, or an unsuitable
            ``out`` (the message names it).

    Examples:
        >>> state = adam_init([1.0, 1.0])
        >>> theta, state = adam_step([1.0, 1.0], [0.5, -2.0], state, learning_rate=0.1)
        >>> theta.round(8), state.m, state.v, state.t
        (array([0.90000063, 1.09999984]), array([ 0.05, -0.2 ]), array([0.00025, 0.004  ]), 1)

        The paper's form with the same epsilon, then with the epsilon of the identity:

        >>> start = adam_init([1.0, 1.0])
        >>> theta, _ = adam_step([1.0, 1.0], [0.5, -2.0], start, learning_rate=0.1, form="paper")
        >>> [float(x) for x in theta.round(9)]
        [0.90000002, 1.099999995]
        >>> eps_paper = 1e-7 / math.sqrt(1 - 0.999)
        >>> theta, _ = adam_step(
        ...     [1.0, 1.0], [0.5, -2.0], start, learning_rate=0.1, epsilon=eps_paper, form="paper"
        ... )
        >>> theta.round(8)
        array([0.90000063, 1.09999984])

        A training loop with double buffering: step ``k`` writes into the
        arrays of step ``k - 2``, which nothing needs any more, so after the
        first two steps no fresh memory is touched:

        >>> grads = np.array([[0.5, -2.0], [0.25, 1.0], [-1.0, 0.5]], np.float32)
        >>> theta, state = np.ones(2, np.float32), adam_init(np.ones(2, np.float32))
        >>> buffers = [tuple(np.empty_like(theta) for _ in range(3)) for _ in range(2)]
        >>> for k, grad in enumerate(grads):
        ...     theta, state = adam_step(theta, grad, state, learning_rate=0.1, out=buffers[k % 2])
        >>> theta, state.t, theta is buffers[0][0]
        (array([0.82741886, 1.1327723 ], dtype=float32), 3, True)

        The same as without ``out``:

        >>> fresh, fresh_state = np.ones(2, np.float32), adam_init(np.ones(2, np.float32))
        >>> for grad in grads:
        ...     fresh, fresh_state = adam_step(fresh, grad, fresh_state, learning_rate=0.1)
        >>> [np.array_equal(a, b) for a, b in [(fresh, theta), (fresh_state.v, state.v)]]
        [True, True]

        Writing over an input is refused:

        >>> adam_step(theta, grads[0], state, out=(theta, *buffers[1][1:]))
        Traceback (most recent call last):
        ...
        ValueError: out[0] (theta) shares memory with theta; inputs are never overwritten
    """
    lr = _learning_rate(learning_rate)
    b1 = _unit_interval(beta_1, "beta_1", closed=False)
    b2 = _unit_interval(beta_2, "beta_2", closed=False)
    eps = _real(epsilon, "epsilon")
    if not (math.isfinite(eps) and eps > 0.0):
        raise ValueError(f"epsilon must be finite and > 0, got {epsilon!r}")
    if not (isinstance(form, str) and form in ("keras", "paper")):
        raise ValueError(f"form must be 'keras' or 'paper', got {form!r}")
    if not isinstance(state, AdamState):
        raise ValueError(f"state must be an AdamState, got {type(state).__name__}")
    if isinstance(state.t, bool) or not isinstance(state.t, int | np.integer) or state.t < 0:
        raise ValueError(f"state.t must be a non-negative integer, got {state.t!r}")
    given = {
        "theta": np.asarray(theta),
        "grad": np.asarray(grad),
        "state.m": np.asarray(state.m),
        "state.v": np.asarray(state.v),
    }
    th = _params(given["theta"])
    g = _like(given["grad"], th, "grad")
    m = _like(given["state.m"], th, "state.m")
    v = _like(given["state.v"], th, "state.v")
    labels = ("out[0] (theta)", "out[1] (m)", "out[2] (v)")
    new_th, new_m, new_v = _outputs(out, labels, th, given)

    t = int(state.t) + 1
    bias_1 = 1.0 - b1**t
    bias_2 = 1.0 - b2**t
    if form == "keras":
        coefficients = (1.0 - b1, 1.0 - b2, lr * math.sqrt(bias_2) / bias_1, eps, 1.0)
    else:
        coefficients = (1.0 - b1, 1.0 - b2, lr / bias_1, eps, 1.0 / bias_2)

    # The outputs are C-contiguous, so their flat reshapes are views.
    th1, g1, m1, v1, th2, m2, v2 = (a.reshape(-1) for a in (th, g, m, v, new_th, new_m, new_v))
    total = _adam_blocks(th1, g1, m1, v1, (th2, m2, v2), coefficients)
    if not math.isfinite(total) and np.any(v < 0):
        raise ValueError("state.v must be non-negative (it is a mean of squares)")
    _check_finite(
        {"theta": new_th, "state.m": new_m, "state.v": new_v},
        total,
        {
            "theta": (given["theta"], th),
            "grad": (given["grad"], g),
            "state.m": (given["state.m"], m),
            "state.v": (given["state.v"], v),
        },
    )
    return new_th, AdamState(m=new_m, v=new_v, t=t)


# --8<-- [end:adam_step]
