"""The production pointer: which version is in production, and the ones before it.

``production.json`` is sealed JSON (`release_spec.store.sealed`) naming the
version in production, its sha256 and the history of earlier production
versions, oldest first: promoting pushes the current version on the
history, rolling back pops the last one. The pointer is replaced atomically
(`release_spec.store.files.atomic_write`) and only ever names a committed
version, so readers need no lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from release_spec.store.errors import CorruptFileError
from release_spec.store.files import atomic_write
from release_spec.store.layout import (
    _POINTER_FORMAT,
    _VERSION_RE,
    FORMAT_VERSION,
    POINTER_NAME,
    _now,
)
from release_spec.store.sealed import _field, _is_sha256, _read_sealed, _sealed
from release_spec.store.verify import has_version

__all__ = ["read_pointer", "write_pointer"]


def read_pointer(root: Path) -> dict[str, Any] | None:
    """The pointer's fields (``version``, ``sha256``, ``history``), or None before any promotion.

    Raises:
        CorruptFileError: The pointer is damaged or names a version not in the store.
    """
    path = root / POINTER_NAME
    if not os.path.lexists(path):
        return None
    data = _read_sealed(root, POINTER_NAME, _POINTER_FORMAT)
    version = _field(path, data, "version", str)
    if not _is_sha256(data.get("sha256")):
        raise CorruptFileError(path, "field 'sha256' is not a sha256 digest")
    history = _field(path, data, "history", list)
    for name in [version, *history]:
        if not isinstance(name, str) or not _VERSION_RE.fullmatch(name):
            raise CorruptFileError(path, f"names an invalid version {name!r}")
        if not has_version(root, name):
            raise CorruptFileError(path, f"names version {name!r}, which is not in the store")
    return data


def write_pointer(root: Path, version: str, sha256: str, history: list[str]) -> None:
    """Put ``version`` (whose model has ``sha256``) in production, atomically."""
    body = {
        "format": _POINTER_FORMAT,
        "format_version": FORMAT_VERSION,
        "version": version,
        "sha256": sha256,
        "history": history,
        "updated": _now(),
    }
    atomic_write(root / POINTER_NAME, _sealed(body))
