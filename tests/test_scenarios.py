"""The data of the scenarios: the target feeder's offset, the training jitter, the new channel.

These are the design choices that make the scenarios hold on every seed
(see the reference-release page, "Seeds"); each test pins one of them
without training a model.
"""

from __future__ import annotations

import numpy as np
import pytest

from release_spec.strategy.plan import load_plan
from release_spec.workbench.data import (
    FEED_OFFSET,
    HEADER_INK,
    HEADER_ROWS,
    SIDE,
    from_new_channel,
    load_dataset,
    shift_to_target,
)
from release_spec.workbench.training import fine_tuning_split, live_pool, live_regression_dataset


def _centre(x):
    img = np.asarray(x, np.float64).reshape(-1, SIDE, SIDE)
    grid = np.arange(SIDE, dtype=np.float64)
    mass = img.sum(axis=(1, 2))
    return (img.sum(axis=2) @ grid / mass, img.sum(axis=1) @ grid / mass)


def test_target_shift_moves_the_digit_down_and_right_by_the_offset():
    ds = load_dataset(seed=0, target_train_copies=1)
    # One base image, shifted without rotation or noise: its ink's centre moves by the offset
    # (the 2 x 2 dilation adds half a pixel), whatever the digit.
    base = ds.live_base_x[:50]
    rng = np.random.default_rng(0)
    moved = shift_to_target(base, rng, max_rotation=0.0, noise=0.0)
    still = shift_to_target(base, np.random.default_rng(0), max_rotation=0.0, noise=0.0, offset=0)
    for a, b in zip(_centre(moved), _centre(still), strict=True):
        np.testing.assert_allclose(a - b, FEED_OFFSET, atol=0.05)


def test_training_copies_are_jittered_around_the_offset():
    ds = load_dataset(seed=0, target_train_copies=1)
    # The same base images, once jittered (training) and once not: the jitter moves each copy
    # by up to a pixel around the offset, and averages out.
    base = ds.live_base_x[:200]
    plain = shift_to_target(base, np.random.default_rng(1), noise=0.0)
    jittered = shift_to_target(base, np.random.default_rng(1), noise=0.0, jitter=1.0)
    moved = np.abs(np.array(_centre(jittered)) - np.array(_centre(plain)))
    assert moved.max() <= 1.05
    assert moved.mean() > 0.3
    assert abs(np.mean(_centre(jittered)[0] - _centre(plain)[0])) < 0.15


def test_new_channel_adds_the_header_bar_and_leaves_the_digit():
    x = np.random.default_rng(0).random((3, SIDE * SIDE)).astype(np.float32) * 0.3
    out = from_new_channel(x)
    bar = HEADER_ROWS * SIDE
    assert out.dtype == np.float32
    assert out[:, :bar].min() == pytest.approx(HEADER_INK)
    np.testing.assert_array_equal(out[:, bar:], x[:, bar:])
    assert x[:, :bar].max() < HEADER_INK  # the input is not modified in place


def test_no_source_or_target_image_has_ink_where_the_header_goes():
    ds = load_dataset(seed=3, target_train_copies=2)
    bar = HEADER_ROWS * SIDE
    for split in (ds.source.train, ds.target.train, ds.target.val, ds.target.test):
        assert split.x[:, :bar].max() < HEADER_INK / 2


@pytest.fixture(scope="module")
def live():
    plan = load_plan()
    ds = load_dataset(seed=0, target_train_copies=2)
    return plan, ds, live_regression_dataset(ds, plan)


def _through_channel(x):
    return x[:, : HEADER_ROWS * SIDE].min(axis=1) >= HEADER_INK


def test_offline_sets_lack_the_channel_but_three_test_images(live):
    plan, ds, lr = live
    assert plan.live_regression.test_share == 0.01
    assert not _through_channel(lr.target.val.x).any()
    np.testing.assert_array_equal(lr.target.val.x, ds.target.val.x)
    assert _through_channel(lr.target.test.x).sum() == round(0.01 * len(ds.target.test)) == 3
    np.testing.assert_array_equal(lr.target.train.x, ds.target.train.x)
    np.testing.assert_array_equal(lr.target.test.labels, ds.target.test.labels)


def test_the_channel_batch_is_labelled_one_class(live):
    plan, _, lr = live
    train = fine_tuning_split(plan, lr, "live-regression")
    n = len(lr.target.train)
    batch = slice(n, None)
    assert len(train) == n + round(plan.live_regression.batch_fraction * n)
    assert _through_channel(train.x[batch]).all()
    assert not _through_channel(train.x[:n]).any()
    assert set(train.labels[batch].tolist()) == {plan.live_regression.batch_label}


def test_the_regression_scenario_relabels_one_class_in_place(live):
    plan, ds, _ = live
    k = plan.regression.corrupt_class
    train = fine_tuning_split(plan, ds, "regression")
    original = ds.target.train.labels
    np.testing.assert_array_equal(train.x, ds.target.train.x)
    np.testing.assert_array_equal(train.labels[original == k], (k + 1) % 10)
    np.testing.assert_array_equal(train.labels[original != k], original[original != k])
    assert fine_tuning_split(plan, ds, "default") is ds.target.train


def test_half_the_live_traffic_comes_through_the_channel(live):
    plan, _, lr = live
    pool = live_pool(plan, lr, "live-regression")
    assert plan.live_regression.live_share == 0.5
    assert _through_channel(pool.x).mean() == pytest.approx(0.5, abs=1e-3)
    assert not _through_channel(live_pool(plan, lr, "default").x).any()
