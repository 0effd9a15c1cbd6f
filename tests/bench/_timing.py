"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], repeats: int, *, untimed_each_round: bool = False
) -> dict[str, float]:
    """Median seconds of each function, timed round-robin so load hits every side of a ratio.

    Without ``untimed_each_round`` every function runs once untimed before the
    first round; with it, each round runs every function untimed and then
    timed: the untimed run absorbs what the previous function leaves behind
    (TensorFlow's worker threads keep spinning for a while after an op and
    would otherwise slow whichever function runs next).
    """
    if not untimed_each_round:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if untimed_each_round:
                fn()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


@dataclass
class Comparison:
    """One target: the subject's median against a peer's, with the required ratio.

    ``kind`` is ``"at_most"`` (subject / peer must not exceed ``bound``, e.g.
    "<= 3x the read pass") or ``"faster_by"`` (peer / subject must reach
    ``bound``, e.g. ">= 25x faster than scikit-learn").
    """

    subject: str
    peer: str
    kind: str
    bound: float
    subject_s: float
    peer_s: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.kind == "at_most":
            return self.subject_s / self.peer_s
        return self.peer_s / self.subject_s

    @property
    def met(self) -> bool:
        return self.ratio <= self.bound if self.kind == "at_most" else self.ratio >= self.bound

    @property
    def target(self) -> str:
        if self.kind == "at_most":
            return f"<= {self.bound:g}x {self.peer}"
        return f">= {self.bound:g}x faster than {self.peer}"

    def as_row(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "peer": self.peer,
            "subject_ms": self.subject_s * 1e3,
            "peer_ms": self.peer_s * 1e3,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            **self.notes,
        }
