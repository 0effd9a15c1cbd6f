"""Backup and restore: a store as one ``.tar.gz``, and every member checked before it is written.

`write_archive` writes a verified store; `unpack` extracts an archive into a
staging directory, refusing anything but the store layout's directories and
regular files, sizes that disagree with the manifests, metadata over
`MAX_METADATA_BYTES`, a member that would leave less than
`RESTORE_HEADROOM_BYTES` free on the disk, and any data after the archive's
end. `release_spec.store.registry.ModelStore.backup` and
`~release_spec.store.registry.ModelStore.restore` are the entry points.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from release_spec.store.errors import CorruptFileError, IntegrityError, StoreError
from release_spec.store.files import (
    _CHUNK,
    MAX_METADATA_BYTES,
    _atomic_file,
    _copy_hashing,
    _open_present,
    _read_store_file,
    _writing,
)
from release_spec.store.layout import (
    _FILE_NAME_RE,
    _MANIFEST_FORMAT,
    _VERSION_RE,
    MANIFEST_NAME,
    MARKER_NAME,
    POINTER_NAME,
    VERSIONS_DIR,
)
from release_spec.store.sealed import _check_manifest, _parse_sealed

__all__ = ["RESTORE_HEADROOM_BYTES", "unpack", "write_archive"]

#: `ModelStore.restore` writes an archive member only if this much disk stays free after it.
RESTORE_HEADROOM_BYTES = 16 << 20


def write_archive(
    root: Path, dest: Path, versions: tuple[str, ...], pointer: bytes | None, mtime: int
) -> None:
    """Write the ``.tar.gz`` of a verified store: marker, pointer, then each version.

    Every member is built here from a file opened without following links, so
    the archive holds only regular files and directories; ``pointer`` is the
    pointer's bytes read before the store was verified (None: nothing promoted).

    Raises:
        IntegrityError: A file changed after the store was verified.
        StoreWriteError: The archive could not be written (nothing is left at ``dest``).
    """
    marker = _read_store_file(root, MARKER_NAME)
    with _atomic_file(dest) as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.addfile(_tar_entry(MARKER_NAME, mtime, len(marker)), io.BytesIO(marker))
        if pointer is not None:
            tar.addfile(_tar_entry(POINTER_NAME, mtime, len(pointer)), io.BytesIO(pointer))
        for name in versions:
            _archive_version(tar, root, name, mtime)


def _archive_version(tar: tarfile.TarFile, root: Path, version: str, mtime: int) -> None:
    tar.addfile(_tar_entry(f"{VERSIONS_DIR}/{version}", mtime, kind=tarfile.DIRTYPE))
    manifest_rel = f"{VERSIONS_DIR}/{version}/{MANIFEST_NAME}"
    raw = _read_store_file(root, manifest_rel)
    data = _parse_sealed(root / manifest_rel, raw, _MANIFEST_FORMAT)
    files = _check_manifest(root / manifest_rel, data, version)
    # The manifest goes first: restore checks each later member against it.
    tar.addfile(_tar_entry(manifest_rel, mtime, len(raw)), io.BytesIO(raw))
    for name, expected in sorted(files.items()):
        rel = f"{VERSIONS_DIR}/{version}/{name}"
        with os.fdopen(_open_present(root, rel), "rb") as f:
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
                raise IntegrityError(f"{root / rel}: changed while being backed up")


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


def unpack(archive: Path, staging: Path, root: Path) -> None:
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
