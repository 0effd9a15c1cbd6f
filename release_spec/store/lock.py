"""The store's writer lock: an exclusive ``flock`` on ``.lock`` with a holder record.

Writers hold an exclusive ``flock`` on ``.lock``; the kernel releases it when
the process dies, so a lock left behind by a killed writer is recognised as
stale and taken over (with a `StaleLockWarning`). Readers need no lock.
Locking uses ``fcntl`` and so needs a POSIX system.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from release_spec.store.errors import StaleLockWarning, StoreLockedError, StoreWriteError, _shown
from release_spec.store.files import _open_beneath, _writing
from release_spec.store.layout import LOCK_NAME, _now

__all__ = ["LockHolder", "writer_lock"]


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the writer lock."""

    pid: int
    host: str
    since: str

    def describe(self) -> str:
        """One line naming the holder, for error messages."""
        # The record is read from a file in the store: it is shown, never trusted.
        return _shown(f"pid {self.pid} on host {self.host} since {self.since}")


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the store at ``root``.

    The lock file is opened without following a link and must be a regular
    file with one link: a link or a FIFO in its place is refused, so the
    holder record is never written anywhere but into the store.

    Raises:
        StoreLockedError: Another writer holds the lock (naming it).
        StoreWriteError: The lock file cannot be opened or written.
    """
    lock_path = root / LOCK_NAME
    with _writing(lock_path):
        fd = _open_beneath(root, LOCK_NAME, os.O_RDWR, create=True)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreWriteError(exc.errno, exc.strerror, str(lock_path)) from None
            raise StoreLockedError(lock_path, _read_holder(fd)) from None
        # The kernel drops a flock when its process dies, so a holder record
        # still present here belongs to a writer that did not finish.
        stale = _read_holder(fd)
        if stale is not None:
            if stale.host != socket.gethostname():
                state = "on another host"
            else:
                state = "alive" if _pid_alive(stale.pid) else "no longer running"
            warnings.warn(
                StaleLockWarning(
                    f"took over the stale lock {lock_path} of {stale.describe()} "
                    f"(process {state}, lock not held)"
                ),
                # Points at the ModelStore method that took the lock (through
                # this generator, ModelStore._writer and two contextlib frames).
                stacklevel=5,
            )
        me = LockHolder(pid=os.getpid(), host=socket.gethostname(), since=_now())
        with _writing(lock_path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            os.fsync(fd)
        try:
            yield
        finally:
            # A record left behind only makes the next writer warn of a stale lock.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> LockHolder | None:
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
        return LockHolder(pid=int(data["pid"]), host=str(data["host"]), since=str(data["since"]))
    except (ValueError, KeyError, TypeError):
        return LockHolder(pid=-1, host="unknown", since="unknown (unreadable lock record)")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
