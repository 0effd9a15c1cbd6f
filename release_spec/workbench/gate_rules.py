"""How a gate compares, read from its result: the report's "passes when" column and headroom.

A `~release_spec.strategy.gates.GateResult` holds the measured ``value``, the
``threshold`` and a one-line ``detail`` that states the rule ("lower bound
>= 0.88", "p = 9.31e-10 <= 0.05"). The report shows the direction next to the
threshold, and the gate-summary figure how much room each gate had, so both
read the rule from the last comparison in ``detail`` here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GateRule", "gate_rule"]


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


_RELATION = re.compile(r"(<=|>=|(?<![<>=-])<(?![<=])|(?<![<>=-])>(?!=))\s*[-+]?\d")
_SYMBOL = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}


@dataclass(frozen=True)
class GateRule:
    """How a gate compares: what it compares, the relation, and the headroom figure."""

    quantity: str  # "value", "lower bound", "upper bound", or "" when the detail says
    relation: str  # "≥", "≤", ">", "<", "=", or "" when the detail says
    threshold: float
    compared: float
    headroom: float  # in [-1, 1]: positive on the passing side

    @property
    def rule(self) -> str:
        """The table's "passes when" cell, e.g. ``lower bound ≥ 0.88``."""
        if not self.relation:
            return f"see detail (threshold {_fmt(self.threshold)})"
        return f"{self.quantity} {self.relation} {_fmt(self.threshold)}"

    @property
    def text(self) -> str:
        """The figure's label: the compared figure and the rule."""
        if not self.relation:
            return f"value {_fmt(self.compared)}; see detail"
        return (
            f"{self.quantity} {_fmt(self.compared)}, needs {self.relation} {_fmt(self.threshold)}"
        )


def gate_rule(g: Mapping[str, Any]) -> GateRule:
    """The gate's rule, read from the last comparison in its ``detail``.

    Examples:
        >>> r = gate_rule({"value": 0.95, "threshold": 0.88, "interval": [0.9, 0.98],
        ...                "passed": True, "detail": "accuracy 0.95; lower bound >= 0.88"})
        >>> r.rule, round(r.headroom, 4)
        ('lower bound ≥ 0.88', 0.0227)
        >>> gate_rule({"value": 1e-9, "threshold": 0.05, "interval": None, "passed": True,
        ...            "detail": "McNemar p = 1e-09 <= 0.05"}).rule
        'value ≤ 0.05'
    """
    value, threshold, detail = float(g["value"]), float(g["threshold"]), str(g["detail"])
    found = list(_RELATION.finditer(detail))
    if not found:
        same = value == threshold
        return GateRule(
            "value" if same else "",
            "=" if same else "",
            threshold,
            value,
            (1.0 if g["passed"] else -1.0) * (0.0 if same else 1.0),
        )
    m = found[-1]
    before = detail[max(0, m.start() - 40) : m.start()]
    iv = g.get("interval")
    quantity, compared = "value", value
    if "lower bound" in before and iv is not None:
        quantity, compared = "lower bound", float(iv[0])
    elif "upper bound" in before and iv is not None:
        quantity, compared = "upper bound", float(iv[1])
    relation = _SYMBOL[m.group(1)]
    above = relation in ("≥", ">")
    scale = abs(threshold) if threshold else 1.0
    room = ((compared - threshold) if above else (threshold - compared)) / scale
    if math.isnan(room):
        room = -1.0
    return GateRule(quantity, relation, threshold, compared, max(-1.0, min(1.0, room)))
