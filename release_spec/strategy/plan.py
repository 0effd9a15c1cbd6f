"""The release plan: a TOML file of thresholds, margins, attempts, epochs, soak budget and seed.

The default plan is embedded in the package (``default_plan.toml``, every
key documented there) and is exactly the defaults of the dataclasses below; a
plan file of your own overrides any subset of it. Parsing is strict: an
unknown table or key, a value of the wrong type, or a value out of range is
a `ValueError` that names the key, e.g.
``finetune.epochs: expected an integer in [1, 1000], got 0``.

Every section checks its own ranges in ``__post_init__`` (through
`release_spec.strategy._validate`), so a plan changed with ``dataclasses.replace``
is checked exactly like one read from a file. The knobs the rollout and the
monitoring share with `release_spec.strategy.rollout.RolloutPlan` and
`release_spec.strategy.monitoring.MonitoringThresholds` take their defaults from
there: one default per knob.

Examples:
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
    >>> import dataclasses
    >>> dataclasses.replace(plan, seed=-1)
    Traceback (most recent call last):
    ...
    ValueError: seed: expected an integer in [0, 4294967295], got -1
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from release_spec.strategy._validate import FRACTION, Checked, Range, in_range, one_of
from release_spec.strategy.monitoring import MonitoringThresholds
from release_spec.strategy.rollout import RolloutPlan, RolloutStep

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
    "RolloutStep",
    "default_plan_text",
    "load_plan",
    "parse_plan",
]


#: What ``release-spec run --scenario`` can run: the plan's pipeline on the embedded data
#: (``default``), or with a harmful candidate (``regression``, see `RegressionPlan`),
#: or with one that passes the offline gates but is worse on the live traffic
#: (``live-regression``, see `LiveRegressionPlan`).
SCENARIOS = ("default", "regression", "live-regression")


_FRACTION = {"range": FRACTION}
_POSITIVE = in_range(float, 0, None, closed="neither")
_ALPHA = in_range(float, 0, 0.5, closed="right")


@dataclass(frozen=True)
class DataPlan(Checked):
    """The embedded data set (see `release_spec.workbench.data`)."""

    max_rotation: float = field(default=5.0, metadata=in_range(float, 0, 45))
    target_train_copies: int = field(default=8, metadata=in_range(int, 1, 16))


@dataclass(frozen=True)
class PretrainPlan(Checked):
    """Pre-training on the source domain and its gate."""

    learning_rate: float = field(default=1e-3, metadata=in_range(float, 0.0, 1.0, closed="right"))
    epochs: int = field(default=20, metadata=in_range(int, 1, 1000))
    batch_size: int = field(default=32, metadata=in_range(int, 1, 100_000))
    max_attempts: int = field(default=3, metadata=in_range(int, 1, 20))
    min_accuracy_lower: float = field(default=0.88, metadata=_FRACTION)
    min_macro_f1_lower: float = field(default=0.85, metadata=_FRACTION)


@dataclass(frozen=True)
class FinetunePlan(Checked):
    """Fine-tuning on the target domain and its gates."""

    learning_rate: float = field(default=5e-4, metadata=in_range(float, 0.0, 1.0, closed="right"))
    epochs: int = field(default=20, metadata=in_range(int, 1, 1000))
    batch_size: int = field(default=32, metadata=in_range(int, 1, 100_000))
    replay: float = field(default=0.5, metadata=_FRACTION)
    early_stopping: bool = True
    max_attempts: int = field(default=3, metadata=in_range(int, 1, 20))
    improvement_alpha: float = field(default=0.05, metadata=_ALPHA)
    min_macro_f1_lower: float = field(default=0.85, metadata=_FRACTION)
    forgetting_margin: float = field(default=0.05, metadata=in_range(float, 0.0, 1.0))
    forgetting_alpha: float = field(default=0.05, metadata=_ALPHA)


@dataclass(frozen=True)
class ReleasePlan(Checked):
    """The release stage's functional, performance and stability gates."""

    noninferiority_margin: float = field(default=0.03, metadata=in_range(float, 0.0, 1.0))
    noninferiority_alpha: float = field(default=0.05, metadata=_ALPHA)
    functional_atol: float = field(default=1e-5, metadata=in_range(float, 0.0, 0.1, closed="right"))
    soak_seconds: float = field(
        default=60.0, metadata=in_range(float, 0.0, 86_400.0, closed="right")
    )
    soak_max_predictions: int = field(default=3_000_000, metadata=in_range(int, 1, 1_000_000_000))
    soak_batch_size: int = field(default=50, metadata=in_range(int, 1, 100_000))
    soak_callers: int = field(default=4, metadata=in_range(int, 4, 64))
    soak_windows: int = field(default=6, metadata=in_range(int, 2, 1000))
    max_rss_slope_mb_per_min: float = field(default=16.0, metadata=in_range(float, 0.0, None))
    max_latency_drift: float = field(
        default=1.5, metadata=in_range(float, 1.0, None, closed="right")
    )
    confidence: float = field(default=0.95, metadata=in_range(float, 0.5, 1.0, closed="right"))


@dataclass(frozen=True)
class OptimisePlan(Checked):
    """The iterative optimisation's diagnosis threshold and epoch cap."""

    overfit_gap: float = field(default=0.05, metadata=_FRACTION)
    max_epochs: int = field(default=60, metadata=in_range(int, 1, 1000))


@dataclass(frozen=True)
class RegressionPlan(Checked):
    """The harmful candidate of ``--scenario regression``."""

    corrupt_class: int = field(default=3, metadata=in_range(int, 0, 9))


#: The default rollout's steps (``[[phased_rollout.steps]]`` of default_plan.toml says why).
DEFAULT_STEPS = (
    RolloutStep(share_pct=1.0, min_canary_requests=300, max_bake_minutes=240.0),
    RolloutStep(share_pct=5.0, min_canary_requests=500, max_bake_minutes=50.0),
    RolloutStep(share_pct=25.0, min_canary_requests=1000, max_bake_minutes=12.0),
    RolloutStep(share_pct=50.0, min_canary_requests=1000, max_bake_minutes=10.0),
    RolloutStep(share_pct=100.0, min_canary_requests=0, max_bake_minutes=1.0),
)


@dataclass(frozen=True)
class PhasedRolloutPlan(Checked):
    """The phased rollout that ends the release stage (see `release_spec.strategy.rollout`).

    ``steps`` holds one `RolloutStep` per ``[[phased_rollout.steps]]`` table; the
    live pool stands for ``requests_per_minute`` of traffic. The judge's knobs
    default to `RolloutPlan`'s (one default per knob).
    """

    live_requests: int = field(default=55_000, metadata=in_range(int, 100, 1_000_000))
    batch_size: int = field(default=200, metadata=in_range(int, 1, 100_000))
    requests_per_minute: float = field(default=RolloutPlan.requests_per_minute, metadata=_POSITIVE)
    steps: tuple[RolloutStep, ...] = DEFAULT_STEPS
    alpha: float = field(default=RolloutPlan.alpha, metadata=_ALPHA)
    margin: float = field(default=RolloutPlan.margin, metadata=in_range(float, 0, 0.5))
    on_inconclusive: str = "hold"
    latency_slo_ms: float = field(default=RolloutPlan.latency_slo_ms, metadata=_POSITIVE)
    slow_margin: float = field(default=RolloutPlan.slow_margin, metadata=in_range(float, 0, 0.5))

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("on_inconclusive", self.on_inconclusive, ("hold", "rollback"))
        self.rollout_plan()

    def rollout_plan(self) -> RolloutPlan:
        """The `RolloutPlan` these values describe."""
        return RolloutPlan(
            steps=self.steps,
            alpha=self.alpha,
            margin=self.margin,
            on_inconclusive="hold" if self.on_inconclusive == "hold" else "rollback",
            latency_slo_ms=self.latency_slo_ms,
            slow_margin=self.slow_margin,
            requests_per_minute=self.requests_per_minute,
        )


@dataclass(frozen=True)
class MonitoringPlan(Checked):
    """Drift and per-class recall monitoring (see `release_spec.strategy.monitoring`).

    Defaults are `MonitoringThresholds`' (one default per knob).
    """

    psi_warning: float = field(default=MonitoringThresholds.psi_warning, metadata=_POSITIVE)
    psi_alert: float = field(default=MonitoringThresholds.psi_alert, metadata=_POSITIVE)
    psi_bins: int = field(default=MonitoringThresholds.psi_bins, metadata=in_range(int, 2, 1000))
    ks_alpha: float = field(default=MonitoringThresholds.ks_alpha, metadata=_ALPHA)
    ks_min_statistic: float = field(
        default=MonitoringThresholds.ks_min_statistic, metadata=_FRACTION
    )
    recall_alpha: float = field(default=MonitoringThresholds.recall_alpha, metadata=_ALPHA)
    recall_window: int = field(
        default=MonitoringThresholds.recall_window, metadata=in_range(int, 1, 10_000_000)
    )
    min_class_support: int = field(
        default=MonitoringThresholds.min_class_support, metadata=in_range(int, 1, 10_000_000)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.thresholds()

    def thresholds(self) -> MonitoringThresholds:
        """The `MonitoringThresholds` these values describe."""
        return MonitoringThresholds(**asdict(self))


@dataclass(frozen=True)
class LiveRegressionPlan(Checked):
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

    batch_fraction: float = field(default=0.1, metadata=in_range(float, 0.0, 1.0, closed="right"))
    batch_label: int = field(default=0, metadata=in_range(int, 0, 9))
    test_share: float = field(default=0.01, metadata=in_range(float, 0.0, 0.1))
    live_share: float = field(default=0.5, metadata=in_range(float, 0.0, 1.0, closed="right"))


@dataclass(frozen=True)
class Plan(Checked):
    """A whole release plan: the seed and one section per table."""

    seed: int = field(default=0, metadata=in_range(int, 0, 2**32 - 1))
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


def _value(key: str, raw: object, kind: type, meta: Mapping[str, Any]) -> object:
    """``raw`` checked against the field's type and `Range`; a list of tables for steps."""
    if get_origin(kind) is tuple:
        elem = get_args(kind)[0]
        if not isinstance(raw, list | tuple) or not raw:
            raise ValueError(f"{key}: expected a non-empty array of tables, got {raw!r}")
        out = []
        for i, table in enumerate(raw):
            if not isinstance(table, Mapping):
                raise ValueError(f"{key}[{i}]: expected a table, got {table!r}")
            out.append(_build(elem, table, f"{key}[{i}]."))
        return tuple(out)
    if kind in (int, float):
        rng: Range = meta.get("range") or Range(kind)
        return rng.check(key, raw)
    if not isinstance(raw, kind):
        noun = {bool: "true or false", str: "a string"}[kind]
        raise ValueError(f"{key}: expected {noun}, got {raw!r}")
    return raw


#: Keys of earlier plans that are refused with what replaces them.
_REPLACED = {
    "phased_rollout.latency_p99_ms": "latency_slo_ms and slow_margin",
    "phased_rollout.latency_min_samples": "latency_slo_ms and slow_margin",
}

#: The three parallel lists the rollout steps were before ``[[phased_rollout.steps]]``.
_OLD_STEP_LISTS = ("shares", "min_canary_requests", "max_bake_minutes")


def _old_steps(data: Mapping[str, Any]) -> str:
    """The refusal of the old parallel lists, showing the tables that replace them.

    One line (the CLI's errors are one line), so the tables are shown as TOML's
    inline form, ``steps = [{...}, ...]``, which is the same array of tables.
    """
    lists: list[Any] = [data.get(k) for k in _OLD_STEP_LISTS]
    rows: list[tuple[object, ...]] = [
        (s.share_pct, s.min_canary_requests, s.max_bake_minutes) for s in DEFAULT_STEPS
    ]
    yours = all(isinstance(v, list) for v in lists) and len({len(v) for v in lists}) == 1
    if yours:
        rows = list(zip(*lists, strict=True))
    tables = ", ".join(
        f"{{share_pct = {share}, min_canary_requests = {n}, max_bake_minutes = {bake}}}"
        for share, n, bake in rows
    )
    given = ", ".join(f"phased_rollout.{k}" for k in _OLD_STEP_LISTS if k in data)
    return (
        f"{given}: no longer a key; the steps are one [[phased_rollout.steps]] table each "
        f"(share_pct in percent, min_canary_requests, max_bake_minutes); under "
        f"[phased_rollout] write{'' if yours else ', e.g. for the default steps'}: "
        f"steps = [{tables}]"
    )


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    if prefix == "phased_rollout." and any(k in data for k in _OLD_STEP_LISTS):
        raise ValueError(_old_steps(data))
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
    required = [n for n, f in known.items() if f.default is MISSING is f.default_factory]
    for key in required:
        if key not in data:
            raise ValueError(f"{prefix}{key}: missing (required: {', '.join(required)})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f, kind = known[name], hints[name]
        if is_dataclass(kind):
            if not isinstance(value, Mapping):
                raise ValueError(f"{prefix}{name}: expected a table, got {value!r}")
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _value(f"{prefix}{name}", value, kind, f.metadata)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        # The section's own checks (ranges, steps that must increase) name the field only.
        raise ValueError(f"{prefix}{exc}") from None


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
