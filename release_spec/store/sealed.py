"""Sealed JSON: the store's metadata files carry a checksum of their own content.

``manifest.json``, ``production.json`` and ``store.json`` carry a
``checksum`` field, the sha256 of their other fields in canonical JSON, so a
truncated or edited file is reported as such (naming the file) instead of
reading as an empty store. Manifest entries are plain file names inside their
version directory (no ``/``, no ``..``), checked when a manifest is sealed and
when it is read (`_check_manifest`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from release_spec.store.errors import CorruptFileError
from release_spec.store.files import _read_store_file
from release_spec.store.layout import (
    _FILE_NAME_RE,
    _SHA256_RE,
    _VERSION_RE,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MODEL_NAME,
)


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _sealed(body: Mapping[str, Any]) -> bytes:
    """JSON with a ``checksum`` over the other fields, so any edit or truncation is detected."""
    checksum = hashlib.sha256(_canonical(body)).hexdigest()
    text = json.dumps({**body, "checksum": checksum}, sort_keys=True, indent=2, allow_nan=False)
    return (text + "\n").encode()


def _read_sealed(root: Path, rel: str, expected_format: str) -> dict[str, Any]:
    path = root / rel
    try:
        raw = _read_store_file(root, rel)
    except OSError as exc:
        raise CorruptFileError(path, f"cannot be read: {exc.strerror}") from None
    return _parse_sealed(path, raw, expected_format)


def _parse_sealed(path: Path, raw: bytes, expected_format: str) -> dict[str, Any]:
    if not raw.strip():
        raise CorruptFileError(path, "is empty (truncated)")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"is not valid JSON (truncated or corrupted): {exc}") from None
    except RecursionError:
        raise CorruptFileError(path, "is nested too deeply") from None
    if not isinstance(data, dict):
        raise CorruptFileError(path, "is not a JSON object")
    checksum = data.pop("checksum", None)
    if not isinstance(checksum, str):
        raise CorruptFileError(path, "has no checksum field")
    try:
        actual = hashlib.sha256(_canonical(data)).hexdigest()
    except ValueError:
        raise CorruptFileError(path, "holds non-finite numbers") from None
    if actual != checksum:
        raise CorruptFileError(path, "checksum mismatch: the file was edited or corrupted")
    if data.get("format") != expected_format:
        raise CorruptFileError(path, f"format is {data.get('format')!r}, not {expected_format!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise CorruptFileError(
            path, f"format_version {data.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    return data


def _check_manifest(path: Path, data: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The manifest's ``files`` after checking every field; raise naming ``path`` otherwise.

    Used when a manifest is sealed and when one is read: an entry is a plain
    name inside the version directory, never a path that could leave it.
    """
    if data.get("version") != version:
        raise CorruptFileError(path, f"names version {data.get('version')!r}, not {version!r}")
    files: dict[str, Any] = _field(path, data, "files", dict)
    if MODEL_NAME not in files:
        raise CorruptFileError(path, f"does not list {MODEL_NAME}")
    for name, entry in files.items():
        if not _FILE_NAME_RE.fullmatch(name) or name == MANIFEST_NAME:
            raise CorruptFileError(
                path, f"entry {name!r} is not a plain file name inside its version directory"
            )
        if not isinstance(entry, dict) or not _is_sha256(entry.get("sha256")):
            raise CorruptFileError(path, f"entry for {name!r} has no sha256")
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise CorruptFileError(path, f"entry for {name!r} has no size")
    _field(path, data, "created", str)
    _field(path, data, "metrics", dict)
    _field(path, data, "data_hashes", dict)
    _field(path, data, "keras_version", str)
    parent = _field(path, data, "parent", (str, type(None)))
    if parent is not None and not _VERSION_RE.fullmatch(parent):
        raise CorruptFileError(path, f"names an invalid parent {parent!r}")
    return files


def _is_sha256(value: Any) -> bool:
    # The digest is printed (store list, rollback): it must be what it claims to be.
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def _field(path: Path, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise CorruptFileError(path, f"field {key!r} is missing or has the wrong type")
    return value
