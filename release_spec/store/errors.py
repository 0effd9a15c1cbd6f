"""The model store's exceptions, and `_shown`, which puts a name from the store on one safe line.

Every error the store raises is a `StoreError`; a message names the store file
at fault, escaped by `_shown` so that a name chosen by whoever wrote the store
cannot forge a line of a report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from release_spec.store.lock import LockHolder

__all__ = [
    "CorruptFileError",
    "IntegrityError",
    "StaleLockWarning",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "UnsafeModelError",
]


class StoreError(Exception):
    """Base class of every error raised by the model store."""


def _shown(text: object) -> str:
    """``text`` on one printable line: control characters and undecodable bytes escaped.

    File names come from directory listings an attacker may control; a name with
    a newline or a terminal escape must not forge lines of a report or an error.

    Examples:
        >>> _shown("versions/v1\\nok: 2 version(s)")
        'versions/v1\\\\nok: 2 version(s)'
    """
    shown = str(text)
    if shown.isprintable():
        return shown
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in shown)


class CorruptFileError(StoreError):
    """A store file (manifest, pointer, marker) is truncated, unparsable or edited."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{_shown(path)}: {problem}")
        self.path = path


class IntegrityError(StoreError):
    """Stored bytes do not match their recorded sha256 (or a verify found problems)."""


class UnsafeModelError(StoreError, ValueError):
    """A model file in a refused format, or one whose config would run code."""


class StoreWriteError(StoreError, OSError):
    """A write to the store failed (disk full, quota, read-only file system, permissions).

    It is also an ``OSError`` with the original ``errno``; ``filename`` is the
    store file that could not be written (never a temporary name).
    """

    def __str__(self) -> str:
        return f"cannot write {_shown(self.filename)}: {self.strerror}"


class StoreLockedError(StoreError):
    """Another writer holds the store's lock."""

    def __init__(self, lock_path: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder else "another process (holder details not yet written)"
        super().__init__(f"model store is locked by {who}; lock file {_shown(lock_path)}")
        self.lock_path = lock_path
        self.holder = holder


class StaleLockWarning(UserWarning):
    """A lock left by a writer that died was taken over."""
