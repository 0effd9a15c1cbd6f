"""Store write errors from real file systems: a full tmpfs (ENOSPC), a read-only mount (EROFS).

No error is injected: each test mounts a small tmpfs or a read-only bind mount
and lets the kernel refuse the write. Mounting and device nodes need root. CI
runs as root; without root the tests skip with the reason, except under
``CI=true``, where a missing privilege is a failure rather than a pass.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import fake_keras_file
from test_store_hostile import cli, cli_child, make_store, one_line

from release_spec.cli import EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from release_spec.store import ModelStore, StoreError, StoreWriteError
from release_spec.store.backup import RESTORE_HEADROOM_BYTES

PAGE = 4096


def _need_root() -> None:
    reason = "needs root (mount, mknod)"
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run these as root")
        pytest.skip(reason)


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        message = f"mount {' '.join(args)} failed: {proc.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def mounts() -> Iterator[Callable[..., None]]:
    """Mount with the given arguments; everything mounted is unmounted afterwards."""
    _need_root()
    done: list[str] = []

    def mount(*args: str) -> None:
        _mount(*args)
        done.append(args[-1])

    yield mount
    for point in reversed(done):
        subprocess.run(["umount", point], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path, mounts: Callable[..., None]) -> Callable[[str], Path]:
    def make(size: str) -> Path:
        point = tmp_path / f"tmpfs-{size}"
        point.mkdir()
        mounts("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        return point

    return make


def _fill(disk: Path, pages_free: int) -> None:
    """Fill ``disk`` until the kernel says ENOSPC, then free exactly ``pages_free`` pages."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    size = os.fstat(fd).st_size
    while True:
        try:
            size += os.write(fd, b"\1" * PAGE)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            break
    os.ftruncate(fd, size - PAGE * pages_free)
    os.close(fd)


def test_full_disk_rollback_names_the_pointer_and_keeps_the_old_state(
    tmpfs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    disk = tmpfs("2m")
    store = make_store(disk / "store", disk / "models")
    pointer = store.root / "production.json"
    before = pointer.read_bytes()
    # One free page: the lock record fits, the new pointer does not.
    _fill(disk, pages_free=1)
    code, _, err = cli(capsys, "store", "rollback", "--store", str(store.root))
    assert code == EXIT_USAGE
    assert one_line(err) == (
        f"release-spec: error: store rollback: cannot write {pointer}: No space left on device"
    )
    assert pointer.read_bytes() == before
    assert sorted(os.listdir(store.root)) == [".lock", "production.json", "store.json", "versions"]
    # Not a byte free: the lock record itself cannot be written, and says so.
    _fill(disk, pages_free=0)
    code, _, err = cli(capsys, "store", "rollback", "--store", str(store.root))
    assert code == EXIT_USAGE
    lock = store.root / ".lock"
    assert one_line(err) == (
        f"release-spec: error: store rollback: cannot write {lock}: No space left on device"
    )
    (disk / "filler").unlink()
    assert store.verify().ok
    assert store.rollback().version == "v0001"


def test_full_disk_register_leaves_no_half_written_version(tmpfs: Callable[[str], Path]) -> None:
    disk = tmpfs("2m")
    store = make_store(disk / "store", disk / "models")
    model = fake_keras_file(disk / "models" / "c.keras", "c")
    _fill(disk, pages_free=1)
    with pytest.raises(StoreWriteError) as caught:
        store.register(model)
    target = store.root / "versions" / "v0003" / "model.keras"
    assert str(caught.value) == f"cannot write {target}: No space left on device"
    assert caught.value.errno == 28
    assert sorted(os.listdir(store.root / "versions")) == ["v0001", "v0002"]
    (disk / "filler").unlink()
    assert store.verify().ok
    assert store.verify().leftovers == ()
    assert store.register(model).version == "v0003"


def _big_store(root: Path, models: Path, weights: int) -> ModelStore:
    models.mkdir()
    path = fake_keras_file(models / "big.keras", "big", weights=os.urandom(weights))
    store = ModelStore(root, create=True)
    store.promote(store.register(path).version)
    return store


def test_restore_refuses_a_member_the_disk_cannot_hold_before_writing_it(
    tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    store = _big_store(tmp_path / "store", tmp_path / "models", weights=6 << 20)
    archive = store.backup(tmp_path / "big.tar.gz")
    size = (store.root / "versions" / "v0001" / "model.keras").stat().st_size
    small = tmpfs("20m")
    used = shutil.disk_usage(small).used
    free = shutil.disk_usage(small).free
    with pytest.raises(StoreError) as caught:
        ModelStore.restore(archive, small / "restored")
    # The metadata before the model (marker, pointer, manifest) took a page each.
    assert str(caught.value) == (
        f"{archive}: member 'versions/v0001/model.keras' needs {size} bytes but {small} has "
        f"{free - 3 * PAGE} bytes free (restore keeps {RESTORE_HEADROOM_BYTES} bytes free)"
    )
    assert shutil.disk_usage(small).used == used
    assert os.listdir(small) == []
    roomy = tmpfs("32m")
    assert ModelStore.restore(archive, roomy / "restored").verify().ok


@pytest.fixture
def read_only_store(tmp_path: Path, mounts: Callable[..., None]) -> ModelStore:
    store = make_store(tmp_path / "store", tmp_path / "models")
    view = tmp_path / "read-only"
    view.mkdir()
    mounts("--bind", str(store.root), str(view))
    _mount("-o", "remount,bind,ro", str(view))
    return ModelStore(view)


def test_read_only_store_refuses_writes_naming_the_lock(
    read_only_store: ModelStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = read_only_store.root
    lock = root / ".lock"
    for args in (("rollback",), ("verify",), ("list",)):
        code, out, err = cli(capsys, "store", *args, "--store", str(root))
        if args == ("rollback",):
            assert code == EXIT_USAGE
            assert one_line(err) == (
                f"release-spec: error: store rollback: cannot write {lock}: Read-only file system"
            )
        else:
            assert code == EXIT_OK, err
    assert out.endswith("production: v0002 (marked *)\n")
    with pytest.raises(StoreWriteError, match=r"cannot write .*\.lock: Read-only file system"):
        read_only_store.register(tmp_path / "models" / "a.keras")
    assert read_only_store.verify().ok
    assert read_only_store.production().version == "v0002"  # type: ignore[union-attr]


def test_read_only_restore_target_names_the_file(
    tmp_path: Path, mounts: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_store(tmp_path / "store", tmp_path / "models")
    archive = store.backup(tmp_path / "b.tar.gz")
    parent = tmp_path / "ro-parent"
    parent.mkdir()
    mounts("--bind", str(parent), str(parent))
    _mount("-o", "remount,bind,ro", str(parent))
    target = parent / "restored"
    code, _, err = cli(
        capsys, "store", "restore", "--archive", str(archive), "--store", str(target)
    )
    assert code == EXIT_USAGE
    assert one_line(err) == (
        f"release-spec: error: store restore: cannot write {target}: Read-only file system"
    )


@pytest.mark.parametrize("target", ["production.json", "versions/v0001/manifest.json"])
def test_device_node_in_the_store_is_never_opened(tmp_path: Path, target: str) -> None:
    _need_root()
    store = make_store(tmp_path / "store", tmp_path / "models")
    path = store.root / target
    path.unlink()
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # the device /dev/zero is
    proc = cli_child("store", "verify", "--store", str(store.root))
    assert proc.returncode == EXIT_STOPPED, proc.stderr
    assert f"problem: {path}: is a character device, not a regular file (refused)" in proc.stdout
