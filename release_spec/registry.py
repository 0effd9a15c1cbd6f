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

Crash safety: a registration writes into ``versions/.incoming-<token>``,
fsyncs every file and the directory, then renames the directory into place;
that rename is the commit. The pointer is replaced atomically (temp file in
the same directory, flush, fsync, ``os.replace``, fsync of the directory).
Readers need no lock because versions are never modified or deleted and the
pointer only ever names a committed version. Writers hold an exclusive
``flock`` on ``.lock``; the kernel releases it when the process dies, so a
lock left behind by a killed writer is recognised as stale and taken over
(with a `StaleLockWarning`). The next writer deletes the leftovers of
a crashed one. Locking uses ``fcntl`` and so needs a POSIX system.

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
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "MIN_KERAS_VERSION",
    "CorruptFileError",
    "IntegrityError",
    "LockHolder",
    "ModelStore",
    "StaleLockWarning",
    "StoreError",
    "StoreLockedError",
    "UnsafeModelError",
    "VerifyReport",
    "VersionInfo",
    "atomic_write",
    "check_model_file",
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
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_AUTO_VERSION_RE = re.compile(r"v(\d+)")
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


class CorruptFileError(StoreError):
    """A store file (manifest, pointer, marker) is truncated, unparsable or edited."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class IntegrityError(StoreError):
    """Stored bytes do not match their recorded sha256 (or a verify found problems)."""


class UnsafeModelError(StoreError, ValueError):
    """A model file in a refused format, or one whose config would run code."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the writer lock."""

    pid: int
    host: str
    since: str

    def describe(self) -> str:
        """One line naming the holder, for error messages."""
        return f"pid {self.pid} on host {self.host} since {self.since}"


class StoreLockedError(StoreError):
    """Another writer holds the store's lock."""

    def __init__(self, lock_path: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder else "another process (holder details not yet written)"
        super().__init__(f"model store is locked by {who}; lock file {lock_path}")
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
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --8<-- [start:atomic_write]
@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A new file that replaces ``path`` only once everything written to it is on disk.

    A crash leaves the old file or the new one, never a mix; an exception in the
    ``with`` block removes the temporary file and leaves ``path`` untouched.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a mix."""
    with _atomic_file(path) as f:
        f.write(data)


# --8<-- [end:atomic_write]


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _copy_hashing(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to a new file ``dst`` (fsynced) and return the digest of the bytes written."""
    h = hashlib.sha256()
    size = 0
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
        while chunk := fin.read(_CHUNK):
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


def _read_sealed(path: Path, expected_format: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptFileError(path, "is missing") from None
    except OSError as exc:
        raise CorruptFileError(path, f"cannot be read: {exc.strerror}") from None
    if not raw.strip():
        raise CorruptFileError(path, "is empty (truncated)")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"is not valid JSON (truncated or corrupted): {exc}") from None
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
    if not path.is_file():
        raise UnsafeModelError(f"{path}: no such model file")
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
    with path.open("rb") as f:
        head = f.read(8)
    # Content wins over the name: a pickle renamed to .keras is still a pickle.
    if head.startswith(_HDF5_MAGIC):
        raise UnsafeModelError(f"{path}: HDF5 content is refused; save as .keras")
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        raise UnsafeModelError(f"{path}: pickle content is refused; save as .keras")
    if suffix != ".keras":
        raise UnsafeModelError(f"{path}: unsupported model format {suffix or '(none)'!r}")
    if not zipfile.is_zipfile(path):
        raise UnsafeModelError(f"{path}: not a Keras v3 .keras zip archive")


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
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            odd = [n for n in names if n not in _KERAS_MEMBERS and not n.startswith("assets/")]
            bad = [n for n in names if n.startswith("/") or ".." in n.split("/")]
            if odd or bad:
                raise UnsafeModelError(f"{path}: unexpected members in .keras archive: {odd + bad}")
            if "config.json" not in names or "metadata.json" not in names:
                raise UnsafeModelError(f"{path}: .keras archive lacks config.json/metadata.json")
            config = json.loads(zf.read("config.json"))
            metadata = json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UnsafeModelError(f"{path}: unreadable .keras archive: {exc}") from None
    found = _forbidden_in_config(config)
    if found:
        raise UnsafeModelError(f"{path}: refused, the model contains " + "; ".join(found))
    keras_version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    if not isinstance(keras_version, str):
        raise UnsafeModelError(f"{path}: metadata.json has no keras_version")
    return keras_version


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
        if not marker.exists():
            if not create:
                raise StoreError(f"{self.root} is not a model store (no {MARKER_NAME})")
            self.root.mkdir(parents=True, exist_ok=True)
            if any(not _creation_debris(p) for p in self.root.iterdir()):
                raise StoreError(f"refusing to create a model store in non-empty {self.root}")
            (self.root / VERSIONS_DIR).mkdir(exist_ok=True)
            body = {"format": _STORE_FORMAT, "format_version": FORMAT_VERSION, "created": _now()}
            atomic_write(marker, _sealed(body))
        _read_sealed(marker, _STORE_FORMAT)
        self._versions_dir = self.root / VERSIONS_DIR
        if not self._versions_dir.is_dir():
            raise CorruptFileError(self._versions_dir, "is missing")

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    # ------------------------------------------------------------------ reading

    def _manifest(self, version: str) -> dict[str, Any]:
        path = self._versions_dir / version / MANIFEST_NAME
        data = _read_sealed(path, _MANIFEST_FORMAT)
        if data.get("version") != version:
            raise CorruptFileError(path, f"names version {data.get('version')!r}, not {version!r}")
        files = _field(path, data, "files", dict)
        if MODEL_NAME not in files:
            raise CorruptFileError(path, f"does not list {MODEL_NAME}")
        for name, entry in files.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                raise CorruptFileError(path, f"entry for {name!r} has no sha256")
            if not isinstance(entry.get("size"), int):
                raise CorruptFileError(path, f"entry for {name!r} has no size")
        _field(path, data, "created", str)
        _field(path, data, "metrics", dict)
        _field(path, data, "data_hashes", dict)
        _field(path, data, "keras_version", str)
        _field(path, data, "parent", (str, type(None)))
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

    def _version_names(self) -> list[str]:
        # Dot-names are registrations in progress or debris of crashed ones.
        return sorted(p.name for p in self._versions_dir.iterdir() if not p.name.startswith("."))

    def info(self, version: str) -> VersionInfo:
        """The manifest of one version.

        Raises:
            StoreError: No such version.
            CorruptFileError: Its manifest is damaged.
        """
        _check_version_name(version)
        if not (self._versions_dir / version).is_dir():
            raise StoreError(f"no version {version!r} in {self.root}")
        return self._info(version)

    def versions(self) -> list[VersionInfo]:
        """Every committed version, oldest first.

        Raises:
            CorruptFileError: A manifest is damaged (a damaged store never lists as empty).
        """
        infos = [self._info(name) for name in self._version_names()]
        return sorted(infos, key=lambda i: (i.created, i.version))

    def _pointer(self) -> dict[str, Any] | None:
        path = self.root / POINTER_NAME
        if not path.exists():
            return None
        data = _read_sealed(path, _POINTER_FORMAT)
        version = _field(path, data, "version", str)
        _field(path, data, "sha256", str)
        history = _field(path, data, "history", list)
        for name in [version, *history]:
            if not isinstance(name, str) or not _VERSION_RE.fullmatch(name):
                raise CorruptFileError(path, f"names an invalid version {name!r}")
            if not (self._versions_dir / name).is_dir():
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
        """Every mismatch between a version's files and its manifest (empty when sound)."""
        vdir = self._versions_dir / version
        try:
            data = self._manifest(version)
        except CorruptFileError as exc:
            return [str(exc)]
        problems: list[str] = []
        files: dict[str, Any] = data["files"]
        present = {p.name for p in vdir.iterdir()} - {MANIFEST_NAME}
        problems.extend(
            f"{vdir / n}: not listed in the manifest" for n in sorted(present - set(files))
        )
        for name, entry in sorted(files.items()):
            path = vdir / name
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            digest, size = _sha256_file(path)
            if size != entry["size"] or digest != entry["sha256"]:
                problems.append(
                    f"{path}: sha256 {digest[:12]}… (size {size}) does not match the manifest "
                    f"({entry['sha256'][:12]}…, size {entry['size']})"
                )
        model = vdir / MODEL_NAME
        if check_model and not problems:
            try:
                check_model_file(model)
            except UnsafeModelError as exc:
                problems.append(str(exc))
        parent = data["parent"]
        if parent is not None and not (self._versions_dir / parent).is_dir():
            problems.append(f"{vdir / MANIFEST_NAME}: parent {parent!r} is not in the store")
        return problems

    def _leftovers(self) -> list[str]:
        found = [str(p) for p in self._versions_dir.glob(f"{INCOMING_PREFIX}*")]
        found += [str(p) for p in self.root.glob(".*.tmp")]
        return sorted(found)

    def verify(self) -> VerifyReport:
        """Check every version's files against its manifest, and the pointer.

        Never raises for damage; each problem is one line naming the file.
        Leftovers of crashed writers are listed separately and are not problems.
        """
        problems: list[str] = []
        names = self._version_names()
        for name in names:
            if not _VERSION_RE.fullmatch(name) or not (self._versions_dir / name).is_dir():
                problems.append(f"{self._versions_dir / name}: not a version directory")
                continue
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
            problems=tuple(problems),
            leftovers=tuple(self._leftovers()),
        )

    def _verified(self, version: str) -> VersionInfo:
        info = self.info(version)
        problems = self._problems_of(version, check_model=False)
        if problems:
            raise IntegrityError(f"version {version!r} is damaged: " + "; ".join(problems))
        check_model_file(info.path)
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
        with tempfile.TemporaryDirectory(prefix="release-spec-load-") as tmp:
            copy = Path(tmp) / MODEL_NAME
            digest, _ = _copy_hashing(info.path, copy)
            if digest != info.sha256:
                raise IntegrityError(f"{info.path}: sha256 changed while loading")
            return safe_load_model(copy)

    # ------------------------------------------------------------------ writing

    # --8<-- [start:writer_lock]
    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold the exclusive writer lock; clean up after crashed writers."""
        lock_path = self.root / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
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
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            os.fsync(fd)
            try:
                self._clean_leftovers()
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    # --8<-- [end:writer_lock]

    def _clean_leftovers(self) -> None:
        for path in self._versions_dir.glob(f"{INCOMING_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.root.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _next_version(self) -> str:
        numbers = [
            int(m.group(1)) for n in self._version_names() if (m := _AUTO_VERSION_RE.fullmatch(n))
        ]
        return f"v{max(numbers, default=0) + 1:04d}"

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
        with self._writer():
            name = version or self._next_version()
            target = self._versions_dir / name
            if target.exists():
                raise StoreError(
                    f"version {name!r} already exists in {self.root}; versions are immutable"
                )
            if parent is not None and not (self._versions_dir / parent).is_dir():
                raise StoreError(f"parent version {parent!r} is not in {self.root}")
            incoming = self._versions_dir / f"{INCOMING_PREFIX}{secrets.token_hex(8)}"
            incoming.mkdir()
            digest, size = _copy_hashing(model_file, incoming / MODEL_NAME)
            body = {
                "format": _MANIFEST_FORMAT,
                "format_version": FORMAT_VERSION,
                "version": name,
                "created": _now(),
                "parent": parent,
                "keras_version": keras_version,
                "files": {MODEL_NAME: {"sha256": digest, "size": size}},
                "metrics": metrics,
                "data_hashes": hashes,
            }
            manifest = incoming / MANIFEST_NAME
            fd = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(_sealed(body))
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(incoming)
            # The commit: before it the version does not exist, after it it is complete.
            os.rename(incoming, target)
            _fsync_dir(self._versions_dir)
            return self._info(name)

    # --8<-- [end:register]

    def save_model(
        self,
        model: Any,
        *,
        version: str | None = None,
        metrics: Mapping[str, float] | None = None,
        data_hashes: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> VersionInfo:
        """Save a Keras model as ``.keras`` and `register` it (same arguments)."""
        import keras

        with tempfile.TemporaryDirectory(prefix="release-spec-save-") as tmp:
            path = Path(tmp) / MODEL_NAME
            keras.saving.save_model(model, path)
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
            IntegrityError: The store has problems (nothing damaged is backed up).
            StoreError: ``dest`` exists or is not a ``.tar.gz`` path.
        """
        dest = Path(dest)
        if dest.is_dir():
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            dest = dest / f"{self.root.name}-{stamp}.tar.gz"
        if not dest.name.endswith((".tar.gz", ".tgz")):
            raise StoreError(f"{dest}: a backup archive must end in .tar.gz or .tgz")
        if dest.exists():
            raise StoreError(f"{dest} exists; refusing to overwrite a backup")
        # Read the pointer first: versions are only ever added, so every version
        # it names is still there when the versions are archived below.
        pointer_path = self.root / POINTER_NAME
        pointer_bytes = pointer_path.read_bytes() if pointer_path.exists() else None
        report = self.verify()
        if not report.ok:
            raise IntegrityError(f"refusing to back up {self.root}: " + "; ".join(report.problems))
        with _atomic_file(dest) as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(self.root / MARKER_NAME, arcname=MARKER_NAME)
            if pointer_bytes is not None:
                entry = tarfile.TarInfo(POINTER_NAME)
                entry.size = len(pointer_bytes)
                entry.mtime = int(pointer_path.stat().st_mtime)
                entry.mode = 0o644
                tar.addfile(entry, io.BytesIO(pointer_bytes))
            for name in report.versions:
                tar.add(self._versions_dir / name, arcname=f"{VERSIONS_DIR}/{name}")
        return dest

    @classmethod
    def restore(
        cls, archive: Path | str, root: Path | str, *, overwrite: bool = False
    ) -> ModelStore:
        """Recreate a store from a `backup` archive, re-verifying every hash.

        The archive is unpacked next to ``root`` and verified; only a sound
        store is renamed into place. A non-empty ``root`` is refused unless
        ``overwrite`` is true (then the old store is replaced under its lock).

        Raises:
            IntegrityError: The archive is tampered with or damaged.
            StoreError: No such archive; ``root`` is not empty and ``overwrite``
                is false (or it is not a store); the archive holds unexpected members.
        """
        archive, root = Path(archive), Path(root)
        if not archive.is_file():
            raise StoreError(f"{archive}: no such backup archive")
        occupied = root.exists() and any(root.iterdir())
        if occupied and not overwrite:
            raise StoreError(f"refusing to restore into non-empty {root} (pass overwrite=True)")
        # Only a store may be overwritten: refuse before unpacking anything.
        old = cls(root) if occupied else None
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = root.parent / f".{root.name}.restore-{secrets.token_hex(6)}"
        try:
            _unpack(archive, staging)
            report = cls(staging).verify()
            if not report.ok:
                raise IntegrityError(
                    f"{archive}: refusing to restore, " + "; ".join(report.problems)
                )
            if old is None:
                if root.exists():
                    root.rmdir()
                os.rename(staging, root)
            else:
                with old._writer():
                    retired = root.parent / f".{root.name}.replaced-{secrets.token_hex(6)}"
                    os.rename(root, retired)
                    os.rename(staging, root)
                shutil.rmtree(retired, ignore_errors=True)
            _fsync_dir(root.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(root)


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


def _unpack(archive: Path, staging: Path) -> None:
    """Extract only the store layout's regular files; anything else is refused by name."""
    allowed = re.compile(
        rf"(?:{re.escape(MARKER_NAME)}|{re.escape(POINTER_NAME)}"
        rf"|{VERSIONS_DIR}/{_VERSION_RE.pattern}/(?:{re.escape(MODEL_NAME)}|{re.escape(MANIFEST_NAME)}))"
    )
    dir_re = re.compile(rf"{VERSIONS_DIR}(?:/{_VERSION_RE.pattern})?")
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            staging.mkdir()
            (staging / VERSIONS_DIR).mkdir()
            for member in tar:
                name = member.name
                if member.isdir() and dir_re.fullmatch(name):
                    (staging / name).mkdir(exist_ok=True)
                    continue
                if not member.isreg() or not allowed.fullmatch(name):
                    raise StoreError(f"{archive}: unexpected archive member {name!r}")
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise StoreError(f"{archive}: cannot read archive member {name!r}")
                with source, target.open("xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
    except FileExistsError as exc:
        raise StoreError(f"{archive}: duplicate archive member {exc.filename}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IntegrityError(f"{archive}: unreadable backup archive: {exc}") from None
