"""One way to state and check a parameter's range, for the strategy layer and the CLI.

In the spirit of scikit-learn's ``sklearn.utils._param_validation.Interval``: a
parameter's range is a value (`Range`; not called ``Interval``, which is
`release_spec.statistics.Interval`, a confidence interval) that both checks and
describes itself, so every refusal reads the same, ``<name>: expected <what>, got
<value>``, whether it comes from a plan file, a dataclass of the strategy layer or
a command-line flag.
The formula modules (``release_spec.losses``, ``metrics``, ``optimizers``,
``statistics``) keep their own small checks so that each can be copied alone.

Examples:
    >>> ALPHA = Range(float, 0, 1, closed="neither")
    >>> ALPHA.check("alpha", 0.05)
    0.05
    >>> ALPHA.check("alpha", 1)
    Traceback (most recent call last):
    ...
    ValueError: alpha: expected a number in (0, 1), got 1
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["FRACTION", "OPEN_FRACTION", "Range", "check_fields", "class_labels", "one_of"]


@dataclass(frozen=True)
class Range:
    """A range of integers or of finite real numbers.

    Args:
        kind: ``int`` (whole numbers, never a bool) or ``float`` (any finite real
            number, ints included, never a bool).
        low: the lower end, or ``None`` for none.
        high: the upper end, or ``None`` for none.
        closed: which ends belong to the range: ``"both"``, ``"left"``,
            ``"right"`` or ``"neither"``.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def describe(self) -> str:
        """What a valid value is, in words: ``an integer in [1, 1000]``, ``a number > 0``.

        Examples:
            >>> Range(float, 0, None, closed="neither").describe()
            'a number > 0'
        """
        noun = "an integer" if self.kind is int else "a number"
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            lb, rb = "[" if left else "(", "]" if right else ")"
            return f"{noun} in {lb}{_num(self.low)}, {_num(self.high)}{rb}"
        if self.low is not None:
            return f"{noun} {'>=' if left else '>'} {_num(self.low)}"
        if self.high is not None:
            return f"{noun} {'<=' if right else '<'} {_num(self.high)}"
        return noun

    def contains(self, value: object) -> bool:
        """True when ``value`` is of the right kind and inside the range (NaN never is).

        Python and NumPy numbers alike (through `numbers`); a bool is never a number here.
        """
        x = _as_number(value, self.kind)
        if x is None or not math.isfinite(x):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and not (x >= self.low if left else x > self.low):
            return False
        return self.high is None or (x <= self.high if right else x < self.high)

    def check(self, name: str, value: object) -> Any:
        """``value`` (as a float for a ``float`` range) if inside, else a ValueError naming it."""
        x = _as_number(value, self.kind)
        if x is None or not self.contains(value):
            raise ValueError(f"{name}: expected {self.describe()}, got {value!r}")
        return float(x) if self.kind is float else x


def _as_number(value: object, kind: type) -> float | int | None:
    """``value`` as a Python int (any whole number) or float (any real, for a float
    range); ``None`` for anything else, a bool included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if kind is float and isinstance(value, numbers.Real):
        return float(value)
    return None


def _num(x: float) -> str:
    """A bound as a reader writes it: ``4294967295``, ``0.5``, ``1e-05``."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else f"{x:g}"


#: A rate, share or probability as a fraction, ends included.
FRACTION = Range(float, 0, 1)
#: A level or share as a fraction strictly between 0 and 1.
OPEN_FRACTION = Range(float, 0, 1, closed="neither")


def one_of(name: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``, else a ValueError naming ``name``.

    Examples:
        >>> one_of("on_inconclusive", "wait", ("hold", "rollback"))
        Traceback (most recent call last):
        ...
        ValueError: on_inconclusive: expected one of 'hold', 'rollback', got 'wait'
    """
    if not (isinstance(value, str) and value in allowed):
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    return value


def check_fields(obj: object) -> None:
    """Check every field of a dataclass whose metadata holds a `Range` (key ``"range"``).

    A field holding a tuple is checked element by element (``name[i]``). Called
    from ``__post_init__``, so ``dataclasses.replace`` cannot bypass the ranges.
    """
    for f in fields(obj):  # type: ignore[arg-type]
        rng = f.metadata.get("range")
        if rng is None:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, tuple):
            for i, v in enumerate(value):
                rng.check(f"{f.name}[{i}]", v)
        else:
            rng.check(f.name, value)


def in_range(kind: type, low: float | None = None, high: float | None = None, **kw: Any) -> Any:
    """Field metadata holding the field's `Range` (read by `check_fields` and the plan parsers)."""
    return {"range": Range(kind, low, high, **kw)}


class Checked:
    """A dataclass base checking every field's `Range` after ``__init__`` (so after ``replace``)."""

    def __post_init__(self) -> None:
        check_fields(self)


def class_labels(
    name: str, values: npt.ArrayLike, *, num_classes: int | None = None
) -> npt.NDArray[np.int64]:
    """Class labels as a non-empty 1-D integer array, in ``[0, num_classes)`` when given.

    The one label check of the strategy layer (gates and monitoring): whole numbers
    only (``1.5`` is refused, ``1.0`` is label 1), and the message names the array.

    Examples:
        >>> class_labels("y_true", [0, 2, 1], num_classes=3).tolist()
        [0, 2, 1]
        >>> class_labels("y_pred", [0, 3], num_classes=3)
        Traceback (most recent call last):
        ...
        ValueError: y_pred: labels outside [0, 3): [3]
    """
    import numpy as np  # here, so that reading a plan does not import NumPy

    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array of class labels")
    whole = arr.dtype.kind in "iub" or (
        arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr) & (arr == np.rint(arr))))
    )
    if not whole:
        raise ValueError(f"{name}: expected integer class labels")
    labels = arr.astype(np.int64)
    if num_classes is not None:
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise ValueError(
                f"{name}: labels outside [0, {num_classes}): {sorted(set(bad.tolist()))[:5]}"
            )
    return labels
