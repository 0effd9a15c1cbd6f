"""The release plan: a TOML file of thresholds, margins, attempts, epochs, soak size and seed.

The default plan is embedded in the package (``default_plan.toml``, every
key documented there) and is exactly the defaults of the dataclasses below; a
plan file of your own overrides any subset of it. Parsing is strict: an
unknown table or key, a value of the wrong type, or a value out of range is
a :class:`ValueError` that names the key, e.g.
``finetune.epochs: expected an integer >= 1, got 0``.

Plain standard library (``tomllib``, or ``tomli`` on Python 3.10).

Example:
    >>> plan = parse_plan({"seed": 7, "finetune": {"epochs": 4}})
    >>> plan.seed, plan.finetune.epochs, plan.pretrain.epochs
    (7, 4, 20)
    >>> parse_plan({"regression": {"class": 4}})
    Traceback (most recent call last):
    ...
    ValueError: regression.class: unknown key (known: corrupt_class)
    >>> parse_plan({"finetune": {"epochs": 0}})
    Traceback (most recent call last):
    ...
    ValueError: finetune.epochs: expected an integer in [1, 1000], got 0
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SCENARIOS",
    "DataPlan",
    "FinetunePlan",
    "OptimisePlan",
    "Plan",
    "PretrainPlan",
    "RegressionPlan",
    "ReleasePlan",
    "default_plan_text",
    "load_plan",
    "parse_plan",
]


#: What ``release-spec run --scenario`` can run: the plan's pipeline on the embedded data
#: (``default``), or with a harmful candidate (``regression``, see :class:`RegressionPlan`).
SCENARIOS = ("default", "regression")


def _bound(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Any:
    return {"lo": lo, "hi": hi, "open_lo": open_lo}


_FRACTION = _bound(0.0, 1.0)
_POSITIVE = _bound(0.0, None, open_lo=True)
_ALPHA = _bound(0.0, 0.5, open_lo=True)


@dataclass(frozen=True)
class DataPlan:
    """The embedded data set (see :mod:`release_spec.data`)."""

    max_rotation: float = field(default=10.0, metadata=_bound(0.0, 45.0))
    target_train_copies: int = field(default=4, metadata=_bound(1, 16))


@dataclass(frozen=True)
class PretrainPlan:
    """Pre-training on the source domain and its gate."""

    learning_rate: float = field(default=1e-3, metadata=_bound(0.0, 1.0, open_lo=True))
    epochs: int = field(default=20, metadata=_bound(1, 1000))
    batch_size: int = field(default=32, metadata=_bound(1, 100_000))
    max_attempts: int = field(default=3, metadata=_bound(1, 20))
    min_accuracy_lower: float = field(default=0.88, metadata=_FRACTION)
    min_macro_f1: float = field(default=0.90, metadata=_FRACTION)


@dataclass(frozen=True)
class FinetunePlan:
    """Fine-tuning on the target domain and its gates."""

    learning_rate: float = field(default=5e-4, metadata=_bound(0.0, 1.0, open_lo=True))
    epochs: int = field(default=10, metadata=_bound(1, 1000))
    batch_size: int = field(default=32, metadata=_bound(1, 100_000))
    replay: float = field(default=0.25, metadata=_FRACTION)
    max_attempts: int = field(default=3, metadata=_bound(1, 20))
    improvement_alpha: float = field(default=0.05, metadata=_ALPHA)
    forgetting_margin: float = field(default=0.05, metadata=_bound(0.0, 1.0))
    forgetting_alpha: float = field(default=0.05, metadata=_ALPHA)


@dataclass(frozen=True)
class ReleasePlan:
    """The release stage's functional, performance and stability gates."""

    noninferiority_margin: float = field(default=0.03, metadata=_bound(0.0, 1.0))
    noninferiority_alpha: float = field(default=0.05, metadata=_ALPHA)
    functional_atol: float = field(default=1e-5, metadata=_bound(0.0, 0.1, open_lo=True))
    soak_predictions: int = field(default=10_000, metadata=_bound(1, 10_000_000))
    soak_batch_size: int = field(default=50, metadata=_bound(1, 100_000))
    max_p99_ms: float = field(default=50.0, metadata=_POSITIVE)
    max_rss_growth_mb: float = field(default=64.0, metadata=_bound(0.0, None))
    confidence: float = field(default=0.95, metadata=_bound(0.5, 1.0, open_lo=True))


@dataclass(frozen=True)
class OptimisePlan:
    """The iterative optimisation's diagnosis threshold and epoch cap."""

    overfit_gap: float = field(default=0.05, metadata=_FRACTION)
    max_epochs: int = field(default=60, metadata=_bound(1, 1000))


@dataclass(frozen=True)
class RegressionPlan:
    """The harmful candidate of ``--scenario regression``."""

    corrupt_class: int = field(default=3, metadata=_bound(0, 9))


@dataclass(frozen=True)
class Plan:
    """A whole release plan: the seed and one section per table."""

    seed: int = field(default=0, metadata=_bound(0, 2**32 - 1))
    data: DataPlan = field(default_factory=DataPlan)
    pretrain: PretrainPlan = field(default_factory=PretrainPlan)
    finetune: FinetunePlan = field(default_factory=FinetunePlan)
    release: ReleasePlan = field(default_factory=ReleasePlan)
    optimise: OptimisePlan = field(default_factory=OptimisePlan)
    regression: RegressionPlan = field(default_factory=RegressionPlan)

    def to_dict(self) -> dict[str, Any]:
        """The plan as nested dicts (the report records it)."""
        return asdict(self)


def _describe(kind: type, meta: Mapping[str, Any]) -> str:
    noun = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        left = "(" if meta.get("open_lo") else "["
        return f"{noun} in {left}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{noun} {'>' if meta.get('open_lo') else '>='} {lo:g}"
    return noun


def _value(key: str, raw: object, kind: type, meta: Mapping[str, Any]) -> object:
    want = _describe(kind, meta)
    if kind is bool:
        ok = isinstance(raw, bool)
    elif kind is int:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    elif kind is float:
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    else:
        ok = isinstance(raw, kind)
    if not ok:
        raise ValueError(f"{key}: expected {want}, got {raw!r}")
    if kind in (int, float):
        assert isinstance(raw, int | float)
        value = float(raw) if kind is float else raw
        lo, hi = meta.get("lo"), meta.get("hi")
        below = lo is not None and (value <= lo if meta.get("open_lo") else value < lo)
        if not math.isfinite(value) or below or (hi is not None and value > hi):
            raise ValueError(f"{key}: expected {want}, got {raw!r}")
        return value
    return raw


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"{prefix}{key}: unknown key (known: {names})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f, kind = known[name], hints[name]
        if is_dataclass(kind):
            if not isinstance(value, Mapping):
                raise ValueError(f"{prefix}{name}: expected a table, got {value!r}")
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _value(f"{prefix}{name}", value, kind, f.metadata)
    return cls(**kwargs)


def parse_plan(data: Mapping[str, Any]) -> Plan:
    """Validate a plan given as nested mappings (parsed TOML) and fill in defaults.

    Raises:
        ValueError: naming the key of the first unknown key, wrong type or
            out-of-range value.
    """
    plan: Plan = _build(Plan, data, "")
    return plan


def default_plan_text() -> str:
    """The embedded default plan, with its comments."""
    return resources.files("release_spec").joinpath("default_plan.toml").read_text("utf-8")


def load_plan(path: Path | str | None = None) -> Plan:
    """Read and validate a TOML plan file; ``None`` gives the embedded default.

    Raises:
        ValueError: the file is missing or unreadable, is not valid TOML, or
            fails validation (the message names the file and the key).
    """
    if path is None:
        return parse_plan(tomllib.loads(default_plan_text()))
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"plan {p}: cannot read: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"plan {p}: invalid TOML: {exc}") from exc
    try:
        return parse_plan(data)
    except ValueError as exc:
        raise ValueError(f"plan {p}: {exc}") from exc
