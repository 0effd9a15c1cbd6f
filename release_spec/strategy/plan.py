"""The release plan: a TOML file of thresholds, margins, attempts, epochs, soak budget and seed.

The default plan is embedded in the package (``default_plan.toml``, every
key documented there) and is exactly the defaults of the dataclasses below; a
plan file of your own overrides any subset of it. Parsing is strict: an
unknown table or key, a value of the wrong type, or a value out of range is
a `ValueError` that names the key, e.g.
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
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from release_spec.strategy.monitoring import MonitoringThresholds
    from release_spec.strategy.rollout import RolloutPlan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SCENARIOS",
    "DataPlan",
    "FinetunePlan",
    "LiveRegressionPlan",
    "MonitoringPlan",
    "OptimisePlan",
    "PhasedRolloutPlan",
    "Plan",
    "PretrainPlan",
    "RegressionPlan",
    "ReleasePlan",
    "default_plan_text",
    "load_plan",
    "parse_plan",
]


#: What ``release-spec run --scenario`` can run: the plan's pipeline on the embedded data
#: (``default``), or with a harmful candidate (``regression``, see `RegressionPlan`),
#: or with one that passes the offline gates but is worse on the live traffic
#: (``live-regression``, see `LiveRegressionPlan`).
SCENARIOS = ("default", "regression", "live-regression")


def _bound(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Any:
    return {"lo": lo, "hi": hi, "open_lo": open_lo}


_FRACTION = _bound(0.0, 1.0)
_POSITIVE = _bound(0.0, None, open_lo=True)
_ALPHA = _bound(0.0, 0.5, open_lo=True)


@dataclass(frozen=True)
class DataPlan:
    """The embedded data set (see `release_spec.workbench.data`)."""

    max_rotation: float = field(default=5.0, metadata=_bound(0.0, 45.0))
    target_train_copies: int = field(default=8, metadata=_bound(1, 16))


@dataclass(frozen=True)
class PretrainPlan:
    """Pre-training on the source domain and its gate."""

    learning_rate: float = field(default=1e-3, metadata=_bound(0.0, 1.0, open_lo=True))
    epochs: int = field(default=20, metadata=_bound(1, 1000))
    batch_size: int = field(default=32, metadata=_bound(1, 100_000))
    max_attempts: int = field(default=3, metadata=_bound(1, 20))
    min_accuracy_lower: float = field(default=0.88, metadata=_FRACTION)
    min_macro_f1_lower: float = field(default=0.85, metadata=_FRACTION)


@dataclass(frozen=True)
class FinetunePlan:
    """Fine-tuning on the target domain and its gates."""

    learning_rate: float = field(default=5e-4, metadata=_bound(0.0, 1.0, open_lo=True))
    epochs: int = field(default=20, metadata=_bound(1, 1000))
    batch_size: int = field(default=32, metadata=_bound(1, 100_000))
    replay: float = field(default=0.5, metadata=_FRACTION)
    early_stopping: bool = True
    max_attempts: int = field(default=3, metadata=_bound(1, 20))
    improvement_alpha: float = field(default=0.05, metadata=_ALPHA)
    min_macro_f1_lower: float = field(default=0.85, metadata=_FRACTION)
    forgetting_margin: float = field(default=0.05, metadata=_bound(0.0, 1.0))
    forgetting_alpha: float = field(default=0.05, metadata=_ALPHA)


@dataclass(frozen=True)
class ReleasePlan:
    """The release stage's functional, performance and stability gates."""

    noninferiority_margin: float = field(default=0.03, metadata=_bound(0.0, 1.0))
    noninferiority_alpha: float = field(default=0.05, metadata=_ALPHA)
    functional_atol: float = field(default=1e-5, metadata=_bound(0.0, 0.1, open_lo=True))
    soak_seconds: float = field(default=60.0, metadata=_bound(0.0, 86_400.0, open_lo=True))
    soak_max_predictions: int = field(default=3_000_000, metadata=_bound(1, 1_000_000_000))
    soak_batch_size: int = field(default=50, metadata=_bound(1, 100_000))
    soak_callers: int = field(default=4, metadata=_bound(4, 64))
    soak_windows: int = field(default=6, metadata=_bound(2, 1000))
    max_rss_slope_mb_per_min: float = field(default=16.0, metadata=_bound(0.0, None))
    max_latency_drift: float = field(default=1.5, metadata=_bound(1.0, None, open_lo=True))
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
class PhasedRolloutPlan:
    """The phased rollout that ends the release stage (see `release_spec.strategy.rollout`).

    ``shares``, ``min_canary_requests`` and ``max_bake_minutes`` hold one value
    per step; the live pool stands for ``requests_per_minute`` of traffic.
    """

    live_requests: int = field(default=55_000, metadata=_bound(100, 1_000_000))
    batch_size: int = field(default=200, metadata=_bound(1, 100_000))
    requests_per_minute: float = field(default=1000.0, metadata=_POSITIVE)
    shares: tuple[float, ...] = field(
        default=(1.0, 5.0, 25.0, 50.0, 100.0), metadata=_bound(0.0, 100.0, open_lo=True)
    )
    min_canary_requests: tuple[int, ...] = field(
        default=(300, 500, 1000, 1000, 0), metadata=_bound(0, 10_000_000)
    )
    max_bake_minutes: tuple[float, ...] = field(
        default=(240.0, 50.0, 12.0, 10.0, 1.0), metadata=_POSITIVE
    )
    alpha: float = field(default=0.05, metadata=_ALPHA)
    margin: float = field(default=0.03, metadata=_bound(0.0, 0.5))
    on_inconclusive: str = "hold"
    latency_slo_ms: float = field(default=50.0, metadata=_POSITIVE)
    slow_margin: float = field(default=0.03, metadata=_bound(0.0, 0.5))

    def __post_init__(self) -> None:
        n = len(self.shares)
        for name in ("min_canary_requests", "max_bake_minutes"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"phased_rollout.{name}: expected {n} values, one per share, "
                    f"got {len(getattr(self, name))}"
                )
        if self.on_inconclusive not in ("hold", "rollback"):
            raise ValueError(
                f"phased_rollout.on_inconclusive: expected 'hold' or 'rollback', "
                f"got {self.on_inconclusive!r}"
            )
        try:
            self.rollout_plan()
        except ValueError as exc:
            raise ValueError(f"phased_rollout: {exc}") from None

    def rollout_plan(self) -> RolloutPlan:
        """The `RolloutPlan` these values describe."""
        # Imported here so that reading a plan stays standard library only until it is used.
        from release_spec.strategy.rollout import RolloutPlan, RolloutStep

        return RolloutPlan(
            steps=tuple(
                RolloutStep(share, n, bake)
                for share, n, bake in zip(
                    self.shares, self.min_canary_requests, self.max_bake_minutes, strict=True
                )
            ),
            alpha=self.alpha,
            margin=self.margin,
            on_inconclusive="hold" if self.on_inconclusive == "hold" else "rollback",
            latency_slo_ms=self.latency_slo_ms,
            slow_margin=self.slow_margin,
            requests_per_minute=self.requests_per_minute,
        )


@dataclass(frozen=True)
class MonitoringPlan:
    """Drift and per-class recall monitoring (see `release_spec.strategy.monitoring`)."""

    psi_warning: float = field(default=0.1, metadata=_POSITIVE)
    psi_alert: float = field(default=0.25, metadata=_POSITIVE)
    psi_bins: int = field(default=10, metadata=_bound(2, 1000))
    ks_alpha: float = field(default=0.01, metadata=_ALPHA)
    ks_min_statistic: float = field(default=0.1, metadata=_FRACTION)
    recall_alpha: float = field(default=0.05, metadata=_ALPHA)
    recall_window: int = field(default=2000, metadata=_bound(1, 10_000_000))
    min_class_support: int = field(default=20, metadata=_bound(1, 10_000_000))

    def __post_init__(self) -> None:
        try:
            self.thresholds()
        except ValueError as exc:
            raise ValueError(f"monitoring: {exc}") from None

    def thresholds(self) -> MonitoringThresholds:
        """The `MonitoringThresholds` these values describe."""
        from release_spec.strategy.monitoring import MonitoringThresholds

        return MonitoringThresholds(**asdict(self))


@dataclass(frozen=True)
class LiveRegressionPlan:
    """The candidate of ``--scenario live-regression``: broken on a slice the offline sets lack.

    A new intake channel (`release_spec.workbench.data.from_new_channel`: a header bar
    above the digit) went live shortly before this release. Its first
    labelled batch, ``batch_fraction`` of the target training set in size, was
    labelled by a broken tool that gave every image class ``batch_label``;
    fine-tuning learns "header bar → that class". The offline sets predate
    the channel: the validation set has none of its images, and the test set,
    refreshed during the pilot, only ``test_share``: too few for any gate to
    notice. In the live traffic ``live_share`` of the requests come through
    it, and there the candidate is wrong on every digit but one class.
    """

    batch_fraction: float = field(default=0.1, metadata=_bound(0.0, 1.0, open_lo=True))
    batch_label: int = field(default=0, metadata=_bound(0, 9))
    test_share: float = field(default=0.01, metadata=_bound(0.0, 0.1))
    live_share: float = field(default=0.5, metadata=_bound(0.0, 1.0, open_lo=True))


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
    phased_rollout: PhasedRolloutPlan = field(default_factory=PhasedRolloutPlan)
    monitoring: MonitoringPlan = field(default_factory=MonitoringPlan)
    live_regression: LiveRegressionPlan = field(default_factory=LiveRegressionPlan)

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
    if get_origin(kind) is tuple:
        # A list of values, each checked like a scalar of the element type.
        elem = get_args(kind)[0]
        if not isinstance(raw, list | tuple) or not raw:
            raise ValueError(
                f"{key}: expected a non-empty list, each {_describe(elem, meta)}, got {raw!r}"
            )
        return tuple(_value(f"{key}[{i}]", v, elem, meta) for i, v in enumerate(raw))
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


#: Keys of earlier plans that are refused with what replaces them.
_REPLACED = {
    "phased_rollout.latency_p99_ms": "latency_slo_ms and slow_margin",
    "phased_rollout.latency_min_samples": "latency_slo_ms and slow_margin",
}


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if f"{prefix}{key}" in _REPLACED:
            # The fixed p99 threshold checked at every look became a judged rate.
            raise ValueError(
                f"{prefix}{key}: no longer a key; replaced by {_REPLACED[prefix + key]} "
                "(requests slower than latency_slo_ms are counted per arm and judged "
                "against the baseline like errors)"
            )
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
    return resources.files("release_spec.strategy").joinpath("default_plan.toml").read_text("utf-8")


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
