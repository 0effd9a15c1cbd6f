"""The embedded data set: shapes, ranges, determinism, disjoint splits, the shift."""

from __future__ import annotations

import numpy as np
import pytest

from release_spec.workbench.data import array_sha256, load_dataset, make_live_pool


@pytest.fixture(scope="module")
def ds():
    return load_dataset(seed=0)


def test_shapes_ranges_and_one_hot(ds):
    for dom in (ds.source, ds.target):
        for split in (dom.train, dom.val, dom.test):
            assert split.x.shape == (len(split), 784)
            assert split.x.dtype == np.float32
            assert split.x.min() >= 0.0
            assert split.x.max() <= 1.0
            np.testing.assert_array_equal(split.y.sum(axis=1), 1.0)
            assert set(np.unique(split.labels)) <= set(range(10))
    assert len(ds.source.train) == 1042
    assert len(ds.target.train) == 8 * 1042
    assert (len(ds.source.test), len(ds.target.test)) == (53, 251)


def test_every_class_present_in_every_split(ds):
    for dom in (ds.source, ds.target):
        for split in (dom.train, dom.val, dom.test):
            assert np.bincount(split.labels, minlength=10).min() > 0


def test_same_seed_same_data_other_seed_other_data(ds):
    again = load_dataset(seed=0)
    assert again.hashes() == ds.hashes()
    other = load_dataset(seed=1)
    assert other.hashes()["target.test.x"] != ds.hashes()["target.test.x"]


def test_clean_groups_are_disjoint(ds):
    # Source images are unshifted, so equal rows mean the same base image.
    rows = {dom: {r.tobytes() for r in getattr(ds.source, dom).x} for dom in ("train", "val")}
    test_rows = {r.tobytes() for r in ds.source.test.x}
    live_rows = {r.tobytes() for r in ds.live_base_x.reshape(len(ds.live_base_x), -1)}
    assert not rows["train"] & test_rows
    assert not rows["train"] & rows["val"]
    assert not rows["train"] & live_rows


def test_target_shift_is_a_real_shift(ds):
    # Thicker strokes and noise: more ink per image than the clean digits.
    assert ds.target.test.x.mean() > 1.2 * ds.source.test.x.mean()


def test_live_pool_deterministic_with_ids_and_labels(ds):
    a = make_live_pool(ds, n=300)
    b = make_live_pool(ds, n=300)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.ids[0] == "req-000000"
    assert len(set(a.ids.tolist())) == 300
    assert set(np.unique(a.labels)) <= set(ds.live_base_labels.tolist())
    assert a.x.shape == (300, 784)


def test_array_sha256_sees_dtype_and_shape():
    z = np.zeros(4, np.float32)
    assert array_sha256(z) != array_sha256(z.reshape(2, 2))
    assert array_sha256(z) != array_sha256(z.astype(np.float64))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"target_train_copies": 0}, "target_train_copies"), ({"max_rotation": -1}, "max_rotation")],
)
def test_bad_arguments_name_the_problem(kwargs, word):
    with pytest.raises(ValueError, match=word):
        load_dataset(**kwargs)


def test_live_pool_needs_a_request(ds):
    with pytest.raises(ValueError, match="n must be"):
        make_live_pool(ds, n=0)
