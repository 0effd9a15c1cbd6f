"""Files of the store: atomic writes, and opening paths that nobody can redirect.

One primitive writes a file: `new_file` opens a name that must not exist yet
(``O_EXCL``, which never follows a symbolic link), and the file is flushed and
fsynced when the block ends. `atomic_write` builds on it: a temporary file in
the same directory, then ``os.replace`` and an fsync of the directory, so a
crash leaves the old file or the new one, never a mix. Every ``OSError`` of a
write becomes a `StoreWriteError` naming the store file (`_writing`).

Hostile stores: no store operation follows a symbolic link or opens anything
but a regular file or a directory (``O_NOFOLLOW``, checked with
``lstat``/``fstat``; ``O_NONBLOCK`` so a FIFO never blocks); FIFOs, devices,
sockets and files with more than one hard link are refused. Every path below
the store's root is opened one directory at a time relative to the previous
one (`_open_beneath`), so a link swapped in later never redirects a read, a
write or a deletion. Metadata reads are capped at `MAX_METADATA_BYTES`, so a
file that never ends cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from release_spec.store.errors import CorruptFileError, StoreError, StoreWriteError

__all__ = ["MAX_METADATA_BYTES", "atomic_write", "fsync_dir", "new_file"]

#: Largest manifest, pointer or marker the store reads, in bytes. They hold a few
#: hundred bytes; the cap keeps a ``/dev/zero``-like file from exhausting memory.
MAX_METADATA_BYTES = 1 << 20
# A FIFO opened for reading without O_NONBLOCK waits for a writer forever.
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS
_CHUNK = 1 << 20


def fsync_dir(path: Path, *, files: bool = False) -> None:
    """Flush a directory's entries (a rename or a new name in it) to disk.

    Args:
        path: The directory.
        files: Also fsync every regular file directly inside it, for a
            directory that another process filled.
    """
    if files:
        for child in path.iterdir():
            if child.is_file():
                with child.open("rb") as f:
                    os.fsync(f.fileno())
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


@contextlib.contextmanager
def new_file(name: Path | str, *, dir_fd: int | None = None) -> Iterator[BinaryIO]:
    """A file that did not exist before, flushed and fsynced when the block ends.

    ``O_EXCL`` never follows a symbolic link: the file is always a new file, and
    nothing already at ``name`` is opened or changed. With ``dir_fd``, ``name``
    is a name in that directory. An exception in the block leaves the partial
    file for the caller to remove (it knows whether the directory is its own).
    """
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


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
        try:
            with new_file(tmp) as f:
                yield f
            # rename replaces a symlink at ``path`` itself, never what it points to.
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a mix.

    Raises:
        StoreWriteError: The write failed (the old file, if any, is unchanged).

    Examples:
        >>> import shutil, tempfile
        >>> target = Path(tempfile.mkdtemp()) / "note.txt"
        >>> atomic_write(target, b"hello")
        >>> target.read_bytes()
        b'hello'
        >>> shutil.rmtree(target.parent)
    """
    with _atomic_file(path) as f:
        f.write(data)


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


@contextlib.contextmanager
def _dir_beneath(root: Path, rel: str) -> Iterator[int]:
    """`_open_dir_beneath` for a ``with`` block: the descriptor is closed on leaving it."""
    fd = _open_dir_beneath(root, rel)
    try:
        yield fd
    finally:
        os.close(fd)


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
    with new_file(dst, dir_fd=dir_fd) as fout:
        while True:
            want = _CHUNK if limit is None else min(_CHUNK, limit - size)
            chunk = src.read(want) if want > 0 else b""
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    return h.hexdigest(), size
