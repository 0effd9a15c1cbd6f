"""A store no one can turn against its host: links, special files, crafted manifests and archives.

Each test reproduces a way a store (or a backup archive) could be made to
read, write or report something outside itself, to hang, or to exhaust memory
or disk, and checks the store refuses it with a `StoreError` naming the store
file at fault. The Hypothesis tests substitute random file trees into a store
and restore random archives: every case ends in success or a `StoreError`,
never a hang, another exception, a write outside the store or a partially
restored store. Root-only cases (a real full disk, a read-only mount, device
nodes) are in tests/test_store_root.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import CHILD_ENV, fake_keras_file, reseal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from release_spec.cli import EXIT_STOPPED, EXIT_USAGE, main
from release_spec.store import CorruptFileError, IntegrityError, ModelStore, StoreError
from release_spec.store.files import MAX_METADATA_BYTES

SECRET = b"precious bytes outside the store\n" * 7


def make_store(root: Path, models: Path) -> ModelStore:
    """A store with v0001 and v0002 promoted in turn (so rollback has somewhere to go)."""
    models.mkdir(exist_ok=True)
    store = ModelStore(root, create=True)
    for tag in ("a", "b"):
        store.promote(store.register(fake_keras_file(models / f"{tag}.keras", tag)).version)
    return store


def snapshot(top: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, bytes]]:
    """Every entry under ``top`` without following links: kind and content (or link target)."""
    found: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = Path(dirpath).relative_to(top)
        if rel_dir.parts and rel_dir.parts[0] in skip:
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(rel_dir / name)
            if rel.split("/")[0] in skip:
                continue
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path).encode())
            elif path.is_dir():
                found[rel] = ("dir", b"")
            elif path.is_file():
                found[rel] = ("file", path.read_bytes())
            else:
                found[rel] = ("special", b"")
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the store holding a file the store must never touch or describe."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_bytes(SECRET)
    return out


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return make_store(tmp_path / "store", tmp_path / "models")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ the lock file


def test_lock_linked_to_an_outside_file_is_refused_and_the_file_kept(
    store: ModelStore, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = store.root / ".lock"
    lock.unlink()
    lock.symlink_to(outside / "secret.txt")
    code, _, err = cli(capsys, "store", "rollback", "--store", str(store.root))
    assert code == EXIT_USAGE
    assert one_line(err) == (
        f"release-spec: error: store rollback: {lock}: is a symbolic link, "
        "not a regular file (refused)"
    )
    assert (outside / "secret.txt").read_bytes() == SECRET
    assert store.production().version == "v0002"  # type: ignore[union-attr]


def test_dangling_lock_link_creates_nothing_outside(store: ModelStore, outside: Path) -> None:
    lock = store.root / ".lock"
    lock.unlink()
    lock.symlink_to(outside / "planted")
    with pytest.raises(CorruptFileError, match=r"\.lock: is a symbolic link"):
        store.rollback()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_lock_hard_linked_to_an_outside_file_is_refused(store: ModelStore, outside: Path) -> None:
    lock = store.root / ".lock"
    lock.unlink()
    os.link(outside / "secret.txt", lock)
    with pytest.raises(CorruptFileError, match=r"\.lock: has 2 hard links \(refused\)"):
        store.promote("v0001")
    assert (outside / "secret.txt").read_bytes() == SECRET
    assert any(".lock: has 2 hard links" in p for p in store.verify().problems)


# ------------------------------------------------------------------ manifests


def _outside_entry(outside: Path, *, right_hash: bool) -> dict[str, Any]:
    digest = hashlib.sha256(SECRET).hexdigest() if right_hash else "0" * 64
    return {"sha256": digest, "size": len(SECRET)}


@pytest.mark.parametrize(
    "name",
    ["../../../outside/secret.txt", "ABSOLUTE", "sub/secret.txt", "manifest.json", ".hidden", ""],
)
@pytest.mark.parametrize("right_hash", [True, False])
def test_manifest_entries_outside_their_directory_are_refused(
    store: ModelStore,
    outside: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    right_hash: bool,
) -> None:
    name = str(outside / "secret.txt") if name == "ABSOLUTE" else name
    manifest = store.root / "versions" / "v0001" / "manifest.json"
    entry = _outside_entry(outside, right_hash=right_hash)
    reseal(manifest, lambda d: d["files"].__setitem__(name, entry))

    code, out, _ = cli(capsys, "store", "verify", "--store", str(store.root))
    assert code == EXIT_STOPPED
    assert f"problem: {manifest}: entry {name!r} is not a plain file name" in out
    # Nothing about the outside file is reported: not its hash, not its size.
    assert hashlib.sha256(SECRET).hexdigest()[:12] not in out
    assert f"size {len(SECRET)}" not in out
    with pytest.raises(CorruptFileError, match="is not a plain file name"):
        store.load_model("v0001")
    with pytest.raises(CorruptFileError, match="is not a plain file name"):
        store.rollback()
    assert (outside / "secret.txt").read_bytes() == SECRET


def test_restore_refuses_a_manifest_naming_a_path_outside(
    store: ModelStore, outside: Path, tmp_path: Path
) -> None:
    archive = store.backup(tmp_path / "good.tar.gz")
    evil = tmp_path / "evil.tar.gz"
    entry = _outside_entry(outside, right_hash=True)

    def edit(data: dict[str, Any]) -> None:
        data["files"]["../../../outside/planted"] = entry

    with tarfile.open(archive) as tar, tarfile.open(evil, "w:gz") as out:
        for member in tar:
            data = tar.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            if member.name == "versions/v0001/manifest.json":
                tmp = tmp_path / "m.json"
                tmp.write_bytes(data)
                reseal(tmp, edit)
                data = tmp.read_bytes()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if member.isreg() else None)
    before = snapshot(tmp_path, skip=("restored",))
    with pytest.raises(IntegrityError, match="is not a plain file name"):
        ModelStore.restore(evil, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert snapshot(tmp_path, skip=("restored",)) == before


# ------------------------------------------------------------------ links inside versions


def test_model_file_linked_to_outside_content_is_damage(
    store: ModelStore, outside: Path, tmp_path: Path
) -> None:
    model = store.root / "versions" / "v0001" / "model.keras"
    copy = outside / "model.keras"
    shutil.copyfile(model, copy)  # same bytes, so the manifest's hash matches
    model.unlink()
    model.symlink_to(copy)
    report = store.verify()
    assert report.problems == (f"{model}: is a symbolic link, not a regular file (refused)",)
    with pytest.raises(IntegrityError, match=r"refusing to back up .*is a symbolic link"):
        store.backup(tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()
    with pytest.raises(IntegrityError, match="is a symbolic link"):
        store.promote("v0001")


def test_model_file_hard_linked_is_damage(store: ModelStore, outside: Path) -> None:
    model = store.root / "versions" / "v0001" / "model.keras"
    os.link(model, outside / "alias.keras")
    assert store.verify().problems == (f"{model}: has 2 hard links (refused)",)


def test_version_directory_linked_outside_is_damage(
    store: ModelStore, outside: Path, tmp_path: Path
) -> None:
    shutil.copytree(store.root / "versions" / "v0001", outside / "v0003")
    reseal(outside / "v0003" / "manifest.json", lambda d: d.__setitem__("version", "v0003"))
    (store.root / "versions" / "v0003").symlink_to(outside / "v0003")
    report = store.verify()
    assert report.problems == (
        f"{store.root / 'versions' / 'v0003'}: not a version directory "
        "(a symbolic link, not a directory (refused))",
    )
    with pytest.raises(CorruptFileError, match=r"versions/v0003: is a symbolic link"):
        store.versions()
    with pytest.raises(IntegrityError, match="refusing to back up"):
        store.backup(tmp_path / "b.tar.gz")


def test_unlisted_link_in_a_version_is_reported_without_following_it(
    store: ModelStore, outside: Path
) -> None:
    extra = store.root / "versions" / "v0002" / "notes"
    extra.symlink_to(outside / "secret.txt")
    assert store.verify().problems == (
        f"{extra}: not listed in the manifest and is a symbolic link, not a regular file (refused)",
    )


# ------------------------------------------------------------------ FIFOs and endless files


def cli_child(
    *args: str, limit: tuple[int, int] = (resource.RLIMIT_AS, 2 << 30)
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child process under one resource limit; a hang fails the test
    instead of blocking the run.

    The timeout only detects a hang (the fixed store answers at once). The
    default limit, on the address space, keeps an endless read from taking the
    machine's memory; ``(resource.RLIMIT_FSIZE, n)`` lets the child write no
    file larger than ``n`` bytes.
    """

    def limits() -> None:
        resource.setrlimit(limit[0], (limit[1], limit[1]))

    try:
        return subprocess.run(
            [sys.executable, "-m", "release_spec", *args],
            capture_output=True,
            text=True,
            env=CHILD_ENV,
            timeout=300,
            preexec_fn=limits,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"release-spec {' '.join(args)} hung (no answer in 300 s)")


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("versions/v0001/manifest.json", EXIT_STOPPED),
        ("production.json", EXIT_STOPPED),
        ("store.json", EXIT_USAGE),
    ],
)
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_fifo_or_endless_file_in_the_store_is_refused_at_once(
    store: ModelStore, target: str, code: int, kind: str
) -> None:
    path = store.root / target
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
        what = "is a FIFO, not a regular file (refused)"
    else:
        path.symlink_to("/dev/zero")
        what = "is a symbolic link, not a regular file (refused)"
    proc = cli_child("store", "verify", "--store", str(store.root))
    assert proc.returncode == code, proc.stderr
    shown = proc.stdout if code == EXIT_STOPPED else proc.stderr
    assert f"{path}: {what}" in shown


def test_metadata_over_the_cap_is_refused_without_reading_it(store: ModelStore) -> None:
    pointer = store.root / "production.json"
    with pointer.open("r+b") as f:
        f.truncate(MAX_METADATA_BYTES + 1)  # sparse: no disk used
    assert store.verify().problems == (
        f"{pointer}: is {MAX_METADATA_BYTES + 1} bytes, over the {MAX_METADATA_BYTES}-byte limit",
    )


# ------------------------------------------------------------------ restore bounds


def _gnu_sparse_archive(tmp_path: Path, size: int) -> Path:
    """A tiny .tar.gz whose one member, a store model path, is a sparse file of ``size`` bytes."""
    tar = shutil.which("tar")
    assert tar, "GNU tar is needed to write a sparse member"
    src = tmp_path / "sparse-src"
    (src / "versions" / "v0001").mkdir(parents=True)
    with (src / "versions" / "v0001" / "model.keras").open("wb") as f:
        f.truncate(size)
    archive = tmp_path / "sparse.tar.gz"
    subprocess.run(
        [tar, "-C", str(src), "--sparse", "-czf", str(archive), "versions/v0001/model.keras"],
        check=True,
    )
    shutil.rmtree(src)
    return archive


def test_restore_of_a_sparse_2_gib_member_writes_nothing(tmp_path: Path) -> None:
    archive = _gnu_sparse_archive(tmp_path, 2 << 30)
    assert archive.stat().st_size < 1024

    args = ["store", "restore", "--archive", str(archive), "--store", str(tmp_path / "restored")]
    # Were the member written, the child would stop at 64 MiB (EFBIG), not fill the disk.
    proc = cli_child(*args, limit=(resource.RLIMIT_FSIZE, 64 << 20))
    assert proc.returncode == EXIT_USAGE
    assert one_line(proc.stderr) == (
        f"release-spec: error: store restore: {archive}: archive member "
        "'versions/v0001/model.keras' is a sparse file; only regular files and "
        "directories are restored"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse.tar.gz"]


def _rewrite(archive: Path, out: Path, change: Callable[[tarfile.TarInfo, bytes], bytes]) -> None:
    with tarfile.open(archive) as tar, tarfile.open(out, "w:gz") as dst:
        for member in tar:
            data = tar.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            if member.isreg():
                data = change(member, data)
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if member.isreg() else None)


def test_restore_refuses_a_member_larger_than_its_manifest_before_writing(
    store: ModelStore, tmp_path: Path
) -> None:
    archive = store.backup(tmp_path / "good.tar.gz")
    evil = tmp_path / "evil.tar.gz"

    def grow(member: tarfile.TarInfo, data: bytes) -> bytes:
        return data + b"\0" * 4096 if member.name.endswith("v0002/model.keras") else data

    _rewrite(archive, evil, grow)
    size = (store.root / "versions" / "v0002" / "model.keras").stat().st_size
    with pytest.raises(
        IntegrityError,
        match=rf"member 'versions/v0002/model\.keras' is {size + 4096} bytes, "
        rf"but its manifest records {size}",
    ):
        ModelStore.restore(evil, tmp_path / "restored")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "evil.tar.gz",
        "good.tar.gz",
        "models",
        "store",
    ]


def test_restore_refuses_a_model_member_before_its_manifest(
    store: ModelStore, tmp_path: Path
) -> None:
    archive = tmp_path / "early.tar.gz"
    model = (store.root / "versions" / "v0001" / "model.keras").read_bytes()
    with tarfile.open(archive, "w:gz") as tar:
        entry = tarfile.TarInfo("versions/v0001/model.keras")
        entry.size = len(model)
        tar.addfile(entry, io.BytesIO(model))
    with pytest.raises(StoreError, match="not listed in a manifest before it"):
        ModelStore.restore(archive, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "chardev"])
def test_restore_refuses_links_and_devices_by_name(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "evil.tar.gz"
    entry = tarfile.TarInfo("versions/v0001/model.keras")
    entry.type = {
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
        "chardev": tarfile.CHRTYPE,
    }[kind]
    entry.linkname = "/etc/passwd"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(entry)
    what = {
        "symlink": "a symbolic link",
        "hardlink": "a hard link",
        "fifo": "a FIFO",
        "chardev": "a device",
    }[kind]
    with pytest.raises(StoreError, match=f"'versions/v0001/model.keras' is {what}; only regular"):
        ModelStore.restore(archive, tmp_path / "restored")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]


def test_restore_refuses_a_header_declaring_gigabytes(tmp_path: Path) -> None:
    archive = tmp_path / "pax.tar.gz"
    raw = io.BytesIO()
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 1 << 31
    raw.write(header.tobuf(format=tarfile.USTAR_FORMAT))
    raw.write(b"0" * 4096)
    archive.write_bytes(__import__("gzip").compress(raw.getvalue()))
    with pytest.raises(IntegrityError, match="declares more than"):
        ModelStore.restore(archive, tmp_path / "restored")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pax.tar.gz"]


# ------------------------------------------------------------------ write errors (no root)


def test_write_error_names_the_file_and_keeps_the_old_state(store: ModelStore) -> None:
    """A real EFBIG: the child may write files of at most 256 bytes (RLIMIT_FSIZE).

    The lock record (about 100 bytes) fits, the new pointer (about 400) does not.
    """
    pointer = store.root / "production.json"
    before = pointer.read_bytes()
    assert len(before) > 256

    args = ("store", "rollback", "--store", str(store.root))
    proc = cli_child(*args, limit=(resource.RLIMIT_FSIZE, 256))
    assert proc.returncode == EXIT_USAGE
    assert one_line(proc.stderr) == (
        f"release-spec: error: store rollback: cannot write {pointer}: File too large"
    )
    assert pointer.read_bytes() == before
    assert not list(store.root.glob(".*.tmp"))
    assert store.production().version == "v0002"  # type: ignore[union-attr]


# ------------------------------------------------------------------ fuzzing: hostile trees

TARGETS = [
    "store.json",
    "production.json",
    ".lock",
    "versions",
    "versions/v0001",
    "versions/v0003",
    "versions/v0001/manifest.json",
    "versions/v0001/model.keras",
    "versions/v0002/model.keras",
    "versions/v0002/extra",
    ".incoming-x",
    "versions/.incoming-y",
]
KINDS = ["link-file", "link-dir", "dangling", "fifo", "hardlink", "dir", "empty", "link-zero"]
OPS = ["verify", "versions", "production", "promote", "rollback", "register", "backup", "restore"]


def _substitute(root: Path, outside: Path, target: str, kind: str) -> None:
    path = root / target
    if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if not path.parent.is_dir() or path.parent.is_symlink():
        return
    if kind == "link-file":
        path.symlink_to(outside / "secret.txt")
    elif kind == "link-dir":
        path.symlink_to(outside)
    elif kind == "dangling":
        path.symlink_to(outside / "planted")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "hardlink":
        os.link(outside / "secret.txt", path)
    elif kind == "dir":
        path.mkdir()
        (path / "model.keras").write_bytes(b"x")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.symlink_to("/dev/zero")


@contextlib.contextmanager
def _template() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        base = Path(tmp)
        make_store(base / "store", base / "models")
        ModelStore(base / "store").backup(base / "good.tar.gz")
        yield base / "store", base / "good.tar.gz"


@pytest.fixture(scope="module")
def template() -> Iterator[tuple[Path, Path]]:
    with _template() as made:
        yield made


def _run(op: str, root: Path, work: Path, good: Path) -> None:
    if op == "restore":
        ModelStore.restore(good, root, overwrite=True)
        return
    store = ModelStore(root)
    if op == "verify":
        store.verify()
    elif op == "versions":
        store.versions()
    elif op == "production":
        store.production()
    elif op == "promote":
        store.promote("v0001")
    elif op == "rollback":
        store.rollback()
    elif op == "register":
        store.register(fake_keras_file(work / "models" / "c.keras", "c"))
    else:
        store.backup(work / "backups")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(TARGETS), st.sampled_from(KINDS)),
        min_size=1,
        max_size=3,
        unique_by=lambda c: c[0],
    ),
    ops=st.permutations(OPS),
)
def test_fuzz_hostile_trees_end_in_success_or_a_store_error(
    template: tuple[Path, Path], changes: list[tuple[str, str]], ops: list[str]
) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        work = Path(tmp)
        root = work / "store"
        shutil.copytree(template[0], root, symlinks=True)
        good = shutil.copy(template[1], work / "good.tar.gz")
        outside = work / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_bytes(SECRET)
        (work / "models").mkdir()
        (work / "backups").mkdir()
        for target, kind in changes:
            _substitute(root, outside, target, kind)
        before = snapshot(work, skip=("store", "backups", "models"))
        for op in ops:
            try:
                _run(op, root, work, Path(good))
            except StoreError as exc:
                message = str(exc)
            else:
                message = str(root)
            assert str(root) in message, (op, message)
        assert snapshot(work, skip=("store", "backups", "models")) == before
        assert (outside / "secret.txt").read_bytes() == SECRET
        for archive in (work / "backups").iterdir():
            # Whatever was backed up restores into a sound store.
            assert ModelStore.restore(archive, work / "check").verify().ok
            shutil.rmtree(work / "check")


# ------------------------------------------------------------------ fuzzing: crafted archives

MEMBER_NAMES = [
    "store.json",
    "production.json",
    "versions",
    "versions/v0001",
    "versions/v0001/manifest.json",
    "versions/v0001/model.keras",
    "versions/v0001/extra",
    "versions/v0001/../../escaped",
    "../escaped",
    "/tmp/escaped-abs",
    "versions/../store.json",
    "./store.json",
    "versions/v0001/sub/model.keras",
]
MEMBER_TYPES = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.FIFOTYPE,
]


def _good_members(good: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(good) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


member_edit = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 20)),
    st.tuples(st.just("duplicate"), st.integers(0, 20)),
    st.tuples(st.just("swap"), st.integers(0, 20), st.integers(0, 20)),
    st.tuples(st.just("rename"), st.integers(0, 20), st.sampled_from(MEMBER_NAMES)),
    st.tuples(st.just("retype"), st.integers(0, 20), st.sampled_from(MEMBER_TYPES)),
    st.tuples(st.just("bytes"), st.integers(0, 20), st.binary(max_size=64)),
    st.tuples(st.just("declare"), st.integers(0, 20), st.sampled_from([0, 1, 10**6, 2**31])),
    st.tuples(
        st.just("add"),
        st.sampled_from(MEMBER_NAMES),
        st.sampled_from(MEMBER_TYPES),
        st.binary(max_size=64),
    ),
)


def _write_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """Write members as given; a declared size larger than the data leaves the archive short."""
    raw = io.BytesIO()
    for info, data in members:
        raw.write(info.tobuf(format=tarfile.GNU_FORMAT))
        if info.isreg():
            body = data[: info.size]
            raw.write(body + b"\0" * (-len(body) % tarfile.BLOCKSIZE))
            if len(body) < info.size:
                break  # a header promising more data than the archive holds
    raw.write(b"\0" * tarfile.BLOCKSIZE * 2)
    path.write_bytes(__import__("gzip").compress(raw.getvalue()))


def _apply(members: list[tuple[tarfile.TarInfo, bytes]], edit: tuple[Any, ...]) -> None:
    if edit[0] == "add":
        info = tarfile.TarInfo(edit[1])
        info.type, info.size, info.linkname = edit[2], len(edit[3]), "/etc/passwd"
        members.append((info, edit[3]))
        return
    if not members:
        return
    i = edit[1] % len(members)
    info, data = members[i]
    info = tarfile.TarInfo.frombuf(info.tobuf(format=tarfile.GNU_FORMAT)[:512], "utf-8", "strict")
    if edit[0] == "drop":
        del members[i]
    elif edit[0] == "duplicate":
        members.insert(i, (info, data))
    elif edit[0] == "swap":
        j = edit[2] % len(members)
        members[i], members[j] = members[j], members[i]
    elif edit[0] == "rename":
        info.name = edit[2]
        members[i] = (info, data)
    elif edit[0] == "retype":
        info.type = edit[2]
        info.linkname = "/etc/passwd"
        members[i] = (info, data)
    elif edit[0] == "bytes":
        info.size = len(edit[2])
        members[i] = (info, edit[2])
    else:
        info.size = edit[2]
        members[i] = (info, data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(member_edit, min_size=1, max_size=4))
def test_fuzz_crafted_archives_restore_soundly_or_not_at_all(
    template: tuple[Path, Path], edits: list[tuple[Any, ...]]
) -> None:
    members = _good_members(template[1])
    for edit in edits:
        _apply(members, edit)
    with tempfile.TemporaryDirectory(prefix="archive-") as tmp:
        work = Path(tmp)
        archive = work / "crafted.tar.gz"
        _write_archive(archive, members)
        target = work / "sub" / "restored"
        try:
            restored = ModelStore.restore(archive, target)
        except StoreError as exc:
            restored, message = None, str(exc)
        if restored is None:
            assert str(archive) in message or str(target) in message, message
            assert not target.exists()
            assert sorted(p.name for p in work.rglob("*")) == ["crafted.tar.gz", "sub"]
        else:
            assert restored.verify().ok
            assert not [p for p in work.rglob("*") if "escaped" in p.name]
            assert sorted(p.name for p in (work / "sub").iterdir()) == ["restored"]
        assert not Path("/tmp/escaped-abs").exists()
