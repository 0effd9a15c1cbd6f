"""Benchmark of release_spec.losses and release_spec.optimizers at 10^7 float32.

Targets (issue 2):

* ``mean_squared_error`` of 10^7 float32 pairs: <= 3x one read pass over both
  arrays (``np.add.reduce`` on each), and accurate to 1e-7 relative against a
  float64 reference (recorded as ``rel_error``; the reference is the exact sum
  ``math.fsum`` of the float64 squared differences, a second pass).
* ``adam_step`` on 10^7 float32 parameters: >= 2x faster than eager
  ``keras.optimizers.Adam.apply_gradients`` on a float32 ``keras.Variable``.
  For scale, ``memory_floor_ms`` records the time of the memory traffic a
  pure step cannot avoid (read four arrays, fill three fresh ones) on one
  thread: on this machine it alone is close to half of eager Keras's time.
* The same Adam step compiled with ``tf.function(jit_compile=True)`` is
  reported too. The issue sets no target for it: XLA fuses the whole update
  into one multi-threaded pass that writes the variables in place, while
  ``adam_step`` is pure and must allocate and fill three fresh 40 MB arrays.
  It is given a loose informational bound (``at_most`` 10x) so that a
  regression shows; its row says ``"informational": true``.

How the peers are fed: Keras gets the gradient as a tensor built before the
clock starts and updates its variable in place; ``adam_step`` gets NumPy
arrays and returns new ones (allocation included in its time). Cases are timed
in three alternating rounds (see ``_alternating_medians``), ``max(repeats, 7)``
timed runs each in all, so that load from other processes hits both sides of a
ratio alike.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _timing import Comparison

from release_spec.losses import mean_squared_error
from release_spec.optimizers import adam_init, adam_step

N = 10**7
SEED = 0
MIN_REPEATS = 7


def _alternating_medians(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in alternating rounds.

    Each round runs every function once untimed, then a few timed runs in a
    row. Alternating spreads load from other processes over all sides of a
    ratio; the untimed run absorbs what the previous function leaves behind
    (TensorFlow's worker threads keep spinning for a while after an op and
    would otherwise slow whichever function runs next).
    """
    rounds = 3
    per_round = -(-repeats // rounds)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _mse_cases(repeats: int) -> list[Comparison]:
    rng = np.random.default_rng(SEED)
    y_true = rng.standard_normal(N, dtype=np.float32)
    y_pred = (y_true + 0.1 * rng.standard_normal(N, dtype=np.float32)).astype(np.float32)

    def read_pass() -> None:
        np.add.reduce(y_true)
        np.add.reduce(y_pred)

    times = _alternating_medians(
        {"read": read_pass, "mse": lambda: mean_squared_error(y_true, y_pred)}, repeats
    )
    diff = y_true.astype(np.float64) - y_pred.astype(np.float64)
    reference = math.fsum((diff * diff).tolist()) / N
    ours = mean_squared_error(y_true, y_pred)
    naive32 = float(np.mean(np.square(y_true - y_pred)))
    return [
        Comparison(
            "losses: mean_squared_error (float32)",
            "read pass (np.add.reduce x2)",
            "at_most",
            3.0,
            times["mse"],
            times["read"],
            {
                "n": N,
                "repeats": repeats,
                "rel_error": abs(ours - reference) / reference,
                "rel_error_target": 1e-7,
                "rel_error_float32_np_mean": abs(naive32 - reference) / reference,
            },
        )
    ]


def _adam_cases(repeats: int) -> list[Comparison]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(SEED + 1)
    theta = rng.standard_normal(N, dtype=np.float32)
    grad = rng.standard_normal(N, dtype=np.float32)
    # Start from a state after one step so the timed step is a typical one.
    _, state = adam_step(theta, grad, adam_init(theta))
    grad_tensor = tf.constant(grad)

    eager_var = keras.Variable(theta)
    eager_opt = keras.optimizers.Adam()
    xla_var = keras.Variable(theta)
    xla_opt = keras.optimizers.Adam()
    xla_opt.build([xla_var])

    @tf.function(jit_compile=True)
    def xla_step(g: Any) -> None:
        xla_opt.apply_gradients([(g, xla_var)])

    def memory_floor() -> None:
        # What any pure Adam step must at least do: read theta, grad, m and v
        # once and fill three fresh arrays (one thread).
        for a in (theta, grad, state.m, state.v):
            np.add.reduce(a)
        for _ in range(3):
            np.empty_like(theta).fill(1.0)

    times = _alternating_medians(
        {
            "floor": memory_floor,
            "ours": lambda: adam_step(theta, grad, state),
            "eager": lambda: eager_opt.apply_gradients([(grad_tensor, eager_var)]),
            "xla": lambda: xla_step(grad_tensor),
        },
        repeats,
    )

    check_var = keras.Variable(theta)
    keras.optimizers.Adam().apply_gradients([(grad_tensor, check_var)])
    ours_first, _ = adam_step(theta, grad, adam_init(theta))
    agreement = float(np.max(np.abs(ours_first - np.asarray(check_var))))

    common = {
        "n": N,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "first_step_max_abs_diff": agreement,
        "memory_floor_ms": times["floor"] * 1e3,
    }
    subject = "optimizers: adam_step (float32, pure)"
    return [
        Comparison(
            subject,
            "keras Adam.apply_gradients (eager)",
            "faster_by",
            2.0,
            times["ours"],
            times["eager"],
            dict(common),
        ),
        Comparison(
            subject,
            "keras Adam.apply_gradients (XLA jit)",
            "at_most",
            10.0,
            times["ours"],
            times["xla"],
            {**common, "informational": True},
        ),
    ]


def run(repeats: int) -> list[Comparison]:
    """Time the loss and optimizer targets; ``repeats`` timed runs per case (at least 7)."""
    repeats = max(repeats, MIN_REPEATS)
    return _mse_cases(repeats) + _adam_cases(repeats)
