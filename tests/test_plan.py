"""The TOML release plan: the embedded default, strict validation naming the key."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_spec.strategy.plan import Plan, default_plan_text, load_plan, parse_plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _step(share_pct: float) -> dict[str, float]:
    return {"share_pct": share_pct, "min_canary_requests": 10, "max_bake_minutes": 1.0}


def _sections():
    return [f for f in dataclasses.fields(Plan) if dataclasses.is_dataclass(f.default_factory)]


def _undocumented_keys(text: str) -> list[str]:
    """The keys of a plan file that no comment documents, as ``table.key``.

    A key is documented by a comment directly above the run of keys it is in
    (a blank line or a table header ends a run); a key of an array of tables
    (``[[phased_rollout.steps]]``) also by being named in the comment above the
    array's first header.
    """
    undocumented: list[str] = []
    table, comments, commented = "", "", False
    named: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            comments, commented = comments + s + "\n", True
        elif not s or s.startswith("["):
            if s.startswith("[["):
                named.setdefault(s.strip("[]"), comments)
            table = s.strip("[]") if s else table
            comments, commented = "", False
        else:
            key = s.split("=")[0].strip()
            if not commented and not re.search(rf"\b{re.escape(key)}\b", named.get(table, "")):
                undocumented.append(f"{table}.{key}" if table else key)
            comments = ""
    return undocumented


def test_embedded_default_is_exactly_the_dataclass_defaults():
    assert load_plan() == Plan()


def test_embedded_default_documents_every_key():
    data = tomllib.loads(default_plan_text())
    assert "seed" in data
    for section in _sections():
        keys = {f.name for f in dataclasses.fields(section.default_factory)}
        assert set(data[section.name]) == keys, section.name
    assert _undocumented_keys(default_plan_text()) == []


def test_undocumented_keys_finds_a_key_without_a_comment():
    text = "# a\nx = 1\ny = 2\n\nz = 3\n[t]\nw = 4\n# v: a step\n[[arr]]\nv = 1\nu = 2\n"
    assert _undocumented_keys(text) == ["z", "t.w", "arr.u"]


@pytest.mark.parametrize("baseline_error", [0.01, 0.05, 0.112, 0.2])
def test_default_rollout_is_the_issue_steps_and_the_planner_does_not_warn(baseline_error):
    from release_spec.strategy.rollout import forecast_steps

    rp = Plan().phased_rollout
    assert [s.share_pct for s in rp.steps] == [1.0, 5.0, 25.0, 50.0, 100.0]
    plan = rp.rollout_plan()
    forecast = forecast_steps(plan, baseline_error=baseline_error, regression=plan.margin)
    assert [f.warning for f in forecast] == [None] * 4
    # The pool covers every step's minimum at its share (46,000 requests) with room to spare.
    needed = sum(s.min_canary_requests * 100 / s.share_pct for s in rp.steps)
    assert needed == 46_000
    assert rp.live_requests >= 1.1 * needed


def test_partial_plan_overrides_only_what_it_names(tmp_path):
    f = tmp_path / "plan.toml"
    f.write_text("seed = 3\n[release]\nsoak_seconds = 4\nmax_latency_drift = 2\n")
    plan = load_plan(f)
    assert plan.seed == 3
    assert plan.release.soak_seconds == 4.0
    assert plan.release.max_latency_drift == 2.0
    assert isinstance(plan.release.soak_seconds, float)
    assert plan.release.soak_callers == Plan().release.soak_callers == 4
    assert plan.finetune == Plan().finetune


def test_default_soak_is_a_minute_of_four_callers_and_no_absolute_latency_bound():
    rp = Plan().release
    assert (rp.soak_seconds, rp.soak_callers, rp.soak_windows) == (60.0, 4, 6)
    assert (rp.soak_max_predictions, rp.soak_batch_size) == (3_000_000, 50)
    assert (rp.max_rss_slope_mb_per_min, rp.max_latency_drift) == (16.0, 1.5)
    # No key of the plan bounds a latency in milliseconds: wall-clock figures are reported
    # or judged relative to a reference timed in the same run, never against a constant.
    keys = [
        k for section in Plan().to_dict().values() if isinstance(section, dict) for k in section
    ]
    assert not [k for k in keys if k.endswith("_ms") and k.startswith("max")]
    assert not {"max_p99_ms", "soak_predictions", "max_rss_growth_mb"} & set(keys)


def test_quick_plan_soaks_a_few_seconds_with_the_default_drift_bound():
    quick = load_plan(Path(__file__).parents[1] / "docs" / "release" / "quick-plan.toml")
    assert quick.release.soak_seconds == 4.0
    assert quick.release.soak_callers == 4
    assert quick.release.max_latency_drift == Plan().release.max_latency_drift


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sed": 1}, "sed: unknown key"),
        ({"finetune": {"epoch": 3}}, "finetune.epoch: unknown key"),
        ({"rollout": {}}, "rollout: unknown key"),
        ({"seed": "1"}, "seed: expected an integer"),
        ({"seed": 1.0}, "seed: expected an integer"),
        ({"seed": True}, "seed: expected an integer"),
        ({"seed": -1}, "seed: expected an integer in [0, "),
        ({"pretrain": 3}, "pretrain: expected a table"),
        ({"pretrain": {"epochs": 0}}, "pretrain.epochs: expected an integer in [1, 1000], got 0"),
        ({"pretrain": {"learning_rate": 0}}, "pretrain.learning_rate: expected a number in (0, 1]"),
        ({"finetune": {"replay": 1.5}}, "finetune.replay: expected a number in [0, 1], got 1.5"),
        ({"finetune": {"improvement_alpha": 0.0}}, "finetune.improvement_alpha"),
        ({"release": {"max_p99_ms": 50.0}}, "release.max_p99_ms: unknown key"),
        ({"release": {"soak_predictions": 10}}, "release.soak_predictions: unknown key"),
        ({"release": {"soak_seconds": 0}}, "release.soak_seconds: expected a number in (0, 86400]"),
        ({"release": {"soak_callers": 3}}, "release.soak_callers: expected an integer in [4, 64]"),
        (
            {"release": {"soak_windows": 1}},
            "release.soak_windows: expected an integer in [2, 1000]",
        ),
        ({"release": {"soak_max_predictions": 0}}, "release.soak_max_predictions"),
        (
            {"release": {"max_latency_drift": 1.0}},
            "release.max_latency_drift: expected a number > 1",
        ),
        ({"release": {"max_rss_slope_mb_per_min": float("nan")}}, "release.max_rss_slope_mb"),
        ({"release": {"soak_batch_size": False}}, "release.soak_batch_size: expected an integer"),
        ({"regression": {"corrupt_class": 10}}, "regression.corrupt_class"),
        (
            {"phased_rollout": {"steps": [{"share_pct": 0, "min_canary_requests": 1}]}},
            "phased_rollout.steps[0].max_bake_minutes: missing",
        ),
        (
            {"phased_rollout": {"steps": [_step(5.0), _step(200.0)]}},
            "phased_rollout.steps[1].share_pct: expected a number in (0, 100], got 200",
        ),
        (
            {"phased_rollout": {"steps": [_step(25.0), _step(5.0)]}},
            "phased_rollout.steps: expected strictly increasing shares, got [25.0, 5.0] %",
        ),
        ({"phased_rollout": {"steps": []}}, "phased_rollout.steps: expected a non-empty array"),
        ({"phased_rollout": {"steps": [3]}}, "phased_rollout.steps[0]: expected a table"),
        ({"phased_rollout": {"margin": 0.9}}, "phased_rollout.margin: expected a number in [0,"),
        (
            {"phased_rollout": {"on_inconclusive": "wait"}},
            "phased_rollout.on_inconclusive: expected one of 'hold', 'rollback', got 'wait'",
        ),
        ({"monitoring": {"psi_warning": 0.5}}, "monitoring.psi_warning: expected at most"),
    ],
)
def test_bad_plans_are_rejected_naming_the_key(data, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        parse_plan(data)
    assert "\n" not in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match=r"nope\.toml: cannot read"):
        load_plan(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[finetune\nepochs = 3\n")
    with pytest.raises(ValueError, match=r"broken\.toml: invalid TOML"):
        load_plan(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[finetune]\nepochs = 'ten'\n")
    with pytest.raises(ValueError, match=r"wrong\.toml: finetune\.epochs: expected an integer"):
        load_plan(wrong)


@given(
    epochs=st.integers(1, 1000),
    replay=st.floats(0.0, 1.0),
    margin=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_plan_valid_values_round_trip(epochs, replay, margin, seed):
    data = {
        "seed": seed,
        "finetune": {"epochs": epochs, "replay": replay},
        "release": {"noninferiority_margin": margin},
    }
    plan = parse_plan(data)
    assert (plan.seed, plan.finetune.epochs, plan.finetune.replay) == (seed, epochs, replay)
    assert plan.release.noninferiority_margin == margin
    assert parse_plan(plan.to_dict()) == plan


@given(epochs=st.one_of(st.integers(max_value=0), st.integers(min_value=1001)))
def test_plan_out_of_range_epochs_always_rejected(epochs):
    with pytest.raises(ValueError, match=r"finetune\.epochs"):
        parse_plan({"finetune": {"epochs": epochs}})


@pytest.mark.parametrize(
    "old",
    [
        {"shares": [5.0, 100.0], "min_canary_requests": [10, 0], "max_bake_minutes": [2.0, 1.0]},
        {"shares": [5.0, 100.0]},
    ],
)
def test_old_parallel_step_lists_are_refused_showing_the_tables(old):
    refused = r"^phased_rollout\.shares.*: no longer a key.*\[\[phased_rollout\.steps\]\]"
    with pytest.raises(ValueError, match=refused) as err:
        parse_plan({"phased_rollout": old})
    message = str(err.value)
    # What it shows is a plan that parses.
    assert "\n" not in message
    shown = "[phased_rollout]\n" + message.split(" write", 1)[1].split(": ", 1)[1]
    steps = parse_plan(tomllib.loads(shown)).phased_rollout.steps
    if len(old) == 3:
        assert [(s.share_pct, s.min_canary_requests) for s in steps] == [(5.0, 10), (100.0, 0)]
    else:
        assert steps == Plan().phased_rollout.steps


def test_steps_tables_parse_in_order():
    plan = parse_plan({"phased_rollout": {"steps": [_step(2.0), _step(10.0), _step(100.0)]}})
    assert [s.share_pct for s in plan.phased_rollout.steps] == [2.0, 10.0, 100.0]
    assert [s.basis_points for s in plan.phased_rollout.rollout_plan().steps] == [200, 1000, 10_000]


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        (None, {"seed": 2**32}, "seed: expected an integer in [0, 4294967295], got 4294967296"),
        ("finetune", {"epochs": 0}, "epochs: expected an integer in [1, 1000], got 0"),
        ("release", {"soak_callers": 3}, "soak_callers: expected an integer in [4, 64], got 3"),
        ("phased_rollout", {"alpha": 0.7}, "alpha: expected a number in (0, 0.5], got 0.7"),
        ("phased_rollout", {"on_inconclusive": "wait"}, "on_inconclusive: expected one of"),
        ("monitoring", {"recall_window": 0}, "recall_window: expected an integer in [1, "),
    ],
)
def test_replace_cannot_bypass_the_bounds(section, change, message):
    plan = Plan()
    target = plan if section is None else getattr(plan, section)
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(target, **change)


def test_one_default_per_knob():
    from release_spec.strategy.monitoring import MonitoringThresholds
    from release_spec.strategy.rollout import RolloutPlan

    rp = Plan().phased_rollout
    judged = RolloutPlan(steps=rp.steps)
    for knob in ("alpha", "margin", "latency_slo_ms", "slow_margin", "requests_per_minute"):
        assert getattr(rp, knob) == getattr(judged, knob), knob
    assert Plan().monitoring.thresholds() == MonitoringThresholds()
