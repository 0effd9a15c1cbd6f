"""The report.json schema as dataclasses: `Report` and its sections, with `to_json` / `from_json`.

A run builds a `Report`; `release_spec.workbench.report.write_report` writes
it as ``report.json`` (``Report.to_json``) next to report.md and the
figures; a reader gets it back, checked field by field, with
`Report.from_json`. The JSON Schema published with the site
(``docs/release/report-schema.json``) is `json_schema` of `Report`, derived
from the same type hints, so the three cannot disagree.

Sections that are the strategy layer's own records are used as they are:
the gates (`release_spec.strategy.gates.GateResult`), the soak
(`release_spec.strategy.gates.SoakSummary`), monitoring's recall rows and
alerts, the monitoring thresholds and the plan itself. The rollout's
sections are the report's own, so that report.json keeps its keys (``share``,
a percent) whatever the controller's records call them.

How values are written: a dataclass as an object with one key per field, in
field order; an Enum as its value; a tuple (a named tuple too) as an array; a float that is not
finite (a gate may measure an infinite deviation) as null, which is read
back as NaN. Every key is always present; a section that did not happen is
null.

Examples:
    >>> end = RolloutEnd(step=0, share=1.0, reason="judge rejected", canary_requests=11)
    >>> to_json(end)
    {'step': 0, 'share': 1.0, 'reason': 'judge rejected', 'canary_requests': 11}
    >>> from_json(RolloutEnd, to_json(end)) == end
    True
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypeAlias, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np

from release_spec.strategy.gates import GateResult, SoakSummary
from release_spec.strategy.monitoring import Alert, ClassRecall
from release_spec.strategy.plan import MonitoringPlan, Plan
from release_spec.strategy.rollout import Counts
from release_spec.strategy.stages import Attempt, Diagnosis, Hyperparameters, StageRecord, State

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "ArmCounts",
    "AttemptReport",
    "CandidateReport",
    "DataReport",
    "DriftReport",
    "ForecastReport",
    "ForecastStepReport",
    "Histogram",
    "JsonDocument",
    "JsonObject",
    "JsonValue",
    "MonitoringSection",
    "ProductionReport",
    "ReleasedModel",
    "Report",
    "RolloutEnd",
    "RolloutEventReport",
    "RolloutReport",
    "RolloutStepReport",
    "RolloutVerdict",
    "RunOutcome",
    "StageReport",
    "Timeline",
    "Versions",
    "from_json",
    "json_schema",
    "to_json",
]

#: Version of the report.json layout (see the reference-release page).
REPORT_SCHEMA_VERSION = 1

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonObject: TypeAlias = dict[str, JsonValue]
T = TypeVar("T")


class RunOutcome(str, Enum):
    """What a run ended with; ``release-spec run`` maps it to its exit code.

    ``released``: every gate and rollout step passed, the candidate is
    production. ``unchanged``: the fine-tuned candidate has production's
    weights, nothing was registered or rolled out. ``stopped``: an offline
    gate failed. ``held``: the rollout ended without evidence either way.
    ``rolled_back``: the rollout's judge found harm.
    """

    RELEASED = "released"
    UNCHANGED = "unchanged"
    STOPPED = "stopped"
    HELD = "held"
    ROLLED_BACK = "rolled_back"

    @property
    def exit_code(self) -> int:
        """The exit code of ``release-spec run``: 0 nothing to fix, 3 a bad candidate, 4 undecided.

        0: released, or nothing to release; 3: a gate stopped the candidate or
        the rollout found harm; 4: the rollout ran out of traffic before it
        could promote or reject the candidate.

        Examples:
            >>> RunOutcome.ROLLED_BACK.exit_code
            3
        """
        if self in (RunOutcome.RELEASED, RunOutcome.UNCHANGED):
            return 0
        return 4 if self is RunOutcome.HELD else 3


#: Why a finished rollout ended (see `release_spec.workbench.release.rollout_verdict`).
RolloutVerdict = Literal["completed", "harm", "undecided"]


@dataclass(frozen=True)
class Versions:
    """Package versions the run used."""

    release_spec: str
    keras: str


@dataclass(frozen=True)
class AttemptReport:
    """One attempt of a stage: its hyperparameters, gates, figures, diagnosis and time."""

    number: int
    reason: str
    hyperparameters: Hyperparameters | None
    passed: bool
    gates: tuple[GateResult, ...]
    figures: dict[str, float]
    diagnosis: Diagnosis | None
    seconds: float

    @classmethod
    def of(cls, a: Attempt) -> AttemptReport:
        """The report's view of an `Attempt` (its time rounded to the millisecond)."""
        return cls(
            a.number,
            a.reason,
            a.hyperparameters,
            a.passed,
            a.gates,
            dict(a.figures),
            a.diagnosis,
            round(a.seconds, 3),
        )


@dataclass(frozen=True)
class StageReport:
    """One stage run: its state, the states it passed through, final gates and attempts."""

    name: str
    state: State
    history: tuple[State, ...]
    gates: tuple[GateResult, ...]
    attempts: tuple[AttemptReport, ...]
    skipped: tuple[str, ...]
    notes: tuple[str, ...]

    @classmethod
    def of(cls, rec: StageRecord) -> StageReport:
        """The report's view of a `StageRecord` (the final attempt's gates at top level)."""
        attempts = tuple(AttemptReport.of(a) for a in rec.attempts)
        return cls(rec.name, rec.state, rec.history, rec.gates, attempts, rec.skipped, rec.notes)


@dataclass(frozen=True)
class ProductionReport:
    """Production after the run, and before it (null on a new store)."""

    version: str | None
    sha256: str | None
    before: str | None
    baseline_promoted: bool
    candidate_promoted: bool


@dataclass(frozen=True)
class CandidateReport:
    """The registered candidate; for ``unchanged``, production's version and sha256."""

    version: str
    sha256: str
    identical_to_production: bool


@dataclass(frozen=True)
class ReleasedModel:
    """The released model's target-test accuracy with its Wilson interval."""

    version: str
    target_test_accuracy: float
    interval: tuple[float, float]
    confidence: float
    n: int


@dataclass(frozen=True)
class DataReport:
    """sha256 of every array of the data set, and the size of every split."""

    hashes: dict[str, str]
    sizes: dict[str, int]


@dataclass(frozen=True)
class ArmCounts:
    """Requests and errors per arm."""

    canary_requests: int
    canary_errors: int
    baseline_requests: int
    baseline_errors: int

    @classmethod
    def of(cls, c: Counts) -> ArmCounts:
        """The four counts of a `release_spec.strategy.rollout.Counts`."""
        return cls(c.canary_requests, c.canary_errors, c.baseline_requests, c.baseline_errors)


@dataclass(frozen=True)
class RolloutStepReport:
    """One planned step: the canary's share (percent), its minimum and its bake."""

    share: float
    min_canary_requests: int
    max_bake_minutes: float


@dataclass(frozen=True)
class ForecastStepReport:
    """One analysed step: the canary requests its bake brings against what the judge needs."""

    step: int
    share: float
    expected_canary_requests: float
    required_canary_requests: int
    min_canary_requests: int
    warning: str | None


@dataclass(frozen=True)
class ForecastReport:
    """The planner: the regression to detect, and per analysed step what the bake brings."""

    baseline_error: float
    regression: float
    steps: tuple[ForecastStepReport, ...]


@dataclass(frozen=True)
class RolloutEventReport:
    """A decision of the controller, with the minute of live traffic it came at."""

    kind: str
    look: int
    minutes: float
    step: int
    share_before: float
    share_after: float
    reason: str
    p_value: float
    upper_bound: float
    counts: ArmCounts


@dataclass(frozen=True)
class RolloutEnd:
    """Where the canary stood when it was taken back, and how much traffic it had served."""

    step: int
    share: float
    reason: str
    canary_requests: int


@dataclass(frozen=True)
class Timeline:
    """Per look: the clock, the canary's share and the judge's evidence."""

    look: tuple[int, ...]
    minutes: tuple[float, ...]
    share: tuple[float, ...]
    p_value: tuple[float, ...]
    upper_bound: tuple[float, ...]


@dataclass(frozen=True)
class RolloutReport:
    """The phased rollout: plan, forecast, final evidence, verdict, events and timeline."""

    status: str
    candidate: str
    production: str
    alpha: float
    margin: float
    steps: tuple[RolloutStepReport, ...]
    forecast: ForecastReport
    live_requests: int
    live_class_counts: tuple[int, ...]
    requests_served: int
    counts: ArmCounts
    p_value: float
    upper_bound: float
    verdict: RolloutVerdict
    rolled_back: RolloutEnd | None
    held: RolloutEnd | None
    events: tuple[RolloutEventReport, ...]
    timeline: Timeline


@dataclass(frozen=True)
class Histogram:
    """Shared bin edges and the fraction of each sample per bin."""

    edges: tuple[float, ...]
    reference: tuple[float, ...]
    live: tuple[float, ...]


@dataclass(frozen=True)
class DriftReport:
    """Drift of one feature summary, with the histograms the drift figure draws."""

    feature: str
    psi: float
    ks_statistic: float
    ks_p_value: float
    ks_p_adjusted: float
    histogram: Histogram


@dataclass(frozen=True)
class MonitoringSection:
    """The model monitored on the live pool: drift per summary, recall windows, alerts."""

    model: str
    reference: str
    thresholds: MonitoringPlan
    drift: tuple[DriftReport, ...]
    recall: tuple[ClassRecall, ...]
    alerts: tuple[Alert, ...]


D = TypeVar("D", bound="JsonDocument")


class JsonDocument:
    """A dataclass written as one JSON object, with `to_json` and `from_json` as methods.

    Examples:
        >>> @dataclass(frozen=True)
        ... class Pair(JsonDocument):
        ...     low: float
        ...     high: float
        >>> Pair(1.0, math.inf).to_json()
        {'low': 1.0, 'high': None}
        >>> Pair.from_json({"low": 1.0, "high": 2.0})
        Pair(low=1.0, high=2.0)
    """

    def to_json(self) -> JsonObject:
        """The JSON object (non-finite floats as null)."""
        out = to_json(self)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_json(cls: type[D], data: Mapping[str, JsonValue]) -> D:
        """Read back from its JSON object, every value checked; ValueError names a bad key."""
        return from_json(cls, dict(data))


@dataclass(frozen=True)
class Report(JsonDocument):
    """Everything report.json holds (see `release_spec.workbench.report` for each key)."""

    schema_version: int
    outcome: RunOutcome
    scenario: str
    seed: int
    started: str
    seconds: float
    versions: Versions
    stages: tuple[StageReport, ...]
    failed_gates: tuple[str, ...]
    production: ProductionReport
    candidate: CandidateReport | None
    released_model: ReleasedModel | None
    soak: SoakSummary | None
    data: DataReport
    plan: Plan
    rollout: RolloutReport | None
    monitoring: MonitoringSection | None
    figures: tuple[str, ...]


def to_json(obj: object, *, null_non_finite: bool = True) -> JsonValue:
    """A dataclass tree as JSON values: objects in field order, Enums by value, tuples as
    arrays, and non-finite floats as null (kept as they are with ``null_non_finite=False``,
    for report.md and the figures, which print them).

    Examples:
        >>> to_json(ArmCounts(10, 1, 90, 2))
        {'canary_requests': 10, 'canary_errors': 1, 'baseline_requests': 90, 'baseline_errors': 2}
        >>> to_json((1.5, math.inf)), to_json((1.5, math.inf), null_non_finite=False)
        ([1.5, None], [1.5, inf])
    """

    def walk(obj: object) -> JsonValue:
        if isinstance(obj, Enum):
            return walk(obj.value)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: walk(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if obj is None or isinstance(obj, bool | str):
            return obj
        if isinstance(obj, int | np.integer):
            return int(obj)
        if isinstance(obj, float | np.floating):
            return float(obj) if math.isfinite(obj) or not null_non_finite else None
        if isinstance(obj, Mapping):
            return {str(k): walk(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [walk(v) for v in obj]
        raise TypeError(f"cannot write {type(obj).__name__} to report.json")

    return walk(obj)


def from_json(cls: type[T], data: JsonValue) -> T:
    """Read ``data`` back as a ``cls`` (a dataclass), checking every value against its type.

    Raises:
        ValueError: a missing or unknown key, or a value of the wrong type; the
            message names the path, e.g. ``report.rollout.counts.canary_errors``.

    Examples:
        >>> from_json(ArmCounts, {"canary_requests": 10, "canary_errors": 1,
        ...                       "baseline_requests": 90, "baseline_errors": "2"})
        Traceback (most recent call last):
        ...
        ValueError: report.baseline_errors: expected an integer, got '2'
    """
    out = _read(cls, data, "report")
    if not isinstance(out, cls):
        raise TypeError(f"report: {cls.__name__} expected")
    return out


def _read(tp: object, v: JsonValue, path: str) -> object:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"{path}: no JSON form for {tp!r}")
        return _read(rest[0], v, path)
    if origin is Literal:
        if v not in args:
            raise ValueError(f"{path}: expected one of {list(args)}, got {v!r}")
        return v
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(v)
        except ValueError:
            raise ValueError(
                f"{path}: expected one of {[m.value for m in tp]}, got {v!r}"
            ) from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise ValueError(f"{path}: expected an object, got {v!r}")
        fields = {f.name for f in dataclasses.fields(tp)}
        if set(v) != fields:
            missing, unknown = sorted(fields - set(v)), sorted(set(v) - fields)
            raise ValueError(f"{path}: missing keys {missing}, unknown keys {unknown}")
        hints = get_type_hints(tp)
        return tp(**{k: _read(hints[k], v[k], f"{path}.{k}") for k in fields})
    if _is_named_tuple(tp):
        assert isinstance(tp, type)
        hints, names = get_type_hints(tp), _fields(tp)
        if not isinstance(v, list) or len(v) != len(names):
            raise ValueError(f"{path}: expected an array of {len(names)} items, got {v!r}")
        pairs = enumerate(zip(names, v, strict=True))
        values = [_read(hints[n], x, f"{path}[{i}]") for i, (n, x) in pairs]
        return tp(*values)
    if origin in (tuple, list):
        if not isinstance(v, list):
            raise ValueError(f"{path}: expected an array, got {v!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(v) != len(args):
                raise ValueError(f"{path}: expected {len(args)} items, got {len(v)}")
            return tuple(
                _read(a, x, f"{path}[{i}]") for i, (a, x) in enumerate(zip(args, v, strict=True))
            )
        items = [_read(args[0], x, f"{path}[{i}]") for i, x in enumerate(v)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(v, dict):
            raise ValueError(f"{path}: expected an object, got {v!r}")
        return {k: _read(args[1], x, f"{path}.{k}") for k, x in v.items()}
    return _scalar(tp, v, path)


def _scalar(tp: object, v: JsonValue, path: str) -> object:
    if tp is float:
        if v is None:
            return math.nan
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        raise ValueError(f"{path}: expected a number, got {v!r}")
    kinds: dict[object, tuple[type, str]] = {
        int: (int, "an integer"),
        bool: (bool, "true or false"),
        str: (str, "a string"),
    }
    if tp not in kinds:
        raise TypeError(f"{path}: no JSON form for {tp!r}")
    kind, noun = kinds[tp]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ValueError(f"{path}: expected {noun}, got {v!r}")
    return v


def _is_named_tuple(tp: object) -> bool:
    """A `typing.NamedTuple` class (written as an array of its fields, in order)."""
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _fields(tp: type) -> tuple[str, ...]:
    names: tuple[str, ...] = tp._fields  # type: ignore[attr-defined]
    return names


def json_schema(cls: type, *, title: str | None = None) -> JsonObject:
    """The JSON Schema (draft 2020-12) of a dataclass tree, one ``$defs`` entry per class.

    Every key is required and no other key is allowed; a float may be null
    (how a non-finite value is written). ``title`` defaults to
    ``release-spec <class name>.json``.

    Examples:
        >>> json_schema(ArmCounts)["$defs"]["ArmCounts"]["required"][:2]
        ['canary_requests', 'canary_errors']
    """
    defs: dict[str, JsonValue] = {}
    root = _schema(cls, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title or f"release-spec {cls.__name__.lower()}.json",
        **(root if isinstance(root, dict) else {}),
        "$defs": dict(sorted(defs.items())),
    }


def _schema(tp: object, defs: dict[str, JsonValue]) -> JsonObject:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a, defs) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if tp is type(None):
        return {"type": "null"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # a placeholder, in case a class refers to itself
            hints = get_type_hints(tp)
            names = [f.name for f in dataclasses.fields(tp)]
            defs[name] = {
                "type": "object",
                "description": (tp.__doc__ or name).strip().splitlines()[0],
                "properties": {k: _schema(hints[k], defs) for k in names},
                "required": list(names),
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    if _is_named_tuple(tp):
        assert isinstance(tp, type)
        hints = get_type_hints(tp)
        args, origin = tuple(hints[name] for name in _fields(tp)), tuple
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        items: list[JsonValue] = [_schema(a, defs) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
    if origin in (tuple, list):
        return {"type": "array", "items": _schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], defs)}
    kinds: dict[object, JsonValue] = {
        float: ["number", "null"],
        int: "integer",
        bool: "boolean",
        str: "string",
    }
    if tp not in kinds:
        raise TypeError(f"no JSON Schema for {tp!r}")
    return {"type": kinds[tp]}


if __name__ == "__main__":  # pragma: no cover - writes docs/release/report-schema.json
    import json
    import sys

    sys.stdout.write(json.dumps(json_schema(Report), indent=2) + "\n")
