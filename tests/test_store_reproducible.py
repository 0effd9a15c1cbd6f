"""Reproducible artifacts: the same weights give the same model file and the same sha256.

Keras writes the save time into ``metadata.json``, the time into the zip
entries and memory addresses (``shared_object_id``) into ``config.json``, so
two saves of one model differ. `ModelStore.save_model` normalises them
(`reproducible_keras`); these tests build and train a tiny model twice with
the same seed and compare digests. Imports TensorFlow (about 10-30 s).
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from release_spec.store import ModelStore, check_model_file, reproducible_keras


def _trained(seed: int) -> keras.Model:
    """A tiny model trained two epochs; fixed layer names so two builds share a config."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="hidden"),
            keras.layers.Dense(2, name="out"),
        ],
        name="tiny",
    )
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 2)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    return model


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_same_seed_same_training_gives_the_same_sha256(tmp_path: Path) -> None:
    first = _trained(11)
    first.save(tmp_path / "first.keras")
    time.sleep(1.1)  # a save in another second: Keras's date_saved differs
    second = _trained(11)  # ``first`` stays alive: its objects keep their addresses
    second.save(tmp_path / "second.keras")
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # What Keras writes differs although the weights are equal ...
    raw_a, raw_b = _members(tmp_path / "first.keras"), _members(tmp_path / "second.keras")
    assert _sha(tmp_path / "first.keras") != _sha(tmp_path / "second.keras")
    assert raw_a["metadata.json"] != raw_b["metadata.json"]
    assert raw_a["config.json"] != raw_b["config.json"]
    # ... but not the weights file: h5py records no timestamps, so it needs no rewriting.
    assert raw_a["model.weights.h5"] == raw_b["model.weights.h5"]

    store = ModelStore(tmp_path / "store", create=True)
    a = store.save_model(first)
    b = store.save_model(second)
    again = store.save_model(first)
    assert a.sha256 == b.sha256 == again.sha256
    assert a.path.read_bytes() == b.path.read_bytes()
    assert json.loads(_members(a.path)["metadata.json"])["date_saved"] == "1980-01-01@00:00:00"
    with zipfile.ZipFile(a.path) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert zf.namelist() == sorted(zf.namelist())
    assert check_model_file(a.path) == keras.__version__
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(
        store.load_model(a.version).predict(x, verbose=0), first.predict(x, verbose=0)
    )


def test_other_weights_give_another_sha256(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store", create=True)
    assert store.save_model(_trained(11)).sha256 != store.save_model(_trained(12)).sha256


def test_shared_objects_stay_linked_after_renumbering(tmp_path: Path) -> None:
    keras.backend.clear_session()
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4, name="shared")
    outputs = keras.layers.Dense(1, name="head")(shared(shared(inputs)))
    model = keras.Model(inputs, outputs, name="twice")
    model.save(tmp_path / "raw.keras")
    reproducible_keras(tmp_path / "raw.keras", tmp_path / "fixed.keras")
    config = json.loads(_members(tmp_path / "fixed.keras")["config.json"])
    ids = _shared_ids(config)
    assert ids
    assert set(ids) == set(range(1, max(ids) + 1))
    reloaded = keras.saving.load_model(tmp_path / "fixed.keras", safe_mode=True)
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len(reloaded.layers) == len(model.layers)


def _shared_ids(node: object) -> list[int]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "shared_object_id"]
        return found + [i for v in node.values() for i in _shared_ids(v)]
    if isinstance(node, list):
        return [i for v in node for i in _shared_ids(v)]
    return []


def test_refuses_what_is_not_a_keras_zip(tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="pickle content is refused"):
        reproducible_keras(tmp_path / "m.keras", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()
