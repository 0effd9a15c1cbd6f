"""Index of the executable spec: which function implements each equation id,
and which tests verify it.

Equation ids (``eq-mse``, ``eq-adam``, ...) are declared once, in the
implementing function's docstring, on a line ``Spec: eq-mse``. Tests name the
equation they check with ``@pytest.mark.spec("eq-mse", kind="parity")`` where
``kind`` is ``parity`` (agreement with Keras / scikit-learn / SciPy and the
literal formula), ``property`` (algebraic properties) or ``errors`` (bad input).

Both sides are read statically with `ast`, so building the index imports
neither the package nor the tests (and so never TensorFlow). The site's
coverage page and ``tests/test_spec_coverage.py`` both use this module.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KINDS", "Implementation", "SpecTest", "implementations", "spec_tests"]

KINDS = ("parity", "property", "errors")
_SPEC_LINE = re.compile(r"^\s*Spec:\s*(.+)$", re.MULTILINE)
_EQ_ID = re.compile(r"eq-[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Implementation:
    """A function (or class) whose docstring declares an equation id."""

    eq_id: str
    module: str
    qualname: str
    path: Path
    line: int


@dataclass(frozen=True)
class SpecTest:
    """A test marked ``@pytest.mark.spec(eq_id, kind=...)``."""

    eq_id: str
    kind: str
    path: Path
    qualname: str
    line: int


def _declared_ids(node: ast.AST) -> list[str]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []
    doc = ast.get_docstring(node) or ""
    return [eq for m in _SPEC_LINE.finditer(doc) for eq in _EQ_ID.findall(m.group(1))]


def implementations(package_dir: Path) -> dict[str, list[Implementation]]:
    """Map each equation id to the functions whose docstrings declare it."""
    found: dict[str, list[Implementation]] = defaultdict(list)
    for path in sorted(package_dir.rglob("*.py")):
        module = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
        if "Spec:" not in (text := path.read_text(encoding="utf-8")):
            continue  # parsed only where a docstring can declare an id (a build parses this)
        tree = ast.parse(text, filename=str(path))
        for qualname, node in _walk(tree):
            for eq in _declared_ids(node):
                found[eq].append(Implementation(eq, module, qualname, path, node.lineno))
    return dict(found)


def _walk(
    tree: ast.AST, prefix: str = ""
) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]]:
    out: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            qualname = f"{prefix}{node.name}"
            out.append((qualname, node))
            out.extend(_walk(node, qualname + "."))
    return out


def _spec_marks(decorators: list[ast.expr]) -> list[tuple[str, str]]:
    marks: list[tuple[str, str]] = []
    for dec in decorators:
        if not (isinstance(dec, ast.Call) and ast.unparse(dec.func).endswith("mark.spec")):
            continue
        ids = [
            a.value for a in dec.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        kinds = [
            k.value.value
            for k in dec.keywords
            if k.arg == "kind" and isinstance(k.value, ast.Constant)
        ]
        kind = str(kinds[0]) if kinds else "property"
        marks.extend((str(eq), kind) for eq in ids)
    return marks


def spec_tests(tests_dir: Path) -> dict[str, list[SpecTest]]:
    """Map each equation id to the tests marked with it (class marks apply to methods)."""
    found: dict[str, list[SpecTest]] = defaultdict(list)
    for path in sorted(tests_dir.rglob("test_*.py")):
        if "mark.spec" not in (text := path.read_text(encoding="utf-8")):
            continue  # no decorator can be a spec mark (see _spec_marks)
        tree = ast.parse(text, filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                class_marks = _spec_marks(node.decorator_list)
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                        for eq, kind in class_marks + _spec_marks(item.decorator_list):
                            found[eq].append(
                                SpecTest(eq, kind, path, f"{node.name}.{item.name}", item.lineno)
                            )
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                for eq, kind in _spec_marks(node.decorator_list):
                    found[eq].append(SpecTest(eq, kind, path, node.name, node.lineno))
    return dict(found)
