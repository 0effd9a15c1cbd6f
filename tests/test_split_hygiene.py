"""Test-split hygiene: no gate whose failure drives a retry reads a test split.

The splits carry their names (`release_spec.workbench.data.Split.name`), gates record the
split they read (`GateResult.split`), and the retry loop (`run_stage`) refuses
an attempt whose gates read a test split. The release stage's final gate may.
No TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest

from release_spec.strategy.gates import (
    accuracy_gate,
    forgetting_gate,
    improvement_gate,
    is_test_split,
    macro_f1_gate,
    noninferiority_gate,
)
from release_spec.strategy.stages import (
    AttemptOutcome,
    Hyperparameters,
    ReleaseStep,
    State,
    TrainingCurves,
    run_release,
    run_stage,
)
from release_spec.workbench.data import load_dataset

HP = Hyperparameters(learning_rate=1e-3, epochs=10, batch_size=32)
CURVES = TrainingCurves((0.9,), (0.9,), (0.1,), (0.1,))
Y = np.repeat(np.arange(10), 20)


@pytest.fixture(scope="module")
def ds():
    return load_dataset(seed=0, target_train_copies=1)


def test_load_dataset_names_every_split(ds):
    names = [
        getattr(d, part).name for d in (ds.source, ds.target) for part in ("train", "val", "test")
    ]
    assert names == [
        "source.train",
        "source.val",
        "source.test",
        "target.train",
        "target.val",
        "target.test",
    ]
    assert [is_test_split(n) for n in names] == [False, False, True, False, False, True]


def test_is_test_split_reads_the_last_component():
    assert is_test_split("test")
    assert is_test_split("target.test")
    assert not any(map(is_test_split, ["source.val", "testing", "test.val", "", None]))


def test_label_gates_record_the_split_they_read(ds):
    val = ds.source.val.name
    gates = [
        accuracy_gate("a", Y, Y, min_lower=0.5, split=val),
        macro_f1_gate("m", Y, Y, min_lower=0.5, n_resamples=20, split=val),
        improvement_gate("i", Y, Y, Y, split=val),
        forgetting_gate("f", Y, Y, Y, margin=0.05, split=val),
        noninferiority_gate("n", Y, Y, Y, margin=0.05, split=ds.target.test.name),
    ]
    assert [g.split for g in gates] == ["source.val"] * 4 + ["target.test"]
    assert [g.to_dict()["split"] for g in gates] == [g.split for g in gates]


@pytest.mark.parametrize("part", ["test", "val"])
def test_run_stage_refuses_a_forgetting_gate_on_the_test_split(ds, part):
    split = getattr(ds.source, part)
    calls = []

    def attempt(hp):
        calls.append(hp)
        gate = forgetting_gate(
            "finetune.no_forgetting", split.labels, split.labels, split.labels,
            margin=0.05, split=split.name,
        )  # fmt: skip
        return AttemptOutcome("model", (gate,), CURVES)

    if part == "test":
        with pytest.raises(ValueError, match=r"finetune.no_forgetting \(source.test\) read a test"):
            run_stage("finetune", HP, attempt, max_attempts=3, overfit_gap=0.05)
        assert len(calls) == 1  # refused at once: no retry was tuned on it
    else:
        record, model = run_stage("finetune", HP, attempt, max_attempts=3, overfit_gap=0.05)
        assert (record.state, model) == (State.PASSED, "model")
        assert record.gates[0].split == "source.val"


def test_run_stage_refuses_even_a_passing_gate_on_a_test_split():
    def attempt(hp):
        gate = accuracy_gate("pretrain.accuracy", Y, Y, min_lower=0.5, split="test")
        return AttemptOutcome("model", (gate,), CURVES)

    with pytest.raises(ValueError, match=r"pretrain\.accuracy \(test\)"):
        run_stage("pretrain", HP, attempt, max_attempts=1, overfit_gap=0.05)


def test_the_final_release_gate_reads_the_test_split(ds):
    test = ds.target.test

    def performance():
        return (
            noninferiority_gate(
                "release.noninferiority", test.labels, test.labels, test.labels,
                margin=0.03, split=test.name,
            ),
        )  # fmt: skip

    record = run_release([ReleaseStep("performance", performance)])
    assert record.state is State.PASSED
    assert record.gates[0].split == "target.test"
