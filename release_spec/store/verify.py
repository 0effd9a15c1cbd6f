"""Checking a store against its manifests: what `ModelStore.verify` reports.

Every version's files are re-hashed against its manifest (`version_problems`);
files are opened without following links, and a link, a special file or a
file with several hard links is a problem, of which nothing about what it
points to is reported. The listing of ``versions/`` (`scan_versions`) refuses
what is not a version directory; leftovers of crashed writers
(`leftovers`) are listed apart and are not problems. Loading, promoting,
rolling back and backing up check a version here first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release_spec.store.errors import CorruptFileError, UnsafeModelError, _shown
from release_spec.store.files import (
    _dir_beneath,
    _dir_refusal,
    _is_real_dir,
    _open_beneath,
    _refusal,
    _sha256_fd,
)
from release_spec.store.keras_files import _check_model_content
from release_spec.store.layout import (
    _MANIFEST_FORMAT,
    _VERSION_RE,
    INCOMING_PREFIX,
    LOCK_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    VERSIONS_DIR,
)
from release_spec.store.sealed import _check_manifest, _read_sealed

__all__ = [
    "VerifyReport",
    "has_version",
    "leftovers",
    "read_manifest",
    "scan_versions",
    "version_names",
    "version_problems",
]


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of `ModelStore.verify`; an empty ``problems`` means the store is sound."""

    root: Path
    versions: tuple[str, ...]
    production: str | None
    problems: tuple[str, ...]
    leftovers: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found (leftovers of crashed writers are not problems)."""
        return not self.problems


def read_manifest(root: Path, version: str) -> dict[str, Any]:
    """A version's sealed manifest, checked (`release_spec.store.sealed._check_manifest`)."""
    rel = f"{VERSIONS_DIR}/{version}/{MANIFEST_NAME}"
    data = _read_sealed(root, rel, _MANIFEST_FORMAT)
    _check_manifest(root / rel, data, version)
    return data


def version_names(versions_fd: int) -> list[str]:
    """The committed versions' names in the opened ``versions`` directory, sorted."""
    # Dot-names are registrations in progress or debris of crashed ones.
    return sorted(n for n in os.listdir(versions_fd) if not n.startswith("."))


def has_version(root: Path, name: str) -> bool:
    """Whether ``versions/<name>`` is a directory (a link to one is not)."""
    with _dir_beneath(root, VERSIONS_DIR) as fd:
        return _is_real_dir(name, fd)


def version_problems(root: Path, version: str, *, check_model: bool = True) -> list[str]:
    """Every mismatch between a version's files and its manifest (empty when sound)."""
    vdir = root / VERSIONS_DIR / version
    try:
        data = read_manifest(root, version)
        unlisted = _unlisted(root, version, data["files"])
        missing_parent = data["parent"] is not None and not has_version(root, data["parent"])
    except CorruptFileError as exc:
        return [str(exc)]
    problems = [
        f"{_shown(vdir / name)}: not listed in the manifest{f' and {why}' if why else ''}"
        for name, why in unlisted
    ]
    for name, expected in sorted(data["files"].items()):
        problems.extend(_file_problems(root, version, name, expected, check_model=check_model))
    if missing_parent:
        parent = data["parent"]
        problems.append(f"{vdir / MANIFEST_NAME}: parent {parent!r} is not in the store")
    return problems


def _unlisted(root: Path, version: str, files: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Entries of a version directory its manifest does not list, with why each is refused."""
    found: list[tuple[str, str | None]] = []
    with _dir_beneath(root, f"{VERSIONS_DIR}/{version}") as fd:
        for entry in sorted(os.scandir(fd), key=lambda e: e.name):
            if entry.name != MANIFEST_NAME and entry.name not in files:
                with contextlib.suppress(FileNotFoundError):  # gone since the listing
                    found.append((entry.name, _refusal(entry.stat(follow_symlinks=False))))
    return found


def _file_problems(
    root: Path, version: str, name: str, expected: Mapping[str, Any], *, check_model: bool
) -> list[str]:
    path = root / VERSIONS_DIR / version / name
    try:
        fd = _open_beneath(root, f"{VERSIONS_DIR}/{version}/{name}")
    except FileNotFoundError:
        return [f"{path}: missing"]
    except CorruptFileError as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"{path}: cannot be read: {exc.strerror}"]
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        # A wrong size is reported without reading: no hashing of a huge file.
        if size != expected["size"]:
            return [f"{path}: size {size} does not match the manifest (size {expected['size']})"]
        digest, size = _sha256_fd(fd)
        if size != expected["size"] or digest != expected["sha256"]:
            return [
                f"{path}: sha256 {digest[:12]}… (size {size}) does not match the manifest "
                f"({expected['sha256'][:12]}…, size {expected['size']})"
            ]
        if check_model and name == MODEL_NAME:
            f.seek(0)
            try:
                _check_model_content(path, f)
            except UnsafeModelError as exc:
                return [str(exc)]
    return []


def scan_versions(root: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """The entries of ``versions/``, those that are no version directory (with why), and the
    problems of the listing itself (a lock that is not a plain file, a refused ``versions``)."""
    problems: list[str] = []
    lock = root / LOCK_NAME
    with contextlib.suppress(FileNotFoundError):
        if why := _refusal(os.lstat(lock)):
            problems.append(f"{lock}: {why}")
    names: list[str] = []
    refused: dict[str, str] = {}
    try:
        with _dir_beneath(root, VERSIONS_DIR) as fd:
            names = version_names(fd)
            for name in names:
                why = None if _VERSION_RE.fullmatch(name) else "is not a valid version name"
                with contextlib.suppress(FileNotFoundError):
                    why = why or _dir_refusal(name, fd)
                if why:
                    refused[name] = why
    except CorruptFileError as exc:
        problems.append(str(exc))
    return names, refused, problems


def leftovers(root: Path) -> list[str]:
    """What crashed writers left: temporary files and registrations in progress."""
    found = [_shown(p) for p in root.glob(".*.tmp")]
    with contextlib.suppress(CorruptFileError), _dir_beneath(root, VERSIONS_DIR) as fd:
        found += [
            _shown(root / VERSIONS_DIR / n) for n in os.listdir(fd) if n.startswith(INCOMING_PREFIX)
        ]
    return sorted(found)
