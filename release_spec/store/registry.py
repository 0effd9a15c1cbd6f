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

Each concern has a module of its own: metadata files are sealed JSON
(`release_spec.store.sealed`: a checksum over the other fields, so a truncated
or edited file is reported as such, naming the file, instead of reading as an
empty store); nothing inside the store is trusted to be what its name says
(`release_spec.store.files`: no symbolic link is followed, only regular files
and directories are opened, metadata reads are capped, and messages escape
names read from the store); writers hold a lock (`release_spec.store.lock`);
model files are checked before they are stored or loaded
(`release_spec.store.keras_files`); the production pointer and its history
are read and written by `release_spec.store.pointer`; every version's files
are checked against its manifest by `release_spec.store.verify`; backups
are checked member by member (`release_spec.store.backup`).

Crash safety: a registration writes into ``versions/.incoming-<token>``,
fsyncs every file and the directory, then renames the directory into place;
that rename is the commit. The pointer is replaced atomically
(`release_spec.store.files.atomic_write`). Readers need no lock because
versions are never modified or deleted and the pointer only ever names a
committed version. The next writer deletes the leftovers of a crashed one.
Every ``OSError`` of a write (a full disk, a quota, a read-only file system)
becomes a `StoreWriteError` naming the file; the temporary file is removed
and the old state stays as it was.

Keras is imported only inside `safe_load_model` and
`ModelStore.save_model`.

Examples:
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
import math
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from release_spec.store.backup import _within, unpack, write_archive
from release_spec.store.errors import (
    CorruptFileError,
    IntegrityError,
    StoreError,
    _shown,
)
from release_spec.store.files import (
    _DIR_FLAGS,
    _copy_hashing,
    _dir_beneath,
    _dir_refusal,
    _is_real_dir,
    _lexists,
    _open_present,
    _read_store_file,
    _writing,
    atomic_write,
    fsync_dir,
    new_file,
)
from release_spec.store.keras_files import (
    _check_model_content,
    _open_model_file,
    check_model_file,
    reproducible_keras,
    safe_load_model,
)
from release_spec.store.layout import (
    _AUTO_VERSION_RE,
    _MANIFEST_FORMAT,
    _STORE_FORMAT,
    _VERSION_RE,
    FORMAT_VERSION,
    INCOMING_PREFIX,
    LOCK_NAME,
    MANIFEST_NAME,
    MARKER_NAME,
    MODEL_NAME,
    POINTER_NAME,
    VERSIONS_DIR,
    _check_version_name,
    _now,
)
from release_spec.store.lock import writer_lock
from release_spec.store.pointer import read_pointer, write_pointer
from release_spec.store.sealed import _check_manifest, _read_sealed, _sealed
from release_spec.store.verify import (
    VerifyReport,
    leftovers,
    read_manifest,
    scan_versions,
    version_names,
    version_problems,
)

# VerifyReport is defined in verify.py and importable here too, where it always was.
__all__ = ["ModelStore", "VerifyReport", "VersionInfo"]


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

    def _info(self, version: str) -> VersionInfo:
        data = read_manifest(self.root, version)
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
        with _dir_beneath(self.root, VERSIONS_DIR) as fd:
            yield fd

    def _version_names(self) -> list[str]:
        with self._versions_fd() as fd:
            return version_names(fd)

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

    def production(self) -> VersionInfo | None:
        """The version in production, or None if nothing was promoted yet.

        Raises:
            CorruptFileError: The pointer is damaged, names a missing version,
                or disagrees with that version's manifest.
        """
        pointer = read_pointer(self.root)
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
        pointer = read_pointer(self.root)
        return list(pointer["history"]) if pointer else []

    def _problems_of(self, version: str, *, check_model: bool = True) -> list[str]:
        """Every mismatch between a version's files and its manifest (`version_problems`)."""
        return version_problems(self.root, version, check_model=check_model)

    def verify(self) -> VerifyReport:
        """Check every version's files against its manifest, and the pointer.

        Never raises for damage; each problem is one line naming the file.
        Leftovers of crashed writers are listed separately and are not problems.
        """
        names, refused, problems = scan_versions(self.root)
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
            leftovers=tuple(leftovers(self.root)),
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
        size = read_manifest(self.root, version)["files"][MODEL_NAME]["size"]
        with tempfile.TemporaryDirectory(prefix="release-spec-load-") as tmp:
            copy = Path(tmp) / MODEL_NAME
            with os.fdopen(_open_present(self.root, self._rel(version, MODEL_NAME)), "rb") as f:
                digest, _ = _copy_hashing(f, copy, limit=size + 1)
            if digest != info.sha256:
                raise IntegrityError(f"{info.path}: sha256 changed while loading")
            return safe_load_model(copy)

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold the exclusive writer lock (`writer_lock`); clean up after crashed writers."""
        with writer_lock(self.root):
            self._clean_leftovers()
            yield

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
        names = version_names(vfd)
        numbers = [int(m[1]) for n in names if (m := _AUTO_VERSION_RE.fullmatch(n))]
        name = f"v{max(numbers, default=0) + 1:04d}"
        if not _VERSION_RE.fullmatch(name):
            raise StoreError(
                f"{self._versions_dir}: no automatic version name after v{max(numbers)}; "
                "pass version="
            )
        return name

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
                with new_file(MANIFEST_NAME, dir_fd=ifd) as f:
                    f.write(_sealed(body))
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
        write_pointer(self.root, version, self._info(version).sha256, history)

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
            pointer = read_pointer(self.root)
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
            pointer = read_pointer(self.root)
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
        write_archive(self.root, dest, report.versions, pointer_bytes, int(now.timestamp()))
        return dest

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
            unpack(archive, staging, root)
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
                fsync_dir(root.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(root)


def _creation_debris(path: Path) -> bool:
    """What an interrupted store creation leaves behind (safe to create over)."""
    if path.name == VERSIONS_DIR:
        return path.is_dir() and not any(path.iterdir())
    return path.name == LOCK_NAME or path.name.startswith(f".{MARKER_NAME}.")
