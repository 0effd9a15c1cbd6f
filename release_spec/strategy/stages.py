"""Stages as an explicit state machine, the retry loop, and the release stage's steps.

A stage moves through ``planned → running → passed / failed → released /
rolled_back``. `transition` is the only way to change state and it
refuses every move not in `ALLOWED`, so a stage cannot be released
without having passed, nor retried after it was released. ``failed →
running`` is the retry of the iterative optimisation.

Training stages run `run_stage`: train with the current
hyperparameters, judge the gates, and on a failure `diagnose` what the
figures show (forgetting, over-fitting or under-fitting), `adjust` the
hyperparameters for that cause and try again, up to ``max_attempts``. Every
attempt is recorded with its reason, hyperparameters, gates and figures.
Because a failure here drives a retry, `run_stage` refuses a gate that read
a test split (`release_spec.strategy.gates.is_test_split`): the test split is read
once, by the release stage's final gate.

The release stage runs `run_release`: a sequence of
`ReleaseStep` objects (functional, performance, stability, and any
step a later component inserts, such as a phased rollout) in order; the
first failing step stops the stage, and the steps after it are recorded as
skipped. A step's ``on_failure`` says whether its failure leaves the stage
``failed`` (an offline gate stopped it) or ``rolled_back`` (live traffic was
taken back from the candidate).

Plain Python over metrics and gate results: no TensorFlow.

Examples:
    >>> rec = StageRecord("pretrain")
    >>> rec = transition(transition(rec, State.RUNNING), State.PASSED)
    >>> [s.value for s in rec.history]
    ['planned', 'running', 'passed']
    >>> transition(rec, State.RUNNING)
    Traceback (most recent call last):
    ...
    release_spec.strategy.stages.IllegalTransitionError: stage 'pretrain': passed -> running is not allowed
"""  # noqa: E501

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Generic, Literal, TypeVar

from release_spec.strategy.gates import GateResult, is_test_split

__all__ = [
    "ALLOWED",
    "Attempt",
    "AttemptOutcome",
    "Diagnosis",
    "Hyperparameters",
    "IllegalTransitionError",
    "ReleaseStep",
    "StageRecord",
    "State",
    "TrainingCurves",
    "adjust",
    "diagnose",
    "run_release",
    "run_stage",
    "transition",
]

T = TypeVar("T")


class State(str, Enum):
    """A stage's state."""

    PLANNED = "planned"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    RELEASED = "released"
    ROLLED_BACK = "rolled_back"


#: Legal moves. ``running -> rolled_back``: a rollout step took the canary's
#: traffic back; ``released -> rolled_back``: production was rolled back later.
ALLOWED: Mapping[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.RUNNING}),
    State.RUNNING: frozenset({State.PASSED, State.FAILED, State.ROLLED_BACK}),
    State.FAILED: frozenset({State.RUNNING}),
    State.PASSED: frozenset({State.RELEASED}),
    State.RELEASED: frozenset({State.ROLLED_BACK}),
    State.ROLLED_BACK: frozenset(),
}


class IllegalTransitionError(ValueError):
    """A state change that `ALLOWED` does not permit."""


@dataclass(frozen=True)
class Hyperparameters:
    """What the retry loop may adjust between attempts.

    Attributes:
        learning_rate: Adam's step size.
        epochs: passes over the training data (upper bound with early stopping).
        batch_size: mini-batch size.
        l2: L2 penalty on the kernels (0 = none).
        early_stopping: stop on the best validation loss (patience 2).
        replay: fraction of source-domain examples mixed into fine-tuning data,
            relative to the target training set (rehearsal against forgetting).
    """

    learning_rate: float
    epochs: int
    batch_size: int
    l2: float = 0.0
    early_stopping: bool = False
    replay: float = 0.0

    def to_dict(self) -> dict[str, float | int | bool]:
        """A JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class TrainingCurves:
    """Per-epoch accuracy and loss on the training and validation data."""

    train_accuracy: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    train_loss: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    """The cause a failed attempt shows, and the figures that show it."""

    cause: Literal["forgetting", "over-fitting", "under-fitting"]
    evidence: str


@dataclass(frozen=True)
class Attempt:
    """One training-and-judging attempt (or the release stage's single pass)."""

    number: int
    reason: str
    hyperparameters: Hyperparameters | None
    gates: tuple[GateResult, ...]
    figures: Mapping[str, float]
    diagnosis: Diagnosis | None
    seconds: float

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "number": self.number,
            "reason": self.reason,
            "hyperparameters": self.hyperparameters.to_dict() if self.hyperparameters else None,
            "passed": self.passed,
            "gates": [g.to_dict() for g in self.gates],
            "figures": dict(self.figures),
            "diagnosis": (
                {"cause": self.diagnosis.cause, "evidence": self.diagnosis.evidence}
                if self.diagnosis
                else None
            ),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class StageRecord:
    """A stage's state, the states it went through, its attempts and skipped steps."""

    name: str
    state: State = State.PLANNED
    history: tuple[State, ...] = (State.PLANNED,)
    attempts: tuple[Attempt, ...] = ()
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def gates(self) -> tuple[GateResult, ...]:
        """The gates of the last attempt."""
        return self.attempts[-1].gates if self.attempts else ()

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        """The gates of the last attempt that failed."""
        return tuple(g for g in self.gates if not g.passed)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: the final gates at top level, every attempt below."""
        return {
            "name": self.name,
            "state": self.state.value,
            "history": [s.value for s in self.history],
            "gates": [g.to_dict() for g in self.gates],
            "attempts": [a.to_dict() for a in self.attempts],
            "skipped": list(self.skipped),
            "notes": list(self.notes),
        }


# --8<-- [start:transition]
def transition(record: StageRecord, to: State) -> StageRecord:
    """Move ``record`` to state ``to``; raise `IllegalTransitionError` if not allowed."""
    if to not in ALLOWED[record.state]:
        raise IllegalTransitionError(
            f"stage {record.name!r}: {record.state.value} -> {to.value} is not allowed"
        )
    return replace(record, state=to, history=(*record.history, to))


# --8<-- [end:transition]


# --8<-- [start:diagnose]
def diagnose(
    failed: Sequence[GateResult],
    curves: TrainingCurves,
    *,
    overfit_gap: float,
    forgetting_gates: Sequence[str] = ("finetune.no_forgetting",),
) -> Diagnosis:
    """Name the cause of a failed attempt from what the figures show.

    Forgetting when a forgetting gate failed; otherwise over-fitting when the
    final training accuracy exceeds the final validation accuracy by more
    than ``overfit_gap``; otherwise under-fitting (the model does not fit
    even the data it sees well enough).

    Examples:
        >>> c = TrainingCurves((0.80, 0.99), (0.78, 0.90))
        >>> diagnose([], c, overfit_gap=0.05).cause
        'over-fitting'
        >>> diagnose([], TrainingCurves((0.7,), (0.69,)), overfit_gap=0.05).cause
        'under-fitting'
    """
    for g in failed:
        if g.name in forgetting_gates:
            return Diagnosis("forgetting", f"{g.name} failed: {g.detail}")
    if not curves.train_accuracy or not curves.val_accuracy:
        raise ValueError("diagnose needs at least one epoch of training and validation accuracy")
    train, val = curves.train_accuracy[-1], curves.val_accuracy[-1]
    gap = train - val
    if gap > overfit_gap:
        return Diagnosis(
            "over-fitting",
            f"train accuracy {train:.4f} vs validation {val:.4f}: gap {gap:.4f} > {overfit_gap}",
        )
    return Diagnosis(
        "under-fitting",
        f"train accuracy {train:.4f}, validation {val:.4f}: gap {gap:.4f} <= {overfit_gap}, "
        "the model does not fit the training data well enough",
    )


# --8<-- [end:diagnose]


# --8<-- [start:adjust]
def adjust(hp: Hyperparameters, diagnosis: Diagnosis, *, max_epochs: int = 100) -> Hyperparameters:
    """New hyperparameters for the diagnosed cause.

    * under-fitting: 50 % more epochs (up to ``max_epochs``), weaker L2 (÷10);
    * over-fitting: stronger L2 (×10, at least 1e-4) and early stopping;
    * forgetting: half the learning rate, 25 % fewer epochs, and 0.25 more
      source replay (up to 1.0).

    Examples:
        >>> hp = Hyperparameters(learning_rate=1e-3, epochs=10, batch_size=32)
        >>> adjust(hp, Diagnosis("forgetting", "")).to_dict()["replay"]
        0.25
        >>> adjust(hp, Diagnosis("under-fitting", "")).epochs
        15
    """
    if diagnosis.cause == "under-fitting":
        return replace(hp, epochs=min(max_epochs, math.ceil(hp.epochs * 1.5)), l2=hp.l2 / 10)
    if diagnosis.cause == "over-fitting":
        return replace(hp, l2=max(hp.l2 * 10, 1e-4), early_stopping=True)
    return replace(
        hp,
        learning_rate=hp.learning_rate / 2,
        epochs=max(1, math.ceil(hp.epochs * 0.75)),
        replay=min(1.0, hp.replay + 0.25),
    )


# --8<-- [end:adjust]


def _changes(old: Hyperparameters, new: Hyperparameters) -> str:
    diffs = [
        f"{f.name} {getattr(old, f.name)} -> {getattr(new, f.name)}"
        for f in fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]
    return ", ".join(diffs) if diffs else "no change possible"


@dataclass(frozen=True)
class AttemptOutcome(Generic[T]):
    """What one training attempt hands back to `run_stage`."""

    artifact: T
    gates: tuple[GateResult, ...]
    curves: TrainingCurves
    figures: Mapping[str, float] = field(default_factory=dict)


# --8<-- [start:run_stage]
def run_stage(
    name: str,
    hp: Hyperparameters,
    attempt: Callable[[Hyperparameters], AttemptOutcome[T]],
    *,
    max_attempts: int,
    overfit_gap: float,
    max_epochs: int = 100,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[StageRecord, T]:
    """Train and judge, diagnosing and adjusting after each failure, up to ``max_attempts``.

    Returns the stage record (``passed`` or ``failed``) and the artifact of the
    last attempt (the passing one when the stage passed).

    Raises:
        ValueError: ``max_attempts`` < 1, or an attempt returned a gate that
            read a test split (its failure would tune the retries on the test set).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    record = transition(StageRecord(name), State.RUNNING)
    reason = "initial attempt"
    for number in range(1, max_attempts + 1):
        t0 = time.perf_counter()
        out = attempt(hp)
        seconds = time.perf_counter() - t0
        leaked = [f"{g.name} ({g.split})" for g in out.gates if is_test_split(g.split)]
        if leaked:
            raise ValueError(
                f"stage {name!r}: gate {', '.join(leaked)} read a test split; a gate whose "
                "failure drives a retry must read validation data (the test split is read "
                "once, by the final gate)"
            )
        failed = [g for g in out.gates if not g.passed]
        diag = diagnose(failed, out.curves, overfit_gap=overfit_gap) if failed else None
        done = Attempt(number, reason, hp, out.gates, dict(out.figures), diag, seconds)
        record = replace(record, attempts=(*record.attempts, done))
        if on_attempt is not None:
            on_attempt(done)
        if diag is None:
            return transition(record, State.PASSED), out.artifact
        record = transition(record, State.FAILED)
        if number == max_attempts:
            break
        new = adjust(hp, diag, max_epochs=max_epochs)
        reason = f"retry after {diag.cause} ({diag.evidence}); adjusted {_changes(hp, new)}"
        hp = new
        record = transition(record, State.RUNNING)
    return record, out.artifact


# --8<-- [end:run_stage]


@dataclass(frozen=True)
class ReleaseStep:
    """One step of the release stage.

    Attributes:
        name: the step's name (``functional``, ``performance``, ``stability``, ...).
        run: runs the step and returns its gates.
        on_failure: the stage's state when this step fails: ``FAILED`` for an
            offline gate, ``ROLLED_BACK`` for a step that had sent live traffic
            to the candidate and took it back.
    """

    name: str
    run: Callable[[], Sequence[GateResult]]
    on_failure: State = State.FAILED


# --8<-- [start:run_release]
def run_release(
    steps: Sequence[ReleaseStep],
    *,
    name: str = "release",
    on_step: Callable[[str, Sequence[GateResult]], None] | None = None,
) -> StageRecord:
    """Run the release steps in order; stop at the first failing one.

    Returns a record in state ``passed`` (every step passed: the caller
    promotes and moves it to ``released``), ``failed`` or ``rolled_back``
    (per the failing step's ``on_failure``), with all gates run so far in one
    attempt and the names of the steps not run in ``skipped``.
    """
    if not steps:
        raise ValueError("the release stage needs at least one step")
    record = transition(StageRecord(name), State.RUNNING)
    gates: list[GateResult] = []
    t0 = time.perf_counter()
    outcome = State.PASSED
    skipped: tuple[str, ...] = ()
    for i, step in enumerate(steps):
        results = tuple(step.run())
        gates.extend(results)
        if on_step is not None:
            on_step(step.name, results)
        if not all(g.passed for g in results):
            outcome = step.on_failure
            skipped = tuple(s.name for s in steps[i + 1 :])
            break
    reason = "steps: " + ", ".join(s.name for s in steps)
    done = Attempt(1, reason, None, tuple(gates), {}, None, time.perf_counter() - t0)
    record = replace(record, attempts=(done,), skipped=skipped)
    return transition(record, outcome)


# --8<-- [end:run_release]
