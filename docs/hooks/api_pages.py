"""Generate the API reference: one mkdocstrings page per public module.

Every ``release_spec/<name>.py`` whose name does not start with ``_`` gets a
page ``api/<name>.md`` holding only ``::: release_spec.<name>``; mkdocstrings
renders it from the docstrings (statically, with griffe, so nothing imports
TensorFlow). The pages and their nav entries are generated at build time, so
a module appears in the reference as soon as it is committed and nothing is
written twice.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "release_spec"
SECTION = "API reference"

# Layer order of pyproject.toml's import contracts (tests/layer_map.py reads them);
# modules not listed follow alphabetically.
LAYERS = {
    "Formulas": ("losses", "metrics", "optimizers", "statistics"),
    "Strategy": tuple(
        f"strategy.{m}"
        for m in ("gates", "stages", "plan", "rollout", "monitoring", "simulation", "judge")
    ),
    "Store": ("store.registry",),
    "Workbench": tuple(f"workbench.{m}" for m in ("data", "model", "pipeline", "report", "sweep")),
    "Front": ("cli",),
}


def public_modules() -> list[str]:
    names = {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if not any(part.startswith("_") for part in p.relative_to(PACKAGE).parts)
    }
    ordered = [m for mods in LAYERS.values() for m in mods if m in names]
    return ordered + sorted(names - set(ordered))


def _layer(name: str) -> str:
    return next((layer for layer, mods in LAYERS.items() if name in mods), "Other")


def _summary(name: str) -> str:
    tree = ast.parse((PACKAGE / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _index() -> str:
    rows = "\n".join(
        f"| {_layer(m)} | [`release_spec.{m}`]({m.replace('.', '/')}.md) | {_summary(m)} |"
        for m in public_modules()
    )
    return (
        "# API reference\n\n"
        "Generated at build time by mkdocstrings from the docstrings of every public module "
        "of `release_spec`. The layers are those of the [home page](../index.md#layers): "
        "a module imports only from the layers above it.\n\n"
        "| layer | module | summary |\n|---|---|---|\n"
        f"{rows}\n"
    )


def on_config(config: Any) -> Any:
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and SECTION in entry:
            entry[SECTION] = ["api/index.md"] + [
                {f"release_spec.{m}": f"api/{m.replace('.', '/')}.md"} for m in public_modules()
            ]
    return config


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "api/index.md", content=_index()))
    for m in public_modules():
        files.append(
            File.generated(
                config, f"api/{m.replace('.', '/')}.md", content=f"::: release_spec.{m}\n"
            )
        )
    return files
