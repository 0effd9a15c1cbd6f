"""The language-model release plan: a TOML file, parsed strictly.

Two plans ship with the package: ``default.toml`` (every key, documented) and
``quick.toml`` (smaller data and fewer epochs: the notebook, the tests and
the seed sweep). A plan file of your own overrides any subset of the
default. An unknown table or key, a value of the wrong type or out of range
is a `ValueError` naming the key.

Examples:
    >>> plan = parse_language_plan({"seed": 3, "pretrain": {"epochs": 2}})
    >>> plan.seed, plan.pretrain.epochs
    (3, 2)
    >>> parse_language_plan({"pretrain": {"epoch": 2}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: pretrain.epoch: unknown key (known: batch_size, epochs, ...)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import tomllib

from release_spec.strategy._validate import (
    FRACTION,
    OPEN_FRACTION,
    Checked,
    Range,
    in_range,
)

__all__ = [
    "LANGUAGE_SCENARIOS",
    "LanguagePlan",
    "builtin_plan",
    "load_language_plan",
    "parse_language_plan",
]

#: The scenarios of ``release-spec run --example language-model``.
LANGUAGE_SCENARIOS = ("default", "forgetting", "jailbreak-regression", "live-prompt-regression")


_COUNT = in_range(int, 1)
_EPOCHS = in_range(int, 1, 200)
_BATCH = in_range(int, 1, 4096)
_ATTEMPTS = in_range(int, 1, 10)
_POSITIVE = in_range(float, 0, None, closed="neither")
_FRACTION = {"range": FRACTION}
_LEVEL = {"range": OPEN_FRACTION}


@dataclass(frozen=True)
class DataSection(Checked):
    """Sizes of the generated data (the world itself is fixed: `corpus.language_world`)."""

    seq_len: int = field(default=40, metadata=in_range(int, 24, 256))
    pretrain_sentences: int = field(default=4000, metadata=_COUNT)
    pretrain_val: int = field(default=300, metadata=_COUNT)
    pretrain_test: int = field(default=300, metadata=_COUNT)
    instructions: int = field(default=4000, metadata=_COUNT)
    instruction_val: int = field(default=240, metadata=_COUNT)
    harmful_share: float = field(default=0.12, metadata=_FRACTION)
    polite_share: float = field(default=0.2, metadata=_FRACTION)


@dataclass(frozen=True)
class SizeSection(Checked):
    """One rung of the size ladder."""

    width: int = field(metadata=in_range(int, 8, 1024))
    blocks: int = field(metadata=in_range(int, 1, 12))
    heads: int = field(default=4, metadata=in_range(int, 1, 16))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width % self.heads:
            raise ValueError(f"width: {self.width} must be divisible by heads ({self.heads})")


@dataclass(frozen=True)
class PretrainSection(Checked):
    """Pre-training: next-token prediction on the language; gate on perplexity."""

    epochs: int = field(default=6, metadata=_EPOCHS)
    batch_size: int = field(default=128, metadata=_BATCH)
    learning_rate: float = field(default=3e-3, metadata=_POSITIVE)
    max_attempts: int = field(default=2, metadata=_ATTEMPTS)
    max_perplexity: float = field(default=3.5, metadata=_POSITIVE)


@dataclass(frozen=True)
class FinetuneSection(Checked):
    """Instruction fine-tuning; gates on the validation instructions and on forgetting."""

    epochs: int = field(default=6, metadata=_EPOCHS)
    batch_size: int = field(default=128, metadata=_BATCH)
    learning_rate: float = field(default=2e-3, metadata=_POSITIVE)
    max_attempts: int = field(default=2, metadata=_ATTEMPTS)
    replay: float = field(default=0.5, metadata=_FRACTION)
    min_val_pass_lower: float = field(default=0.6, metadata=_FRACTION)
    forgetting_margin: float = field(default=0.15, metadata=_POSITIVE)


@dataclass(frozen=True)
class SuitesSection(Checked):
    """The release stage's offline gates on the suite files."""

    capability_min_lower: float = field(default=0.5, metadata=_FRACTION)
    #: Per suite, a bar of its own (a fraction each; the parser reads ``"values"``).
    capability_bars: dict[str, float] = field(default_factory=dict, metadata={"values": FRACTION})
    safety_min_lower: float = field(default=0.85, metadata=_FRACTION)
    regression_margin: float = field(default=0.1, metadata=_POSITIVE)
    alpha: float = field(default=0.05, metadata=_LEVEL)
    samples: int = field(default=3, metadata=in_range(int, 1, 20))
    temperature: float = field(default=0.5, metadata=_POSITIVE)
    confidence: float = field(default=0.95, metadata=_LEVEL)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, bar in self.capability_bars.items():
            FRACTION.check(f"capability_bars.{name}", bar)


@dataclass(frozen=True)
class AudiencesSection(Checked):
    """The rollout by audience: one rollout step per audience, shares increasing."""

    names: tuple[str, ...] = ("internal", "trusted-testers", "everyone")
    shares: tuple[float, ...] = field(default=(50.0, 60.0, 75.0), metadata=_POSITIVE)
    requests: tuple[int, ...] = field(default=(400, 500, 700), metadata=_COUNT)
    min_canary_requests: tuple[int, ...] = field(default=(80, 100, 150), metadata=_COUNT)
    polite_shares: tuple[float, ...] = field(default=(0.0, 0.3, 0.5), metadata=_FRACTION)
    harmful_shares: tuple[float, ...] = field(default=(0.05, 0.1, 0.1), metadata=_FRACTION)
    alpha: float = field(default=0.05, metadata=_LEVEL)
    margin: float = field(default=0.15, metadata=_POSITIVE)
    batch_size: int = field(default=40, metadata=_BATCH)

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.names)
        for key in ("shares", "requests", "min_canary_requests", "polite_shares", "harmful_shares"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"{key}: expected {n} values, one per audience")
        if any(b <= a for a, b in zip(self.shares, self.shares[1:], strict=False)):
            raise ValueError(f"shares: must increase strictly, got {list(self.shares)}")


@dataclass(frozen=True)
class ScenarioSection(Checked):
    """What each harmful scenario changes (see `release_spec.workbench.language.run`)."""

    jailbreak_comply_share: float = field(default=1.0, metadata=_FRACTION)
    live_regression_rung: str = "large"


def _default_sizes() -> dict[str, SizeSection]:
    return {"small": SizeSection(64, 1), "large": SizeSection(96, 2)}


@dataclass(frozen=True)
class LanguagePlan(Checked):
    """The whole plan; ``ladder`` names the sizes in release order."""

    seed: int = field(default=0, metadata=in_range(int, 0, 2**32 - 1))
    threads: int = field(default=1, metadata=in_range(int, 1, 64))
    ladder: tuple[str, ...] = ("small", "large")
    data: DataSection = field(default_factory=DataSection)
    sizes: dict[str, SizeSection] = field(default_factory=_default_sizes)
    pretrain: PretrainSection = field(default_factory=PretrainSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    suites: SuitesSection = field(default_factory=SuitesSection)
    audiences: AudiencesSection = field(default_factory=AudiencesSection)
    scenarios: ScenarioSection = field(default_factory=ScenarioSection)

    def __post_init__(self) -> None:
        super().__post_init__()
        missing = [r for r in self.ladder if r not in self.sizes]
        if not self.ladder or missing:
            raise ValueError(f"ladder: every rung needs a [sizes.<name>] table; missing {missing}")
        if self.scenarios.live_regression_rung not in self.ladder:
            raise ValueError(
                f"scenarios.live_regression_rung: {self.scenarios.live_regression_rung!r} "
                "is not on the ladder"
            )


def _value(key: str, raw: object, kind: object, meta: Mapping[str, Any]) -> object:
    """``raw`` as a value of the field's type, checked against the field's `Range`."""
    origin = get_origin(kind)
    if origin is tuple:
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{key}: expected a non-empty list, got {raw!r}")
        elem = get_args(kind)[0]
        return tuple(_value(f"{key}[{i}]", v, elem, meta) for i, v in enumerate(raw))
    if origin is dict:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{key}: expected a table of numbers, got {raw!r}")
        return {str(k): meta["values"].check(f"{key}.{k}", v) for k, v in raw.items()}
    if kind is str:
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"{key}: expected a non-empty string, got {raw!r}")
        return raw
    assert isinstance(kind, type)
    rng: Range = meta.get("range") or Range(kind)
    return rng.check(key, raw)


S = TypeVar("S")


def _section(cls: type[S], table: object, prefix: str, base: S | None) -> S:
    """A section from a TOML table over ``base`` (its keys override); errors name the key."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{prefix}: expected a table, got {table!r}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    kwargs = {name: getattr(base, name) for name in known} if base is not None else {}
    for key, raw in table.items():
        if key not in known:
            raise ValueError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(known))})")
        kwargs[key] = _value(f"{prefix}.{key}", raw, hints[key], known[key].metadata)
    for name, f in known.items():
        if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{prefix}.{name}: missing")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        # The section's own checks name the field only.
        raise ValueError(f"{prefix}.{exc}") from None


def parse_language_plan(data: Mapping[str, Any], base: LanguagePlan | None = None) -> LanguagePlan:
    """A plan from a TOML-shaped mapping, over ``base`` (default: the dataclass defaults)."""
    plan = base or LanguagePlan()
    known = {f.name: f for f in fields(LanguagePlan)}
    hints = get_type_hints(LanguagePlan)
    changes: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            raise ValueError(f"{key}: unknown key (known: {', '.join(known)})")
        if key == "sizes":
            if not isinstance(raw, Mapping):
                raise ValueError(f"sizes: expected a table, got {raw!r}")
            new = {
                n: _section(SizeSection, t, f"sizes.{n}", plan.sizes.get(n)) for n, t in raw.items()
            }
            changes[key] = {**plan.sizes, **new}
        elif is_dataclass(hints[key]):
            changes[key] = _section(hints[key], raw, key, getattr(plan, key))
        else:
            changes[key] = _value(key, raw, hints[key], known[key].metadata)
    return replace(plan, **changes)


def builtin_plan(name: str = "default") -> str:
    """The text of a plan shipped with the package: ``default`` or ``quick``."""
    if name not in ("default", "quick"):
        raise ValueError(f"unknown built-in plan {name!r}; choose default or quick")
    files = resources.files("release_spec.workbench.language") / "plans" / f"{name}.toml"
    return files.read_text(encoding="utf-8")


def load_language_plan(path: Path | str | None = None) -> LanguagePlan:
    """Read a plan: a file path, ``"quick"``/``"default"`` for a built-in one, or None (default).

    A file overrides the default plan key by key.
    """
    default = parse_language_plan(tomllib.loads(builtin_plan("default")))
    if path is None or str(path) == "default":
        return default
    if str(path) == "quick":
        text, where = builtin_plan("quick"), "quick"
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{p}: cannot read the plan: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{p}: the plan is not UTF-8 text") from None
        where = str(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from None
    return parse_language_plan(data, base=default)
