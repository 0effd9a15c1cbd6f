"""A versioned, crash-safe model store with a production pointer, backup and rollback.

Every registered model is an immutable version directory; a single pointer
file says which version is in production and keeps the history that makes
rollback one call. Every byte is covered by a sha256 digest that is checked
before a model is deserialised, and only the Keras v3 ``.keras`` format is
accepted: HDF5, pickle/joblib and TensorFlow SavedModel inputs are refused,
and so is any model whose configuration contains a ``Lambda`` layer.

On-disk layout (``format_version`` 1)::

    STORE/
      store.json                  marker: {"format": "release-spec-model-store", ...}
      production.json             the pointer: version in production, its sha256,
                                  history of earlier production versions (oldest first)
      .lock                       writer lock (flock); holder pid/host/since while held
      versions/
        v0001/                    one immutable directory per version
          model.keras             the model, copied byte for byte
          manifest.json           sha256 + size of every file, metrics, data hashes,
                                  parent, created, keras version, format version
        .incoming-<token>/        a registration in progress (or crashed): ignored

``manifest.json``, ``production.json`` and ``store.json`` carry a
``checksum`` field, the sha256 of their other fields in canonical JSON, so a
truncated or edited file is reported as such (naming the file) instead of
reading as an empty store.

Hostile stores: nothing inside the store is trusted to be what its name
says. No store operation follows a symbolic link or opens anything but a
regular file or a directory (``O_NOFOLLOW``, checked with ``lstat``/``fstat``;
``O_NONBLOCK`` so a FIFO never blocks); FIFOs, devices, sockets and files with
more than one hard link are refused, and `verify` reports them as damage.
The store's root is taken as the caller names it; every path below it is
checked, and writers work in ``versions`` through a descriptor opened that
way, so a link swapped in later never redirects a write or a deletion.
Metadata reads are capped at `MAX_METADATA_BYTES`, so a file that never ends
cannot exhaust memory. Manifest entries are plain file names inside
their version directory (no ``/``, no ``..``), checked when a manifest is
sealed and when it is read. Messages name the store file at fault and never
report facts (hash, size) about a file outside the store; names read from the
store are escaped, so a name with a newline or a terminal escape cannot forge
a line of a report.

Crash safety: a registration writes into ``versions/.incoming-<token>``,
fsyncs every file and the directory, then renames the directory into place;
that rename is the commit. The pointer is replaced atomically (temp file in
the same directory, flush, fsync, ``os.replace``, fsync of the directory).
Readers need no lock because versions are never modified or deleted and the
pointer only ever names a committed version. Writers hold an exclusive
``flock`` on ``.lock``; the kernel releases it when the process dies, so a
lock left behind by a killed writer is recognised as stale and taken over
(with a `StaleLockWarning`). The next writer deletes the leftovers of
a crashed one. Locking uses ``fcntl`` and so needs a POSIX system. Every
``OSError`` of a write (a full disk, a quota, a read-only file system) becomes
a `StoreWriteError` naming the file; the temporary file is removed and the
old state stays as it was.

Reproducible artifacts: `ModelStore.save_model` rewrites the ``.keras`` zip
that Keras writes so that the same weights give the same bytes (see
`reproducible_keras`): Keras records the save time and the memory addresses
of shared objects, which would make every save a "new" version.

Keras is imported only inside `safe_load_model` and
`ModelStore.save_model`; the rest of the module is standard library.

Example:
    >>> import shutil, tempfile, zipfile
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "m.keras", "w") as z:
    ...     z.writestr("config.json", '{"module": "keras", "class_name": "Sequential"}')
    ...     z.writestr("metadata.json", '{"keras_version": "3.15.1"}')
    ...     z.writestr("model.weights.h5", b"weights")
    >>> store = ModelStore(tmp / "store", create=True)
    >>> info = store.register(tmp / "m.keras", metrics={"accuracy": 0.97})
    >>> info.version, info.metrics["accuracy"]
    ('v0001', 0.97)
    >>> store.promote("v0001").version
    'v0001'
    >>> store.verify().ok
    True
    >>> shutil.rmtree(tmp)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, BinaryIO

__all__ = [
    "MAX_KERAS_JSON_BYTES",
    "MAX_METADATA_BYTES",
    "MIN_KERAS_VERSION",
    "RESTORE_HEADROOM_BYTES",
    "CorruptFileError",
    "IntegrityError",
    "LockHolder",
    "ModelStore",
    "StaleLockWarning",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "UnsafeModelError",
    "VerifyReport",
    "VersionInfo",
    "atomic_write",
    "check_model_file",
    "reproducible_keras",
    "safe_load_model",
]

FORMAT_VERSION = 1
#: Loading refuses older Keras: before 3.11.3 ``safe_mode`` could be bypassed.
MIN_KERAS_VERSION = (3, 11, 3)
MODEL_NAME = "model.keras"
MANIFEST_NAME = "manifest.json"
POINTER_NAME = "production.json"
MARKER_NAME = "store.json"
LOCK_NAME = ".lock"
VERSIONS_DIR = "versions"
INCOMING_PREFIX = ".incoming-"
_STORE_FORMAT = "release-spec-model-store"
_MANIFEST_FORMAT = "release-spec-model-manifest"
_POINTER_FORMAT = "release-spec-production-pointer"
#: Largest manifest, pointer or marker the store reads, in bytes. They hold a few
#: hundred bytes; the cap keeps a ``/dev/zero``-like file from exhausting memory.
MAX_METADATA_BYTES = 1 << 20
#: Largest ``config.json``/``metadata.json`` read from a ``.keras`` zip, in bytes.
MAX_KERAS_JSON_BYTES = 64 << 20
#: `ModelStore.restore` writes an archive member only if this much disk stays free after it.
RESTORE_HEADROOM_BYTES = 16 << 20
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# A manifest entry: one plain name inside its version directory, never a path.
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# A FIFO opened for reading without O_NONBLOCK waits for a writer forever.
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS
# Fixed values for what Keras writes differently on every save (see reproducible_keras).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FIXED_DATE_SAVED = "1980-01-01@00:00:00"
# ASCII digits only: int() also reads other scripts' digits ("v١٢٣" is 123).
_AUTO_VERSION_RE = re.compile(r"v([0-9]+)")
_CHUNK = 1 << 20
# Members a Keras v3 zip may hold; anything else is refused rather than guessed at.
_KERAS_MEMBERS = frozenset(
    {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}
)
# Layers that execute code or load foreign graphs on deserialisation.
_FORBIDDEN_CLASSES = {
    "Lambda": ("a Lambda layer", "runs arbitrary Python code"),
    "__lambda__": ("a serialised Python lambda", "runs arbitrary Python code"),
    "TFSMLayer": ("a TFSMLayer", "loads a TensorFlow SavedModel"),
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class StoreError(Exception):
    """Base class of every error raised by the model store."""


def _shown(text: object) -> str:
    """``text`` on one printable line: control characters and undecodable bytes escaped.

    File names come from directory listings an attacker may control; a name with
    a newline or a terminal escape must not forge lines of a report or an error.

    Example:
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


class StoreLockedError(StoreError):
    """Another writer holds the store's lock."""

    def __init__(self, lock_path: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder else "another process (holder details not yet written)"
        super().__init__(f"model store is locked by {who}; lock file {_shown(lock_path)}")
        self.lock_path = lock_path
        self.holder = holder


class StaleLockWarning(UserWarning):
    """A lock left by a writer that died was taken over."""


@dataclass(frozen=True)
class VersionInfo:
    """One registered version, as recorded in its manifest.

    Attributes:
        version: The version name (``v0001``, ...).
        sha256: Digest of the stored ``model.keras``.
        created: Registration time, ISO 8601 UTC.
        parent: The version it was derived from, if any.
        metrics: Figures recorded at registration.
        data_hashes: Digests of the data it was trained and judged on.
        keras_version: The Keras version recorded in the file.
        path: The stored ``model.keras`` (read it through `ModelStore.load_model`).
    """

    version: str
    sha256: str
    created: str
    parent: str | None
    metrics: Mapping[str, float] = field(default_factory=dict, hash=False)
    data_hashes: Mapping[str, str] = field(default_factory=dict, hash=False)
    keras_version: str = ""
    path: Path = Path()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the path as a string)."""
        return {
            "version": self.version,
            "sha256": self.sha256,
            "created": self.created,
            "parent": self.parent,
            "metrics": dict(self.metrics),
            "data_hashes": dict(self.data_hashes),
            "keras_version": self.keras_version,
            "path": str(self.path),
        }


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


# --------------------------------------------------------------------------- file helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` of the block into a `StoreWriteError` naming ``path``."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreWriteError(exc.errno, exc.strerror or str(exc), str(path)) from None


# --8<-- [start:atomic_write]
@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A new file that replaces ``path`` only once everything written to it is on disk.

    A crash leaves the old file or the new one, never a mix; an exception in the
    ``with`` block removes the temporary file and leaves ``path`` untouched. An
    ``OSError`` (a full disk, a read-only file system) becomes a
    `StoreWriteError` naming ``path``.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    with _writing(path):
        # O_EXCL never follows a symlink: the temporary file is always a new file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            # rename replaces a symlink at ``path`` itself, never what it points to.
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a mix.

    Raises:
        StoreWriteError: The write failed (the old file, if any, is unchanged).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "note.txt"
        >>> atomic_write(target, b"hello")
        >>> target.read_bytes()
        b'hello'
        >>> shutil.rmtree(target.parent)
    """
    with _atomic_file(path) as f:
        f.write(data)


# --8<-- [end:atomic_write]


def _refusal(st: os.stat_result) -> str | None:
    """Why a store file with these attributes is refused, or None for a plain file."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if st.st_nlink > 1:
            # Another name for the same bytes: they could change (or be truncated
            # by a writer) from outside the store.
            return f"has {st.st_nlink} hard links (refused)"
        return None
    kind = {
        stat.S_IFLNK: "a symbolic link",
        stat.S_IFDIR: "a directory",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFSOCK: "a socket",
    }.get(stat.S_IFMT(mode), "a special file")
    return f"is {kind}, not a regular file (refused)"


def _dir_refusal(path: Path | str, dir_fd: int | None = None) -> str | None:
    """Why ``path`` (relative to ``dir_fd`` if given) is not a real directory (None when it is).

    Raises:
        FileNotFoundError: Nothing is at ``path``.
    """
    mode = os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link, not a directory (refused)"
    return "is not a directory"


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _is_real_dir(path: Path | str, dir_fd: int | None = None) -> bool:
    try:
        return _dir_refusal(path, dir_fd) is None
    except FileNotFoundError:
        return False


def _open_regular(name: str, flags: int, *, dir_fd: int, shown: Path, create: bool = False) -> int:
    """Open ``name`` in ``dir_fd`` only if it is a regular file with one link; never follow it."""
    try:
        before: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        if not create:
            raise
        before = None
    # Judge by lstat first: opening a device or a FIFO can have effects of its own.
    if before is not None and (why := _refusal(before)):
        raise CorruptFileError(shown, why)
    extra = os.O_CREAT if create else 0
    try:
        fd = os.open(name, flags | extra | _OPEN_FLAGS, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptFileError(
                shown, "is a symbolic link, not a regular file (refused)"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        why = _refusal(st)
        if (
            why is None
            and before is not None
            and (st.st_dev, st.st_ino)
            != (
                before.st_dev,
                before.st_ino,
            )
        ):
            why = "was replaced while it was being opened (refused)"
        if why:
            raise CorruptFileError(shown, why)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_beneath(root: Path, rel: str, flags: int = os.O_RDONLY, *, create: bool = False) -> int:
    """Open the store file ``root/rel`` without following a symlink at any level below ``root``.

    Each directory on the way is opened relative to the previous one with
    ``O_NOFOLLOW``, so no component can be swapped for a link between a check
    and the open.

    Raises:
        CorruptFileError: A component is a link or not a directory, or the file
            is not a regular file with a single link (naming the path).
        OSError: The file does not exist (``FileNotFoundError``) or cannot be opened.
    """
    folder, _, name = rel.rpartition("/")
    dfd = _open_dir_beneath(root, folder)
    try:
        return _open_regular(name, flags, dir_fd=dfd, shown=root / rel, create=create)
    finally:
        os.close(dfd)


def _open_dir_beneath(root: Path, rel: str) -> int:
    """Open the directory ``root/rel`` (``""``: the root), following no link below ``root``.

    Operations relative to the returned descriptor stay in that directory even
    if a component of its path is swapped for a link afterwards.

    Raises:
        CorruptFileError: A component is missing, a link, or not a directory (naming it).
    """
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parts = rel.split("/") if rel else []
    try:
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=dfd)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    raise
                where = root.joinpath(*parts[: i + 1])
                try:
                    why = _dir_refusal(part, dfd) or "is not a directory"
                except FileNotFoundError:
                    why = "is missing"
                raise CorruptFileError(where, why) from None
            os.close(dfd)
            dfd = nfd
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def _read_fd_capped(fd: int, shown: Path | str, cap: int) -> bytes:
    """At most ``cap`` bytes of an open file; a larger file is refused, not truncated."""
    size = os.fstat(fd).st_size
    if size > cap:
        raise CorruptFileError(Path(shown), f"is {size} bytes, over the {cap}-byte limit")
    chunks: list[bytes] = []
    total = 0
    # Read one byte past the cap: a file that grows after fstat is caught too.
    while chunk := os.read(fd, min(_CHUNK, cap + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise CorruptFileError(Path(shown), f"is over the {cap}-byte limit")
    return b"".join(chunks)


def _open_present(root: Path, rel: str) -> int:
    """`_open_beneath` for a file checked earlier: one gone since then is damage, not an OSError."""
    try:
        return _open_beneath(root, rel)
    except FileNotFoundError:
        raise CorruptFileError(root / rel, "is missing") from None


def _read_store_file(root: Path, rel: str, cap: int = MAX_METADATA_BYTES) -> bytes:
    fd = _open_present(root, rel)
    try:
        return _read_fd_capped(fd, root / rel, cap)
    finally:
        os.close(fd)


def _sha256_fd(fd: int) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, _CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def _copy_hashing(
    src: IO[bytes], dst: Path | str, limit: int | None = None, *, dir_fd: int | None = None
) -> tuple[str, int]:
    """Copy ``src`` to a new file ``dst`` (fsynced) and return the digest of the bytes written.

    With ``limit``, at most ``limit`` bytes are written (a source that is longer
    shows up as a wrong size or digest, not as a full disk). With ``dir_fd``,
    ``dst`` is a name in that directory.
    """
    h = hashlib.sha256()
    size = 0
    # O_EXCL never follows a symlink: dst is always a new file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(dst, flags, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as fout:
        while True:
            want = _CHUNK if limit is None else min(_CHUNK, limit - size)
            chunk = src.read(want) if want > 0 else b""
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest(), size


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


def _check_version_name(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise ValueError(
            f"invalid version name {version!r}: use letters, digits, '.', '_', '+', '-' "
            "(at most 128 characters, not starting with a dot or dash)"
        )
    return version


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


def _parse_version(text: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise StoreError(f"cannot parse Keras version {text!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


# --------------------------------------------------------------------------- model files


def _refuse_format(path: Path) -> None:
    """Raise naming the format when ``path`` is not a Keras v3 zip."""
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise UnsafeModelError(f"{path}: TensorFlow SavedModel directories are refused")
        raise UnsafeModelError(f"{path}: a directory is not a .keras model file")
    if not path.exists():
        raise UnsafeModelError(f"{path}: no such model file")
    if not path.is_file():
        raise UnsafeModelError(f"{path}: not a regular file (refused)")
    suffix = path.suffix.lower()
    named = {
        ".h5": "HDF5 (.h5)",
        ".hdf5": "HDF5 (.hdf5)",
        ".pkl": "pickle (.pkl)",
        ".pickle": "pickle (.pickle)",
        ".joblib": "joblib (.joblib)",
        ".pb": "TensorFlow SavedModel (.pb)",
    }
    if suffix in named:
        raise UnsafeModelError(f"{path}: {named[suffix]} format is refused; save as .keras")


def _open_model_file(path: Path) -> BinaryIO:
    """Open a caller's model file for reading; a FIFO or device swapped in is refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeModelError(f"{path}: not a regular file (refused)")
    return os.fdopen(fd, "rb")


def _check_model_content(path: Path, f: BinaryIO) -> str:
    """The checks of `check_model_file` on the bytes of an open file (``path`` names it)."""
    head = f.read(8)
    f.seek(0)
    # Content wins over the name: a pickle renamed to .keras is still a pickle.
    if head.startswith(_HDF5_MAGIC):
        raise UnsafeModelError(f"{path}: HDF5 content is refused; save as .keras")
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        raise UnsafeModelError(f"{path}: pickle content is refused; save as .keras")
    if path.suffix.lower() != ".keras":
        raise UnsafeModelError(f"{path}: unsupported model format {path.suffix or '(none)'!r}")
    if not zipfile.is_zipfile(f):
        raise UnsafeModelError(f"{path}: not a Keras v3 .keras zip archive")
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            names = zf.namelist()
            odd = [n for n in names if n not in _KERAS_MEMBERS and not n.startswith("assets/")]
            bad = [n for n in names if n.startswith("/") or ".." in n.split("/")]
            if odd or bad:
                raise UnsafeModelError(f"{path}: unexpected members in .keras archive: {odd + bad}")
            if "config.json" not in names or "metadata.json" not in names:
                raise UnsafeModelError(f"{path}: .keras archive lacks config.json/metadata.json")
            for name in ("config.json", "metadata.json"):
                size = zf.getinfo(name).file_size
                if size > MAX_KERAS_JSON_BYTES:
                    raise UnsafeModelError(
                        f"{path}: {name} declares {size} bytes, over the "
                        f"{MAX_KERAS_JSON_BYTES}-byte limit"
                    )
            config = json.loads(zf.read("config.json"))
            metadata = json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UnsafeModelError(f"{path}: unreadable .keras archive: {exc}") from None
    except RecursionError:
        raise UnsafeModelError(f"{path}: config.json is nested too deeply") from None
    found = _forbidden_in_config(config)
    if found:
        raise UnsafeModelError(f"{path}: refused, the model contains " + "; ".join(found))
    keras_version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    if not isinstance(keras_version, str):
        raise UnsafeModelError(f"{path}: metadata.json has no keras_version")
    return keras_version


def _forbidden_in_config(node: Any, where: str = "config") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        cls = node.get("class_name")
        if isinstance(cls, str) and cls in _FORBIDDEN_CLASSES:
            what, why = _FORBIDDEN_CLASSES[cls]
            config = node.get("config")
            name = config.get("name") if isinstance(config, dict) else None
            label = f"{what} {name!r}" if isinstance(name, str) else what
            found.append(f"{label} ({why}) at {where}")
        module = node.get("module")
        foreign = isinstance(module, str) and not (module == "keras" or module.startswith("keras."))
        if isinstance(cls, str) and foreign:
            found.append(f"object {cls!r} from module {module!r} (not Keras) at {where}")
        for key, value in node.items():
            found.extend(_forbidden_in_config(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_forbidden_in_config(value, f"{where}[{i}]"))
    return found


# --8<-- [start:check_model_file]
def check_model_file(path: Path | str) -> str:
    """Refuse anything but a plain Keras v3 ``.keras`` zip, without importing Keras.

    Checks the format by name and content (HDF5, pickle/joblib and SavedModel
    are refused, naming the format), the zip's member names, and the
    ``config.json`` for ``Lambda``/``TFSMLayer`` layers, serialised lambdas
    and objects from modules outside Keras. Nothing in the file is executed.

    Args:
        path: The model file.

    Returns:
        The Keras version recorded in the file's ``metadata.json``.

    Raises:
        UnsafeModelError: The format is refused or the config would run code.
    """
    path = Path(path)
    _refuse_format(path)
    with _open_model_file(path) as f:
        return _check_model_content(path, f)


# --8<-- [end:check_model_file]


def safe_load_model(path: Path | str) -> Any:
    """Load a ``.keras`` file after `check_model_file`, with ``safe_mode=True``.

    Keras is imported here, and only here and in `ModelStore.save_model`.
    Keras older than `MIN_KERAS_VERSION` is refused. Prefer
    `ModelStore.load_model`, which also checks every sha256 first.

    Raises:
        UnsafeModelError: The file is refused (see `check_model_file`).
        StoreError: The installed Keras is too old.
    """
    path = Path(path)
    check_model_file(path)
    import keras

    installed = _parse_version(keras.__version__)
    if installed < MIN_KERAS_VERSION:
        minimum = ".".join(map(str, MIN_KERAS_VERSION))
        raise StoreError(f"Keras {keras.__version__} is too old to load safely; need >= {minimum}")
    return keras.saving.load_model(path, safe_mode=True)


def _renumber_shared_objects(node: Any, numbers: dict[Any, int]) -> None:
    """Replace Keras's ``shared_object_id`` values (memory addresses) by 1, 2, ... in order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "shared_object_id" and isinstance(value, int):
                node[key] = numbers.setdefault(value, len(numbers) + 1)
            else:
                _renumber_shared_objects(value, numbers)
    elif isinstance(node, list):
        for value in node:
            _renumber_shared_objects(value, numbers)


def reproducible_keras(src: Path | str, dst: Path | str) -> None:
    """Rewrite a ``.keras`` zip so that the same model always gives the same bytes.

    Keras writes three things that change from one save to the next although
    the model does not: the save time (``date_saved`` in ``metadata.json``),
    the zip entries' timestamps, and ``shared_object_id`` values in
    ``config.json``, which are memory addresses (``id()``). This writes the
    members in name order, uncompressed (no dependence on the zlib version),
    dated 1980-01-01, with ``date_saved`` fixed to ``1980-01-01@00:00:00`` and
    the shared-object ids numbered 1, 2, ... in order of first appearance (the
    links between shared objects are kept). The weights file is copied
    unchanged: h5py records no object timestamps by default, so equal weights
    already give equal bytes. The result is a normal Keras v3 file.

    Args:
        src: A ``.keras`` file written by Keras.
        dst: The new file (must not exist).

    Raises:
        UnsafeModelError: ``src`` is not a Keras v3 zip (see `check_model_file`).

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> for name, stamp in (("a", "2026-01-01@10:00:00"), ("b", "2026-06-30@23:59:59")):
        ...     with zipfile.ZipFile(tmp / f"{name}.keras", "w") as z:
        ...         z.writestr("config.json", '{"shared_object_id": ' + str(id(name)) + "}")
        ...         meta = {"keras_version": "3.15.1", "date_saved": stamp}
        ...         z.writestr("metadata.json", json.dumps(meta))
        ...     reproducible_keras(tmp / f"{name}.keras", tmp / f"{name}-fixed.keras")
        >>> (tmp / "a-fixed.keras").read_bytes() == (tmp / "b-fixed.keras").read_bytes()
        True
        >>> shutil.rmtree(tmp)
    """
    src, dst = Path(src), Path(dst)
    check_model_file(src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "x") as zout:
        for name in sorted(zin.namelist()):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, whatever the platform
            info.external_attr = 0o644 << 16
            if name in ("config.json", "metadata.json"):
                data = json.loads(zin.read(name))
                if name == "config.json":
                    _renumber_shared_objects(data, {})
                elif isinstance(data, dict) and "date_saved" in data:
                    data["date_saved"] = _FIXED_DATE_SAVED
                zout.writestr(info, json.dumps(data).encode())
                continue
            info.file_size = zin.getinfo(name).file_size
            with zin.open(name) as fin, zout.open(info, "w") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)


# --------------------------------------------------------------------------- the store


class ModelStore:
    """A directory of immutable model versions with an atomic production pointer.

    Args:
        root: The store directory.
        create: Create an empty store at ``root`` if there is none (an existing
            non-empty directory that is not a store is refused).

    Raises:
        StoreError: ``root`` is not a store (and ``create`` is false).
        CorruptFileError: ``store.json`` is damaged.
    """

    def __init__(self, root: Path | str, *, create: bool = False) -> None:
        self.root = Path(root)
        marker = self.root / MARKER_NAME
        # lstat: a dangling symlink in place of the marker is damage, not "no store";
        # a directory that cannot be searched is not "no store" either.
        try:
            os.lstat(marker)
            found = True
        except FileNotFoundError:
            found = False
        except NotADirectoryError:
            raise StoreError(f"{_shown(self.root)} is not a directory, not a model store") from None
        except OSError as exc:
            raise StoreError(f"{_shown(self.root)}: cannot be read: {exc.strerror}") from None
        if not found:
            if not create:
                raise StoreError(f"{self.root} is not a model store (no {MARKER_NAME})")
            with _writing(self.root):
                self.root.mkdir(parents=True, exist_ok=True)
            if any(not _creation_debris(p) for p in self.root.iterdir()):
                raise StoreError(f"refusing to create a model store in non-empty {self.root}")
            with _writing(self.root / VERSIONS_DIR):
                (self.root / VERSIONS_DIR).mkdir(exist_ok=True)
            body = {"format": _STORE_FORMAT, "format_version": FORMAT_VERSION, "created": _now()}
            atomic_write(marker, _sealed(body))
        _read_sealed(self.root, MARKER_NAME, _STORE_FORMAT)
        self._versions_dir = self.root / VERSIONS_DIR
        try:
            why = _dir_refusal(self._versions_dir)
        except FileNotFoundError:
            why = "is missing"
        if why:
            raise CorruptFileError(self._versions_dir, why)

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    # ------------------------------------------------------------------ reading

    def _rel(self, version: str, name: str) -> str:
        return f"{VERSIONS_DIR}/{version}/{name}"

    def _manifest(self, version: str) -> dict[str, Any]:
        rel = self._rel(version, MANIFEST_NAME)
        data = _read_sealed(self.root, rel, _MANIFEST_FORMAT)
        _check_manifest(self.root / rel, data, version)
        return data

    def _info(self, version: str) -> VersionInfo:
        data = self._manifest(version)
        return VersionInfo(
            version=version,
            sha256=data["files"][MODEL_NAME]["sha256"],
            created=data["created"],
            parent=data["parent"],
            metrics=dict(data["metrics"]),
            data_hashes=dict(data["data_hashes"]),
            keras_version=data["keras_version"],
            path=self._versions_dir / version / MODEL_NAME,
        )

    @contextlib.contextmanager
    def _versions_fd(self) -> Iterator[int]:
        """The ``versions`` directory, opened once without following a link.

        Everything a writer creates, renames or deletes in it goes through this
        descriptor: ``versions`` swapped for a link after the store was opened
        never sends a write or a deletion outside the store.
        """
        fd = _open_dir_beneath(self.root, VERSIONS_DIR)
        try:
            yield fd
        finally:
            os.close(fd)

    def _version_names(self, vfd: int | None = None) -> list[str]:
        if vfd is None:
            with self._versions_fd() as fd:
                return self._version_names(fd)
        # Dot-names are registrations in progress or debris of crashed ones.
        return sorted(n for n in os.listdir(vfd) if not n.startswith("."))

    def _has_version(self, name: str) -> bool:
        with self._versions_fd() as fd:
            return _is_real_dir(name, fd)

    def info(self, version: str) -> VersionInfo:
        """The manifest of one version.

        Raises:
            StoreError: No such version.
            CorruptFileError: Its manifest is damaged.
        """
        _check_version_name(version)
        if not os.path.lexists(self._versions_dir / version):
            raise StoreError(f"no version {version!r} in {self.root}")
        return self._info(version)

    def versions(self) -> list[VersionInfo]:
        """Every committed version, oldest first.

        Raises:
            CorruptFileError: A manifest is damaged (a damaged store never lists as empty).
        """
        names = self._version_names()
        for name in names:
            if not _VERSION_RE.fullmatch(name):
                raise CorruptFileError(self._versions_dir / name, "is not a valid version name")
        infos = [self._info(name) for name in names]
        return sorted(infos, key=lambda i: (i.created, i.version))

    def _pointer(self) -> dict[str, Any] | None:
        path = self.root / POINTER_NAME
        if not os.path.lexists(path):
            return None
        data = _read_sealed(self.root, POINTER_NAME, _POINTER_FORMAT)
        version = _field(path, data, "version", str)
        if not _is_sha256(data.get("sha256")):
            raise CorruptFileError(path, "field 'sha256' is not a sha256 digest")
        history = _field(path, data, "history", list)
        for name in [version, *history]:
            if not isinstance(name, str) or not _VERSION_RE.fullmatch(name):
                raise CorruptFileError(path, f"names an invalid version {name!r}")
            if not self._has_version(name):
                raise CorruptFileError(path, f"names version {name!r}, which is not in the store")
        return data

    def production(self) -> VersionInfo | None:
        """The version in production, or None if nothing was promoted yet.

        Raises:
            CorruptFileError: The pointer is damaged, names a missing version,
                or disagrees with that version's manifest.
        """
        pointer = self._pointer()
        if pointer is None:
            return None
        info = self._info(pointer["version"])
        if info.sha256 != pointer["sha256"]:
            raise CorruptFileError(
                self.root / POINTER_NAME,
                f"sha256 of {info.version!r} disagrees with its manifest",
            )
        return info

    def production_history(self) -> list[str]:
        """Earlier production versions, oldest first (the last one is what rollback restores)."""
        pointer = self._pointer()
        return list(pointer["history"]) if pointer else []

    def _problems_of(self, version: str, *, check_model: bool = True) -> list[str]:
        """Every mismatch between a version's files and its manifest (empty when sound).

        Files are opened without following links; a link, a special file or a
        file with several hard links is a problem, and nothing about what it
        points to is reported.
        """
        vdir = self._versions_dir / version
        try:
            data = self._manifest(version)
            unlisted = self._unlisted(version, data["files"])
            missing_parent = data["parent"] is not None and not self._has_version(data["parent"])
        except CorruptFileError as exc:
            return [str(exc)]
        problems = [
            f"{_shown(vdir / name)}: not listed in the manifest{f' and {why}' if why else ''}"
            for name, why in unlisted
        ]
        for name, expected in sorted(data["files"].items()):
            problems.extend(self._file_problems(version, name, expected, check_model=check_model))
        if missing_parent:
            parent = data["parent"]
            problems.append(f"{vdir / MANIFEST_NAME}: parent {parent!r} is not in the store")
        return problems

    def _unlisted(self, version: str, files: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        """Entries of a version directory its manifest does not list, with why each is refused."""
        found: list[tuple[str, str | None]] = []
        fd = _open_dir_beneath(self.root, f"{VERSIONS_DIR}/{version}")
        try:
            for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                if entry.name != MANIFEST_NAME and entry.name not in files:
                    with contextlib.suppress(FileNotFoundError):  # gone since the listing
                        found.append((entry.name, _refusal(entry.stat(follow_symlinks=False))))
        finally:
            os.close(fd)
        return found

    def _file_problems(
        self, version: str, name: str, expected: Mapping[str, Any], *, check_model: bool
    ) -> list[str]:
        path = self._versions_dir / version / name
        try:
            fd = _open_beneath(self.root, self._rel(version, name))
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
                return [
                    f"{path}: size {size} does not match the manifest (size {expected['size']})"
                ]
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

    def _leftovers(self) -> list[str]:
        found = [_shown(p) for p in self.root.glob(".*.tmp")]
        with contextlib.suppress(CorruptFileError), self._versions_fd() as vfd:
            found += [
                _shown(self._versions_dir / n)
                for n in os.listdir(vfd)
                if n.startswith(INCOMING_PREFIX)
            ]
        return sorted(found)

    def verify(self) -> VerifyReport:
        """Check every version's files against its manifest, and the pointer.

        Never raises for damage; each problem is one line naming the file.
        Leftovers of crashed writers are listed separately and are not problems.
        """
        problems: list[str] = []
        lock = self.root / LOCK_NAME
        with contextlib.suppress(FileNotFoundError):
            if why := _refusal(os.lstat(lock)):
                problems.append(f"{lock}: {why}")
        names: list[str] = []
        refused: dict[str, str] = {}
        try:
            with self._versions_fd() as vfd:
                names = self._version_names(vfd)
                for name in names:
                    why = None if _VERSION_RE.fullmatch(name) else "is not a valid version name"
                    with contextlib.suppress(FileNotFoundError):
                        why = why or _dir_refusal(name, vfd)
                    if why:
                        refused[name] = why
        except CorruptFileError as exc:
            problems.append(str(exc))
        for name in names:
            if name in refused:
                path, why = _shown(self._versions_dir / name), refused[name].removeprefix("is ")
                problems.append(f"{path}: not a version directory ({why})")
            else:
                problems.extend(self._problems_of(name))
        production: str | None = None
        try:
            info = self.production()
            production = info.version if info else None
        except CorruptFileError as exc:
            problems.append(str(exc))
        return VerifyReport(
            root=self.root,
            versions=tuple(names),
            production=production,
            # One damaged directory can be met twice (listing it, following the pointer).
            problems=tuple(dict.fromkeys(problems)),
            leftovers=tuple(self._leftovers()),
        )

    def _verified(self, version: str) -> VersionInfo:
        info = self.info(version)
        problems = self._problems_of(version, check_model=False)
        if problems:
            raise IntegrityError(f"version {version!r} is damaged: " + "; ".join(problems))
        with os.fdopen(_open_present(self.root, self._rel(version, MODEL_NAME)), "rb") as f:
            _check_model_content(info.path, f)
        return info

    def load_model(self, version: str | None = None) -> Any:
        """Load a version (default: production) after checking every hash.

        The model file is copied to a private temporary directory while it is
        hashed, and Keras loads that copy, so the bytes deserialised are exactly
        the bytes verified. Loading goes through `safe_load_model`.

        Raises:
            StoreError: No such version, or nothing in production.
            IntegrityError: A file does not match the manifest.
            UnsafeModelError: The model is refused.
        """
        if version is None:
            info = self.production()
            if info is None:
                raise StoreError(f"no production version in {self.root}")
            version = info.version
        info = self._verified(version)
        size = self._manifest(version)["files"][MODEL_NAME]["size"]
        with tempfile.TemporaryDirectory(prefix="release-spec-load-") as tmp:
            copy = Path(tmp) / MODEL_NAME
            with os.fdopen(_open_present(self.root, self._rel(version, MODEL_NAME)), "rb") as f:
                digest, _ = _copy_hashing(f, copy, limit=size + 1)
            if digest != info.sha256:
                raise IntegrityError(f"{info.path}: sha256 changed while loading")
            return safe_load_model(copy)

    # ------------------------------------------------------------------ writing

    # --8<-- [start:writer_lock]
    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold the exclusive writer lock; clean up after crashed writers.

        The lock file is opened without following a link and must be a regular
        file with one link: a link or a FIFO in its place is refused, so the
        holder record is never written anywhere but into the store.
        """
        lock_path = self.root / LOCK_NAME
        with _writing(lock_path):
            fd = _open_beneath(self.root, LOCK_NAME, os.O_RDWR, create=True)
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
                    stacklevel=3,
                )
            me = LockHolder(pid=os.getpid(), host=socket.gethostname(), since=_now())
            with _writing(lock_path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
                os.fsync(fd)
            try:
                self._clean_leftovers()
                yield
            finally:
                # A record left behind only makes the next writer warn of a stale lock.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    # --8<-- [end:writer_lock]

    def _clean_leftovers(self) -> None:
        with self._versions_fd() as vfd:
            for name in os.listdir(vfd):
                if not name.startswith(INCOMING_PREFIX):
                    continue
                # rmtree never follows links inside; a link in place of the directory
                # is unlinked itself, never what it points to.
                if _is_real_dir(name, vfd):
                    shutil.rmtree(name, ignore_errors=True, dir_fd=vfd)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=vfd)
        for path in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                path.unlink()

    def _next_version(self, vfd: int) -> str:
        names = self._version_names(vfd)
        numbers = [int(m[1]) for n in names if (m := _AUTO_VERSION_RE.fullmatch(n))]
        name = f"v{max(numbers, default=0) + 1:04d}"
        if not _VERSION_RE.fullmatch(name):
            raise StoreError(
                f"{self._versions_dir}: no automatic version name after v{max(numbers)}; "
                "pass version="
            )
        return name

    # --8<-- [start:register]
    def register(
        self,
        model_file: Path | str,
        *,
        version: str | None = None,
        metrics: Mapping[str, float] | None = None,
        data_hashes: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> VersionInfo:
        """Copy a ``.keras`` file into the store as a new immutable version.

        Args:
            model_file: A Keras v3 ``.keras`` file (checked by `check_model_file`).
            version: The version name; default the next ``vNNNN``.
            metrics: Finite numbers to record (e.g. gate figures).
            data_hashes: Digests of the data the model was trained and judged on.
            parent: The version this one was derived from (must exist).

        Returns:
            The new version's `VersionInfo`.

        Raises:
            UnsafeModelError: The file is refused.
            StoreError: The version exists already, or ``parent`` does not.
            StoreLockedError: Another writer holds the lock.
            ValueError: A bad version name, or a non-finite metric.
        """
        model_file = Path(model_file)
        keras_version = check_model_file(model_file)
        metrics = dict(metrics or {})
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"metric {key!r} is not a number: {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"metric {key!r} is not finite: {value!r}")
        hashes = dict(data_hashes or {})
        for key, digest in hashes.items():
            if not isinstance(digest, str):
                raise ValueError(f"data hash {key!r} is not a string: {digest!r}")
        if version is not None:
            _check_version_name(version)
        if parent is not None:
            _check_version_name(parent)
        with self._writer(), self._versions_fd() as vfd:
            name = version or self._next_version(vfd)
            target = self._versions_dir / name
            if _lexists(name, vfd):
                raise StoreError(
                    f"version {name!r} already exists in {self.root}; versions are immutable"
                )
            if parent is not None and not _is_real_dir(parent, vfd):
                raise StoreError(f"parent version {parent!r} is not in {self.root}")
            incoming = f"{INCOMING_PREFIX}{secrets.token_hex(8)}"
            body = {
                "format": _MANIFEST_FORMAT,
                "format_version": FORMAT_VERSION,
                "version": name,
                "created": _now(),
                "parent": parent,
                "keras_version": keras_version,
                "metrics": metrics,
                "data_hashes": hashes,
            }
            try:
                self._write_version(model_file, vfd, incoming, target, body)
            except BaseException:
                # Nothing half-written stays behind (the next writer would remove it too).
                shutil.rmtree(incoming, ignore_errors=True, dir_fd=vfd)
                raise
            return self._info(name)

    # --8<-- [end:register]

    def _write_version(
        self, model_file: Path, vfd: int, incoming: str, target: Path, body: dict[str, Any]
    ) -> None:
        """Fill ``incoming`` (in ``vfd``) with the model and manifest, then rename it to ``target``.

        Every path is relative to a directory opened without following links.
        Errors name the file of ``target`` being written, never the hidden ``incoming``.
        """
        with _writing(target):
            os.mkdir(incoming, 0o755, dir_fd=vfd)
            ifd = os.open(incoming, _DIR_FLAGS, dir_fd=vfd)
        try:
            with _open_model_file(model_file) as src, _writing(target / MODEL_NAME):
                digest, size = _copy_hashing(src, MODEL_NAME, dir_fd=ifd)
            body = {**body, "files": {MODEL_NAME: {"sha256": digest, "size": size}}}
            # The rules a reader applies are checked before sealing too.
            _check_manifest(target / MANIFEST_NAME, body, target.name)
            with _writing(target / MANIFEST_NAME):
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                fd = os.open(MANIFEST_NAME, flags, 0o644, dir_fd=ifd)
                with os.fdopen(fd, "wb") as f:
                    f.write(_sealed(body))
                    f.flush()
                    os.fsync(f.fileno())
                os.fsync(ifd)
        finally:
            os.close(ifd)
        with _writing(target):
            # The commit: before it the version does not exist, after it it is complete.
            os.rename(incoming, target.name, src_dir_fd=vfd, dst_dir_fd=vfd)
            os.fsync(vfd)

    def save_model(
        self,
        model: Any,
        *,
        version: str | None = None,
        metrics: Mapping[str, float] | None = None,
        data_hashes: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> VersionInfo:
        """Save a Keras model as ``.keras`` and `register` it (same arguments).

        The file Keras writes is made reproducible first (`reproducible_keras`):
        the same weights and configuration give the same bytes and sha256, so a
        rerun with the same seed finds the same digests.
        """
        import keras

        with tempfile.TemporaryDirectory(prefix="release-spec-save-") as tmp:
            raw = Path(tmp) / f"keras-{MODEL_NAME}"
            path = Path(tmp) / MODEL_NAME
            keras.saving.save_model(model, raw)
            reproducible_keras(raw, path)
            return self.register(
                path, version=version, metrics=metrics, data_hashes=data_hashes, parent=parent
            )

    def _write_pointer(self, version: str, history: list[str]) -> None:
        body = {
            "format": _POINTER_FORMAT,
            "format_version": FORMAT_VERSION,
            "version": version,
            "sha256": self._info(version).sha256,
            "history": history,
            "updated": _now(),
        }
        atomic_write(self.root / POINTER_NAME, _sealed(body))

    def promote(self, version: str) -> VersionInfo:
        """Make ``version`` the production version (after verifying it); atomic.

        The previous production version is pushed on the history. Promoting the
        version already in production changes nothing.

        Raises:
            StoreError: No such version; IntegrityError: it is damaged;
            CorruptFileError: the current pointer is damaged (restore from backup);
            StoreLockedError: another writer holds the lock.
        """
        with self._writer():
            info = self._verified(version)
            pointer = self._pointer()
            if pointer is not None and pointer["version"] == version:
                return info
            history = [*pointer["history"], pointer["version"]] if pointer else []
            self._write_pointer(version, history)
            return info

    def rollback(self) -> VersionInfo:
        """Put the previous production version back into production; atomic.

        Returns:
            The version now in production.

        Raises:
            StoreError: There is no earlier production version.
            IntegrityError: That version is damaged.
        """
        with self._writer():
            pointer = self._pointer()
            if pointer is None or not pointer["history"]:
                raise StoreError(f"no earlier production version to roll back to in {self.root}")
            previous: str = pointer["history"][-1]
            info = self._verified(previous)
            self._write_pointer(previous, list(pointer["history"][:-1]))
            return info

    # ------------------------------------------------------------------ backup

    def backup(self, dest: Path | str) -> Path:
        """Write a verified snapshot of the store as a ``.tar.gz`` archive.

        Args:
            dest: An existing directory (the archive is named after the store and
                the time) or a path ending in ``.tar.gz``/``.tgz``.

        Returns:
            The archive's path.

        Raises:
            IntegrityError: The store has problems (nothing damaged is backed up;
                a link, a special file or a hard-linked file is such a problem).
            StoreError: ``dest`` exists, is inside the store, or is not a ``.tar.gz`` path.
            StoreWriteError: The archive could not be written (nothing is left at ``dest``).
        """
        dest = Path(dest)
        now = datetime.now(timezone.utc)
        if dest.is_dir():
            dest = dest / f"{self.root.name}-{now.strftime('%Y%m%dT%H%M%S%fZ')}.tar.gz"
        if not dest.name.endswith((".tar.gz", ".tgz")):
            raise StoreError(f"{dest}: a backup archive must end in .tar.gz or .tgz")
        if os.path.lexists(dest):
            raise StoreError(f"{dest} exists; refusing to overwrite a backup")
        if _within(dest.parent, self.root):
            # An archive in versions/ would be a damaged "version" of the store it backs up.
            raise StoreError(f"{dest}: a backup must be written outside the store {self.root}")
        # Read the pointer first: versions are only ever added, so every version
        # it names is still there when the versions are archived below.
        pointer_bytes = None
        if os.path.lexists(self.root / POINTER_NAME):
            pointer_bytes = _read_store_file(self.root, POINTER_NAME)
        report = self.verify()
        if not report.ok:
            raise IntegrityError(f"refusing to back up {self.root}: " + "; ".join(report.problems))
        mtime = int(now.timestamp())
        marker = _read_store_file(self.root, MARKER_NAME)
        # Every member is built here from a file opened without following links,
        # so the archive holds only regular files and directories.
        with _atomic_file(dest) as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.addfile(_tar_entry(MARKER_NAME, mtime, len(marker)), io.BytesIO(marker))
            if pointer_bytes is not None:
                entry = _tar_entry(POINTER_NAME, mtime, len(pointer_bytes))
                tar.addfile(entry, io.BytesIO(pointer_bytes))
            for name in report.versions:
                self._archive_version(tar, name, mtime)
        return dest

    def _archive_version(self, tar: tarfile.TarFile, version: str, mtime: int) -> None:
        tar.addfile(_tar_entry(f"{VERSIONS_DIR}/{version}", mtime, kind=tarfile.DIRTYPE))
        manifest_rel = self._rel(version, MANIFEST_NAME)
        raw = _read_store_file(self.root, manifest_rel)
        data = _parse_sealed(self.root / manifest_rel, raw, _MANIFEST_FORMAT)
        files = _check_manifest(self.root / manifest_rel, data, version)
        # The manifest goes first: restore checks each later member against it.
        tar.addfile(_tar_entry(manifest_rel, mtime, len(raw)), io.BytesIO(raw))
        for name, expected in sorted(files.items()):
            rel = self._rel(version, name)
            with os.fdopen(_open_present(self.root, rel), "rb") as f:
                reader = _HashingReader(f)
                size = os.fstat(f.fileno()).st_size
                # The bytes archived are hashed as they are read: a file changed
                # since verify never makes an archive that restore would refuse.
                if size == expected["size"]:
                    try:
                        tar.addfile(_tar_entry(rel, mtime, size), reader)
                    except OSError:
                        if reader.size == size:
                            raise  # writing the archive failed, not reading a short file
                if (reader.size, reader.hexdigest()) != (expected["size"], expected["sha256"]):
                    raise IntegrityError(f"{self.root / rel}: changed while being backed up")

    @classmethod
    def restore(
        cls, archive: Path | str, root: Path | str, *, overwrite: bool = False
    ) -> ModelStore:
        """Recreate a store from a `backup` archive, re-verifying every hash.

        The archive is unpacked next to ``root`` and verified; only a sound
        store is renamed into place. A non-empty ``root`` is refused unless
        ``overwrite`` is true (then the old store is replaced under its lock).

        Every member is checked before a byte of it is written: only the store
        layout's directories and regular files (no links, devices, FIFOs or
        sparse files, no names outside the layout); a version's files must come
        after its manifest and have exactly the size it records; metadata is
        capped at `MAX_METADATA_BYTES`; and a member is written only if
        `RESTORE_HEADROOM_BYTES` stay free on the disk after it. At most the
        recorded size is written. The archive is read to its end, so a
        truncated one, a wrong gzip checksum or data after the end of the
        tar (another stream, compressed zeros) is refused. On any refusal or error nothing is left
        behind and ``root`` is unchanged.

        Raises:
            IntegrityError: The archive is tampered with or damaged.
            StoreError: No such archive; ``root`` is not empty and ``overwrite``
                is false (or it is not a store); the archive holds unexpected
                members; the disk has no room for a member.
            StoreWriteError: A write failed (e.g. a full disk), naming the file.
        """
        archive, root = Path(archive), Path(root)
        if not archive.is_file():
            raise StoreError(f"{archive}: no such backup archive")
        occupied = root.exists() and any(root.iterdir())
        if occupied and not overwrite:
            raise StoreError(f"refusing to restore into non-empty {root} (pass overwrite=True)")
        # Only a store may be overwritten: refuse before unpacking anything.
        old = cls(root) if occupied else None
        with _writing(root.parent):
            root.parent.mkdir(parents=True, exist_ok=True)
        staging = root.parent / f".{root.name}.restore-{secrets.token_hex(6)}"
        try:
            _unpack(archive, staging, root)
            try:
                problems = cls(staging).verify().problems
            except StoreError as exc:
                problems = (str(exc),)
            if problems:
                # Name files as they are in the archive, not in the hidden staging directory.
                text = "; ".join(problems).replace(f"{staging}/", "")
                text = text.replace(str(staging), "the archive")
                raise IntegrityError(f"{archive}: refusing to restore, {text}")
            if old is None:
                with _writing(root):
                    if root.exists():
                        root.rmdir()
                    os.rename(staging, root)
            else:
                with old._writer():
                    retired = root.parent / f".{root.name}.replaced-{secrets.token_hex(6)}"
                    with _writing(root):
                        os.rename(root, retired)
                        os.rename(staging, root)
                shutil.rmtree(retired, ignore_errors=True)
            with _writing(root):
                _fsync_dir(root.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(root)


class _HashingReader:
    """A read-only stream that hashes every byte read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._hash, self.size = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._hash.update(chunk)
        self.size += len(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _within(path: Path, top: Path) -> bool:
    """True when the directory ``path`` is ``top`` or below it (through links and bind mounts)."""
    try:
        top_stat = os.stat(top)
        real = path.resolve()
    except (OSError, RuntimeError):
        return False
    for folder in (real, *real.parents):
        with contextlib.suppress(OSError):
            if os.path.samestat(os.stat(folder), top_stat):
                return True
    return False


def _creation_debris(path: Path) -> bool:
    """What an interrupted store creation leaves behind (safe to create over)."""
    if path.name == VERSIONS_DIR:
        return path.is_dir() and not any(path.iterdir())
    return path.name == LOCK_NAME or path.name.startswith(f".{MARKER_NAME}.")


def _read_holder(fd: int) -> LockHolder | None:
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
        return LockHolder(pid=int(data["pid"]), host=str(data["host"]), since=str(data["since"]))
    except (ValueError, KeyError, TypeError):
        return LockHolder(pid=-1, host="unknown", since="unknown (unreadable lock record)")


def _tar_entry(
    name: str, mtime: int, size: int = 0, kind: bytes = tarfile.REGTYPE
) -> tarfile.TarInfo:
    """A plain archive member: no owner names, fixed modes, regular file or directory."""
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.size = size
    entry.mtime = mtime
    entry.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return entry


def _member_kind(member: tarfile.TarInfo) -> str | None:
    """What an archive member is when it is not a plain regular file or directory."""
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    if member.issparse():
        return "a sparse file"
    if member.isreg() or member.isdir():
        return None
    return f"of tar type {member.type!r}"


class _CappedReads:
    """A read-only stream that refuses any single read above ``cap`` bytes.

    `tarfile` reads a pax or GNU long-name header whole, whatever size it
    declares; this turns a header declaring gigabytes into a refusal instead
    of an allocation. Member data is read in chunks below the cap.
    """

    def __init__(self, raw: io.BufferedIOBase, cap: int, archive: Path) -> None:
        self._raw, self._cap, self._archive = raw, cap, archive

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._cap:
            raise IntegrityError(
                f"{self._archive}: an archive header declares more than {self._cap} bytes"
            )
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


def _check_room(archive: Path, staging: Path, name: str, size: int) -> None:
    free = shutil.disk_usage(staging).free
    if size + RESTORE_HEADROOM_BYTES > free:
        raise StoreError(
            f"{archive}: member {name!r} needs {size} bytes but {staging.parent} has {free} "
            f"bytes free (restore keeps {RESTORE_HEADROOM_BYTES} bytes free)"
        )


def _member_limit(
    archive: Path, member: tarfile.TarInfo, manifests: Mapping[str, Mapping[str, Any]]
) -> int:
    """The exact size a member may have, judged from its name and the manifests before it."""
    name = member.name
    if name in (MARKER_NAME, POINTER_NAME):
        limit = MAX_METADATA_BYTES
    elif not (match := _MEMBER_RE.fullmatch(name)):
        raise StoreError(f"{archive}: unexpected archive member {name!r}")
    elif match[2] == MANIFEST_NAME:
        limit = MAX_METADATA_BYTES
    elif match[1] in manifests and match[2] in manifests[match[1]]:
        recorded: int = manifests[match[1]][match[2]]["size"]
        if member.size != recorded:
            raise IntegrityError(
                f"{archive}: member {name!r} is {member.size} bytes, but its manifest "
                f"records {recorded}"
            )
        return recorded
    else:
        raise StoreError(
            f"{archive}: unexpected archive member {name!r} (not listed in a manifest before it)"
        )
    if member.size > limit:
        raise IntegrityError(
            f"{archive}: member {name!r} is {member.size} bytes, over the {limit}-byte limit"
        )
    return member.size


_DIR_MEMBER_RE = re.compile(rf"{VERSIONS_DIR}(?:/{_VERSION_RE.pattern})?")
_MEMBER_RE = re.compile(rf"{VERSIONS_DIR}/({_VERSION_RE.pattern})/({_FILE_NAME_RE.pattern})")


def _unpack(archive: Path, staging: Path, root: Path) -> None:
    """Extract a backup into ``staging``, checking each member before writing any of it.

    See `ModelStore.restore` for the rules. Errors name the archive member, or
    the file of ``root`` that could not be written.
    """
    try:
        with gzip.open(archive, "rb") as raw:
            capped: Any = _CappedReads(raw, _CHUNK, archive)
            with tarfile.open(fileobj=capped, mode="r:") as tar:
                _unpack_members(archive, tar, staging, root)
            _check_trailer(archive, raw)
    except CorruptFileError as exc:
        raise IntegrityError(f"{archive}: refusing to restore, {exc}") from None
    except gzip.BadGzipFile as exc:
        # Its message can quote the file's first bytes: the archive may be anything.
        problem = "not a gzip file" if "gzipped" in str(exc) else "gzip data is damaged"
        raise IntegrityError(f"{archive}: unreadable backup archive: {problem}") from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"{archive}: unreadable backup archive: {exc}") from None


def _check_trailer(archive: Path, raw: gzip.GzipFile) -> None:
    """Read the archive to its end: only tar's zero padding may follow the last member.

    `tarfile` stops at the first zero block, so a truncated archive, a wrong
    gzip checksum or anything appended after the end (a second gzip stream,
    gigabytes of compressed zeros) would otherwise go unnoticed. Reading to
    the end makes gzip check its CRC and length; at most `_CHUNK` bytes are read.
    """
    tail = raw.read(_CHUNK + 1)
    if len(tail) > _CHUNK or tail.count(0) != len(tail):
        raise IntegrityError(f"{archive}: refusing to restore, data follows the end of the archive")


def _unpack_members(archive: Path, tar: tarfile.TarFile, staging: Path, root: Path) -> None:
    manifests: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    with _writing(root):
        staging.mkdir()
        (staging / VERSIONS_DIR).mkdir()
    for member in tar:
        name = member.name
        if member.isdir() and _DIR_MEMBER_RE.fullmatch(name):
            with _writing(root / name):
                (staging / name).mkdir(exist_ok=True)
            continue
        if kind := _member_kind(member):
            raise StoreError(
                f"{archive}: archive member {name!r} is {kind}; only regular files "
                "and directories are restored"
            )
        if name in seen:
            raise StoreError(f"{archive}: duplicate archive member {name!r}")
        seen.add(name)
        size = _member_limit(archive, member, manifests)
        _check_room(archive, staging, name, size)
        source = tar.extractfile(member)
        if source is None:
            raise StoreError(f"{archive}: cannot read archive member {name!r}")
        with source, _writing(root / name):
            (staging / name).parent.mkdir(exist_ok=True)
            _copy_hashing(source, staging / name, limit=size)
        match = _MEMBER_RE.fullmatch(name)
        if match and match[2] == MANIFEST_NAME:
            raw = _read_store_file(staging, name)
            data = _parse_sealed(Path(name), raw, _MANIFEST_FORMAT)
            manifests[match[1]] = _check_manifest(Path(name), data, match[1])
