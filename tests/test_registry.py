"""The model store: round trips, integrity, refused formats, Lambda refusal, locking."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from fakes import fake_keras_file, reseal

from release_spec.store import (
    CorruptFileError,
    IntegrityError,
    ModelStore,
    StaleLockWarning,
    StoreError,
    StoreLockedError,
    UnsafeModelError,
    check_model_file,
    safe_load_model,
)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two tiny Dense(3)-on-4-inputs models saved as .keras, with inputs and their outputs."""
    out = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(7)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    files: dict[str, Any] = {"x": x}
    for name in ("a", "b"):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        path = out / f"{name}.keras"
        model.save(path)
        files[name] = path
        files[f"{name}_pred"] = model.predict(x, verbose=0)
    files["model"] = model
    return files


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store", create=True)


def _flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------ round trips


def test_register_list_promote_load_round_trip(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    a = store.register(model_files["a"], metrics={"accuracy": 0.91}, data_hashes={"train": "ab12"})
    b = store.register(model_files["b"], metrics={"accuracy": 0.93}, parent=a.version)
    assert [v.version for v in store.versions()] == ["v0001", "v0002"]
    assert store.production() is None
    assert store.promote(b.version) == b
    assert store.production() == b
    assert b.parent == "v0001"
    assert dict(b.metrics) == {"accuracy": 0.93}
    assert dict(a.data_hashes) == {"train": "ab12"}
    assert b.sha256 == hashlib.sha256(model_files["b"].read_bytes()).hexdigest()
    assert b.keras_version == keras.__version__
    loaded = store.load_model()
    np.testing.assert_array_equal(
        loaded.predict(model_files["x"], verbose=0), model_files["b_pred"]
    )
    older = store.load_model("v0001")
    np.testing.assert_array_equal(older.predict(model_files["x"], verbose=0), model_files["a_pred"])


def test_version_info_is_hashable_and_json_ready(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    info = store.register(model_files["a"], metrics={"accuracy": 0.9}, data_hashes={"t": "00"})
    assert {info, store.info("v0001")} == {info}
    as_json = json.loads(json.dumps(info.to_dict()))
    assert as_json == {
        **dataclasses.asdict(info),
        "path": str(store.root / "versions" / "v0001" / "model.keras"),
    }
    assert as_json["metrics"] == {"accuracy": 0.9}
    assert as_json["sha256"] == hashlib.sha256(model_files["a"].read_bytes()).hexdigest()


def test_manifest_records_every_field(store: ModelStore, model_files: dict[str, Any]) -> None:
    info = store.register(model_files["a"], version="base", metrics={"f1": 0.5}, data_hashes={})
    manifest = json.loads((store.root / "versions" / "base" / "manifest.json").read_text())
    stored = store.root / "versions" / "base" / "model.keras"
    assert manifest["files"] == {
        "model.keras": {
            "sha256": hashlib.sha256(stored.read_bytes()).hexdigest(),
            "size": stored.stat().st_size,
        }
    }
    assert manifest["version"] == "base"
    assert manifest["format_version"] == 1
    assert manifest["keras_version"] == keras.__version__
    assert manifest["parent"] is None
    assert manifest["created"] == info.created
    assert manifest["metrics"] == {"f1": 0.5}
    assert sorted(os.listdir(stored.parent)) == ["manifest.json", "model.keras"]


def test_save_model_saves_keras_and_registers(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    info = store.save_model(model_files["model"], metrics={"accuracy": 1.0})
    assert info.version == "v0001"
    reloaded = store.load_model(info.version)
    np.testing.assert_array_equal(
        reloaded.predict(model_files["x"], verbose=0), model_files["b_pred"]
    )


def test_reregistering_a_version_is_refused(store: ModelStore, model_files: dict[str, Any]) -> None:
    store.register(model_files["a"], version="v0001")
    before = (store.root / "versions" / "v0001" / "manifest.json").read_bytes()
    with pytest.raises(StoreError, match=r"version 'v0001' already exists"):
        store.register(model_files["b"], version="v0001")
    assert (store.root / "versions" / "v0001" / "manifest.json").read_bytes() == before
    assert store.register(model_files["b"]).version == "v0002"


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", "", "-x", "x" * 129])
def test_bad_version_names_are_refused(
    store: ModelStore, model_files: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match="invalid version name"):
        store.register(model_files["a"], version=name)
    assert store.versions() == []


def test_bad_metadata_is_refused(store: ModelStore, model_files: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"metric 'loss' is not finite"):
        store.register(model_files["a"], metrics={"loss": float("nan")})
    with pytest.raises(ValueError, match=r"metric 'ok' is not a number"):
        store.register(model_files["a"], metrics={"ok": True})
    with pytest.raises(StoreError, match=r"parent version 'nope' is not in"):
        store.register(model_files["a"], parent="nope")
    assert store.versions() == []


def test_rollback_walks_back_the_production_history(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    for _ in range(3):
        store.promote(store.register(model_files["a"]).version)
    assert store.production_history() == ["v0001", "v0002"]
    assert store.rollback().version == "v0002"
    assert store.production().version == "v0002"  # type: ignore[union-attr]
    assert store.rollback().version == "v0001"
    assert store.production_history() == []
    with pytest.raises(StoreError, match="no earlier production version"):
        store.rollback()
    assert store.production().version == "v0001"  # type: ignore[union-attr]


def test_promoting_the_production_version_changes_nothing(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    store.promote(store.register(model_files["a"]).version)
    store.promote("v0001")
    assert store.production_history() == []
    with pytest.raises(StoreError, match="no version 'v0009'"):
        store.promote("v0009")


def test_bytes_changed_after_verification_are_never_loaded(
    store: ModelStore, model_files: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    info = store.register(model_files["a"])
    verified = ModelStore._verified

    def verify_then_tamper(self: ModelStore, version: str) -> Any:
        result = verified(self, version)
        _flip_byte(info.path, 300)  # the file changes between the check and the load
        return result

    calls: list[object] = []
    monkeypatch.setattr(ModelStore, "_verified", verify_then_tamper)
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(a))
    with pytest.raises(IntegrityError, match=r"v0001/model\.keras: sha256 changed while loading"):
        store.load_model("v0001")
    assert calls == []


def test_opening_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a model store"):
        ModelStore(tmp_path)
    (tmp_path / "versions").mkdir()  # debris of an interrupted creation
    assert ModelStore(tmp_path, create=True).versions() == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("x")
    with pytest.raises(StoreError, match="non-empty"):
        ModelStore(other, create=True)
    assert [p.name for p in other.iterdir()] == ["precious.txt"]


# ------------------------------------------------------------------ backup and restore


def test_backup_restore_round_trip(
    store: ModelStore, model_files: dict[str, Any], tmp_path: Path
) -> None:
    store.promote(store.register(model_files["a"], metrics={"accuracy": 0.9}).version)
    store.promote(store.register(model_files["b"], parent="v0001").version)
    backups = tmp_path / "backups"
    backups.mkdir()
    archive = store.backup(backups)
    assert archive.parent == backups
    assert archive.name.endswith(".tar.gz")
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    assert ".lock" not in names
    assert "production.json" in names
    assert "versions/v0002/model.keras" in names

    restored = ModelStore.restore(archive, tmp_path / "restored")
    assert restored.verify().ok
    assert restored.versions() == [
        dataclasses.replace(v, path=restored.root / "versions" / v.version / "model.keras")
        for v in store.versions()
    ]
    assert restored.production().version == "v0002"  # type: ignore[union-attr]
    assert restored.production_history() == ["v0001"]
    assert restored.rollback().version == "v0001"
    loaded = restored.load_model()
    np.testing.assert_array_equal(
        loaded.predict(model_files["x"], verbose=0), model_files["a_pred"]
    )


def test_restore_refuses_a_non_empty_target_unless_told(
    store: ModelStore, model_files: dict[str, Any], tmp_path: Path
) -> None:
    store.promote(store.register(model_files["a"]).version)
    archive = store.backup(tmp_path / "b.tar.gz")
    other = ModelStore(tmp_path / "other", create=True)
    other.register(model_files["b"], version="only-here")
    with pytest.raises(StoreError, match="refusing to restore into non-empty"):
        ModelStore.restore(archive, other.root)
    not_a_store = tmp_path / "documents"
    not_a_store.mkdir()
    (not_a_store / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="is not a model store"):
        ModelStore.restore(archive, not_a_store, overwrite=True)
    assert [p.name for p in not_a_store.iterdir()] == ["notes.txt"]
    assert [v.version for v in other.versions()] == ["only-here"]
    replaced = ModelStore.restore(archive, other.root, overwrite=True)
    assert [v.version for v in replaced.versions()] == ["v0001"]
    assert replaced.production().version == "v0001"  # type: ignore[union-attr]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".other")]
    with pytest.raises(StoreError, match="refusing to overwrite a backup"):
        store.backup(tmp_path / "b.tar.gz")


def _rewrite_archive(archive: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Rewrite a backup, passing each member's bytes through ``change`` (None drops it)."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    with tarfile.open(archive, "w:gz") as tar:
        for member, data in members:
            if member.isreg():
                new = change(member.name, data)
                if new is None:
                    continue
                member.size = len(new)
                tar.addfile(member, io.BytesIO(new))
            else:
                tar.addfile(member)


def _flip_model(name: str, data: bytes) -> bytes:
    if name == "versions/v0001/model.keras":
        return data[:100] + bytes([data[100] ^ 1]) + data[101:]
    return data


def _edit_metric(name: str, data: bytes) -> bytes:
    if name == "versions/v0001/manifest.json":
        return data.replace(b'"accuracy": 0.5', b'"accuracy": 0.9')
    return data


def _drop_model(name: str, data: bytes) -> bytes | None:
    return None if name == "versions/v0001/model.keras" else data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_flip_model, r"versions/v0001/model\.keras: sha256 .* does not match"),
        (_edit_metric, r"versions/v0001/manifest\.json: checksum mismatch"),
        (_drop_model, r"versions/v0001/model\.keras: missing"),
    ],
)
def test_restore_refuses_a_tampered_archive(
    store: ModelStore,
    model_files: dict[str, Any],
    tmp_path: Path,
    change: Callable[[str, bytes], bytes | None],
    message: str,
) -> None:
    store.promote(store.register(model_files["a"], metrics={"accuracy": 0.5}).version)
    archive = store.backup(tmp_path / "b.tar.gz")
    _rewrite_archive(archive, change)
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=message):
        ModelStore.restore(archive, target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz", "store"]


def test_restore_refuses_foreign_archive_members(store: ModelStore, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        entry = tarfile.TarInfo("../escaped.txt")
        entry.size = 2
        tar.addfile(entry, io.BytesIO(b"hi"))
    with pytest.raises(StoreError, match=r"unexpected archive member '\.\./escaped\.txt'"):
        ModelStore.restore(archive, tmp_path / "restored")
    assert not (tmp_path / "escaped.txt").exists()
    truncated = tmp_path / "short.tar.gz"
    good = store.backup(tmp_path / "good.tar.gz")
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(IntegrityError, match="unreadable backup archive"):
        ModelStore.restore(truncated, tmp_path / "restored")
    with pytest.raises(StoreError, match="no such backup archive"):
        ModelStore.restore(tmp_path / "missing.tar.gz", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_backup_of_a_damaged_store_is_refused(
    store: ModelStore, model_files: dict[str, Any], tmp_path: Path
) -> None:
    store.register(model_files["a"])
    _flip_byte(store.root / "versions" / "v0001" / "model.keras", 200)
    with pytest.raises(IntegrityError, match="refusing to back up"):
        store.backup(tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


# ------------------------------------------------------------------ integrity


def test_flipped_byte_is_refused_at_load_and_reported_by_verify(
    store: ModelStore, model_files: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.promote(store.register(model_files["a"]).version)
    stored = store.root / "versions" / "v0001" / "model.keras"
    _flip_byte(stored, stored.stat().st_size // 2)
    calls: list[object] = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(a))
    with pytest.raises(IntegrityError, match=r"v0001/model\.keras: sha256 .* does not match"):
        store.load_model()
    assert calls == []
    report = store.verify()
    assert not report.ok
    assert len(report.problems) == 1
    assert str(stored) in report.problems[0]
    with pytest.raises(IntegrityError, match="damaged"):
        store.promote("v0001")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garble_value(path: Path) -> None:
    path.write_text(path.read_text().replace("v0001", "v0007"))


@pytest.mark.parametrize("damage", [_truncate, _empty, _garble_value])
def test_damaged_manifest_is_an_error_naming_it(
    store: ModelStore, model_files: dict[str, Any], damage: Callable[[Path], None]
) -> None:
    store.register(model_files["a"])
    manifest = store.root / "versions" / "v0001" / "manifest.json"
    damage(manifest)
    pattern = rf"{manifest}: .*(truncated|empty|checksum)"
    with pytest.raises(CorruptFileError, match=pattern) as caught:
        store.versions()
    assert caught.value.path == manifest
    with pytest.raises(CorruptFileError, match=pattern):
        store.load_model("v0001")
    report = store.verify()
    assert len(report.problems) == 1
    assert str(manifest) in report.problems[0]


@pytest.mark.parametrize("damage", [_truncate, _empty, _garble_value])
def test_damaged_pointer_is_an_error_naming_it(
    store: ModelStore, model_files: dict[str, Any], damage: Callable[[Path], None]
) -> None:
    store.promote(store.register(model_files["a"]).version)
    store.register(model_files["b"])
    pointer = store.root / "production.json"
    damage(pointer)
    before = pointer.read_bytes()
    with pytest.raises(CorruptFileError, match=rf"{pointer}: ") as caught:
        store.production()
    assert caught.value.path == pointer
    with pytest.raises(CorruptFileError, match=rf"{pointer}: "):
        store.load_model()
    with pytest.raises(CorruptFileError, match=rf"{pointer}: "):
        store.promote("v0002")
    assert pointer.read_bytes() == before
    assert any(str(pointer) in p for p in store.verify().problems)


def test_pointer_naming_a_missing_version_is_an_error(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    store.promote(store.register(model_files["a"]).version)
    pointer = store.root / "production.json"
    reseal(pointer, lambda d: d.update(version="v0042"))
    with pytest.raises(CorruptFileError, match=r"names version 'v0042', which is not in the store"):
        store.production()


def test_damaged_store_marker_is_an_error_naming_it(store: ModelStore) -> None:
    marker = store.root / "store.json"
    _truncate(marker)
    with pytest.raises(CorruptFileError, match=rf"{marker}: "):
        ModelStore(store.root)


def test_leftovers_of_a_crashed_writer_are_ignored_then_cleaned(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    store.promote(store.register(model_files["a"]).version)
    incoming = store.root / "versions" / ".incoming-deadbeef"
    incoming.mkdir()
    (incoming / "model.keras").write_bytes(b"half a model")
    stray = store.root / ".production.json.0123.tmp"
    stray.write_text('{"trunc')
    assert [v.version for v in store.versions()] == ["v0001"]
    report = store.verify()
    assert report.ok
    assert report.leftovers == tuple(sorted([str(stray), str(incoming)]))
    store.register(model_files["b"])
    assert not incoming.exists()
    assert not stray.exists()
    assert store.verify().leftovers == ()


# ------------------------------------------------------------------ refused formats


def _h5(path: Path) -> Path:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    return path


def _pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    return path


def _saved_model(path: Path) -> Path:
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"\x08\x01")
    (path / "variables").mkdir()
    return path


@pytest.mark.parametrize(
    ("name", "make", "fmt"),
    [
        ("model.h5", _h5, r"HDF5 \(\.h5\)"),
        ("model.hdf5", _h5, r"HDF5 \(\.hdf5\)"),
        ("model.pkl", _pickle, r"pickle \(\.pkl\)"),
        ("model.pickle", _pickle, r"pickle \(\.pickle\)"),
        ("model.joblib", _pickle, r"joblib \(\.joblib\)"),
        ("exported", _saved_model, "TensorFlow SavedModel"),
        ("renamed-h5.keras", _h5, "HDF5 content"),
        ("renamed-pickle.keras", _pickle, "pickle content"),
    ],
)
def test_refused_formats_name_the_format(
    store: ModelStore, tmp_path: Path, name: str, make: Callable[[Path], Path], fmt: str
) -> None:
    path = make(tmp_path / name)
    with pytest.raises(UnsafeModelError, match=fmt):
        store.register(path)
    with pytest.raises(UnsafeModelError, match=fmt):
        safe_load_model(path)
    assert store.versions() == []


def test_real_keras_h5_file_is_refused(
    store: ModelStore, model_files: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "legacy.h5"
    model_files["model"].save(path)
    with pytest.raises(UnsafeModelError, match=r"HDF5 \(\.h5\) format is refused"):
        store.register(path)


def _evil_lambda_model(tmp_path: Path, marker: Path) -> Path:
    """Save a model whose Lambda writes ``marker`` whenever Keras calls it."""
    # eval puts the path in the code object's constants: no closure or defaults to serialise.
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').write('model code ran'), x)[1]")
    evil = keras.layers.Lambda(payload)
    model = keras.Sequential([keras.Input((4,)), evil])
    path = tmp_path / "evil.keras"
    model.save(path)
    assert marker.exists()  # building the model ran the lambda: the payload is live
    marker.unlink()
    return path


def test_lambda_model_is_refused_and_its_code_never_runs(
    store: ModelStore,
    model_files: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "pwned"
    evil = _evil_lambda_model(tmp_path, marker)
    calls: list[object] = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(a))

    with pytest.raises(UnsafeModelError, match=r"Lambda layer 'lambda"):
        store.register(evil)
    with pytest.raises(UnsafeModelError, match="Lambda layer"):
        safe_load_model(evil)
    assert store.versions() == []

    # A store written by another tool: the manifest is valid, the model is not.
    store.register(model_files["a"])
    vdir = store.root / "versions" / "v0001"
    (vdir / "model.keras").write_bytes(evil.read_bytes())
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    size = evil.stat().st_size
    reseal(
        vdir / "manifest.json",
        lambda d: d["files"].update({"model.keras": {"sha256": digest, "size": size}}),
    )
    with pytest.raises(UnsafeModelError, match="Lambda layer"):
        store.load_model("v0001")
    assert any("Lambda layer" in p for p in store.verify().problems)
    assert calls == []
    assert not marker.exists()


def test_keras_own_safe_mode_also_blocks_the_lambda(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _evil_lambda_model(tmp_path, marker)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(evil, safe_mode=True)
    assert not marker.exists()
    # The file is a real threat: with safe_mode off, loading runs its code.
    keras.saving.load_model(evil, safe_mode=False)
    assert marker.read_text() == "model code ran"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"module": "keras.layers", "class_name": "TFSMLayer", "config": {"name": "sm"}},
            "TFSMLayer 'sm'",
        ),
        (
            {
                "module": "keras",
                "class_name": "Sequential",
                "config": {"layers": [{"module": "os", "class_name": "system", "config": {}}]},
            },
            r"object 'system' from module 'os' \(not Keras\) at config\.config\.layers\[0\]",
        ),
        (
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"activation": {"class_name": "__lambda__", "config": {"code": "AA=="}}},
            },
            "serialised Python lambda",
        ),
    ],
)
def test_configs_that_would_run_code_are_refused(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsafeModelError, match=message):
        check_model_file(fake_keras_file(tmp_path / "m.keras", config=config))


def test_unexpected_zip_members_are_refused(tmp_path: Path) -> None:
    path = fake_keras_file(tmp_path / "m.keras")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("payload.pkl", pickle.dumps(1))
    with pytest.raises(UnsafeModelError, match=r"unexpected members .*payload\.pkl"):
        check_model_file(path)


def test_loading_uses_safe_mode_and_a_minimum_keras_version(
    model_files: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(keras.saving, "load_model", lambda path, **kw: seen.append(kw) or "model")
    assert safe_load_model(model_files["a"]) == "model"
    assert seen == [{"safe_mode": True}]
    monkeypatch.setattr(keras, "__version__", "3.11.2")
    with pytest.raises(StoreError, match=r"Keras 3\.11\.2 is too old .* >= 3\.11\.3"):
        safe_load_model(model_files["a"])
    monkeypatch.setattr(keras, "__version__", "3.11.3")
    assert safe_load_model(model_files["a"]) == "model"


# ------------------------------------------------------------------ locking


@pytest.fixture
def lock_holder(
    store: ModelStore, hold_lock: Callable[[Path], subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    return hold_lock(store.root)


def test_lock_held_by_a_live_process_names_the_holder(
    store: ModelStore, model_files: dict[str, Any], lock_holder: subprocess.Popen[str]
) -> None:
    host = socket.gethostname()
    with pytest.raises(
        StoreLockedError, match=rf"locked by pid {lock_holder.pid} on host"
    ) as caught:
        store.register(model_files["a"])
    assert caught.value.holder is not None
    assert caught.value.holder.pid == lock_holder.pid
    assert caught.value.holder.host == host
    assert "since 20" in str(caught.value)
    assert str(store.root / ".lock") in str(caught.value)
    with pytest.raises(StoreLockedError):
        store.rollback()
    assert store.versions() == []
    assert store.verify().ok  # readers need no lock


def test_stale_lock_of_a_killed_writer_is_taken_over(
    store: ModelStore, model_files: dict[str, Any], lock_holder: subprocess.Popen[str]
) -> None:
    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait()
    record = json.loads((store.root / ".lock").read_text())
    assert record["pid"] == lock_holder.pid
    with pytest.warns(StaleLockWarning, match=rf"pid {lock_holder.pid} .*no longer running"):
        info = store.register(model_files["a"])
    assert info.version == "v0001"
    assert (store.root / ".lock").read_bytes() == b""


def test_hand_written_stale_lock_of_a_dead_pid_is_taken_over(
    store: ModelStore, model_files: dict[str, Any]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00"}
    (store.root / ".lock").write_text(json.dumps(record))
    with pytest.warns(StaleLockWarning, match=rf"pid {dead.pid} on host .* since 2026-01-01"):
        store.promote(store.register(model_files["a"]).version)
    assert store.production().version == "v0001"  # type: ignore[union-attr]
