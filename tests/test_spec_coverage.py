"""The spec is complete: every equation id has parity and property tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_index import KINDS, implementations, spec_tests

ROOT = Path(__file__).resolve().parents[1]
IMPLS = implementations(ROOT / "release_spec")
TESTS = spec_tests(ROOT / "tests")


def test_spec_declares_equations() -> None:
    assert len(IMPLS) >= 1


@pytest.mark.parametrize("eq_id", sorted(IMPLS))
def test_every_equation_has_parity_and_property_tests(eq_id: str) -> None:
    kinds = {t.kind for t in TESTS.get(eq_id, [])}
    missing = {"parity", "property"} - kinds
    assert not missing, f"{eq_id} has no {' or '.join(sorted(missing))} test"


def test_every_marked_equation_is_implemented() -> None:
    unknown = sorted(set(TESTS) - set(IMPLS))
    assert not unknown, f"tests name equation ids that no docstring declares: {unknown}"


def test_every_marker_kind_is_known() -> None:
    bad = [(t.qualname, t.kind) for ts in TESTS.values() for t in ts if t.kind not in KINDS]
    assert not bad, f"unknown spec kinds (use one of {KINDS}): {bad}"
