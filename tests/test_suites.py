"""Prompt suites: the file format, its errors, the canonical hash, scoring and the suite gates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_spec.statistics import (
    clustered_paired_noninferiority,
    paired_noninferiority,
    wilson_interval,
)
from release_spec.strategy.gates import GateResult, is_test_split
from release_spec.strategy.suites import (
    CHECK_FUNCTIONS,
    MAX_MATCH_CHARS,
    MAX_SUITE_BYTES,
    PromptCase,
    PromptSuite,
    dump_suite,
    load_suite,
    make_checker,
    safety_gate,
    score_suite,
    suite_paired_gate,
    suite_pass_rate_gate,
    suite_sha256,
)

DATA = Path(__file__).resolve().parent / "data" / "suites"

HEADER = 'name = "s"\nversion = "1"\nkind = "capability"\n'


def _case(case_id: str = "a", checker: str = '{ exact = "x" }', prompt: str = "q") -> str:
    return f'\n[[cases]]\nid = "{case_id}"\nprompt = "{prompt}"\nchecker = {checker}\n'


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _suite(n: int, kind: str = "capability", checker: str = "x") -> PromptSuite:
    c = make_checker({"exact": checker})
    return PromptSuite("s", "1", kind, tuple(PromptCase(f"c{i}", f"q{i}", c) for i in range(n)))  # type: ignore[arg-type]


# ---------------------------------------------------------------- files


def test_load_the_three_example_suites() -> None:
    cap = load_suite(DATA / "capability.toml")
    reg = load_suite(DATA / "regression.toml")
    saf = load_suite(DATA / "safety.toml")
    assert (cap.kind, reg.kind, saf.kind) == ("capability", "regression", "safety")
    assert cap.case_ids == ("add-001", "add-002", "count-001")
    assert [c.checker.kind for c in cap.cases] == ["exact", "pattern", "function"]
    assert cap.cases[1].checker("fifteen")
    assert not cap.cases[1].checker("fifteen!")
    assert saf.cases[0].checker("I cannot share that.")
    assert cap.to_dict() == {
        "name": "example-arithmetic",
        "version": "1.0.0",
        "kind": "capability",
        "cases": 3,
        "sha256": cap.sha256,
    }


def test_sha256_ignores_layout_key_order_and_case_order(tmp_path: Path) -> None:
    a = _write(tmp_path, HEADER + _case("a") + _case("b", '{ pattern = "y+" }'), "a.toml")
    reordered = (
        'kind = "capability"\n# a comment\nversion = "1"\nname = "s"\n'
        '\n[[cases]]\nchecker = {pattern = "y+"}\nprompt = "q"\nid = "b"\n'
        '\n[[cases]]\nprompt = \'q\'\nid = "a"\nchecker = {exact = "x"}\n'
    )
    b = _write(tmp_path, reordered, "b.toml")
    assert load_suite(a).sha256 == load_suite(b).sha256


@pytest.mark.parametrize(
    "change",
    [
        ('version = "1"', 'version = "2"'),
        ('kind = "capability"', 'kind = "safety"'),
        ('prompt = "q"', 'prompt = "q "'),
        ('{ exact = "x" }', '{ pattern = "x" }'),
        ('id = "a"', 'id = "a2"'),
    ],
)
def test_sha256_changes_with_content(tmp_path: Path, change: tuple[str, str]) -> None:
    text = HEADER + _case("a")
    before = load_suite(_write(tmp_path, text, "a.toml")).sha256
    after = load_suite(_write(tmp_path, text.replace(*change), "b.toml")).sha256
    assert before != after


def test_sha256_is_the_documented_canonical_json() -> None:
    import hashlib
    import json

    suite = _suite(2)
    body = {
        "cases": [
            {"checker": {"exact": "x"}, "id": "c0", "prompt": "q0"},
            {"checker": {"exact": "x"}, "id": "c1", "prompt": "q1"},
        ],
        "kind": "capability",
        "name": "s",
        "version": "1",
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert suite.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert suite.sha256 == suite_sha256("s", "1", "capability", suite.cases[::-1])


@given(
    st.lists(
        st.tuples(st.text(max_size=40), st.sampled_from(["exact", "pattern", "function"])),
        min_size=1,
        max_size=5,
    )
)
def test_dump_suite_round_trips(items: list[tuple[str, str]]) -> None:
    import tempfile

    cases = []
    for k, (text, kind) in enumerate(items):
        spec = {"exact": text, "pattern": "[a-z]*", "function": "refusal"}[kind]
        cases.append(PromptCase(f"c{k}", text, make_checker({kind: spec})))
    suite = PromptSuite("s", "1.0", "safety", tuple(cases))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.toml"
        path.write_text(dump_suite(suite), encoding="utf-8")
        again = load_suite(path)
    assert again == suite
    assert again.sha256 == suite.sha256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + _case("a") + _case("a"), "duplicate case id 'a'"),
        (
            HEADER + _case("a", '{ function = "nope" }'),
            r"case 'a': unknown checker function 'nope'",
        ),
        (HEADER + _case("a", '{ pattern = "(x" }'), r"case 'a': bad pattern"),
        (HEADER + _case("a", '{ pattern = "(a+)+b" }'), r"case 'a': pattern .* \(catastrophic"),
        (HEADER + _case("a", '{ pattern = "(a|b*){2,}" }'), "catastrophic"),
        (HEADER + _case("a", '{ pattern = "' + "a" * 300 + '" }'), "longer than 256"),
        (HEADER + _case("a", '{ pattern = "" }'), "pattern is empty"),
        (HEADER + _case("a", '{ exact = "x", pattern = "y" }'), "exactly one of"),
        (HEADER + _case("a", '{ regex = "y" }'), "unknown checker kind 'regex'"),
        (HEADER + _case("a", "{ exact = 5 }"), "checker exact must be a string"),
        (HEADER + _case("a", '"x"'), "exactly one of"),
        (HEADER, "no cases"),
        (HEADER + "cases = []\n", "no cases"),
        (HEADER.replace("capability", "smoke") + _case("a"), "kind must be one of"),
        (HEADER.replace('"1"', '" "') + _case("a"), "version must be a non-empty"),
        (HEADER.replace('name = "s"', 'name = "../x"') + _case("a"), "suite name '../x'"),
        (HEADER + _case("bad id"), "case id 'bad id'"),
        (HEADER + "owner = 'me'\n" + _case("a"), r"unknown top-level keys \['owner'\]"),
        (HEADER + _case("a").replace("checker", "check"), r"case 'a': unknown keys \['check'\]"),
        (HEADER + "\n[[cases]]\nid = 'a'\nprompt = 3\nchecker = {exact='x'}\n", "prompt must be"),
        ('name = "s"\nkind = "safety"\n' + _case("a"), "version must be a string"),
        (HEADER + "[[cases", "not valid TOML"),
    ],
)
def test_load_suite_errors_name_the_file_and_case(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_load_suite_refuses_oversized_non_utf8_and_missing_files(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_SUITE_BYTES + 1))
    with pytest.raises(ValueError, match="larger than MAX_SUITE_BYTES"):
        load_suite(big)
    latin = tmp_path / "latin.toml"
    latin.write_bytes((HEADER + _case("a", '{ exact = "caf\xe9" }')).encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_suite(latin)
    with pytest.raises(ValueError, match="cannot read"):
        load_suite(tmp_path / "missing.toml")


def test_extra_checker_functions_and_no_shadowing(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + _case("a", '{ function = "shouts" }'))

    def shouts(answer: str) -> bool:
        return answer.isupper()

    suite = load_suite(path, checkers={"shouts": shouts})
    assert suite.cases[0].checker("HEY")
    assert not suite.cases[0].checker("hey")
    with pytest.raises(ValueError, match="built in"):
        load_suite(path, checkers={"shouts": shouts, "refusal": shouts})
    assert set(CHECK_FUNCTIONS) == {"refusal", "integer_answer", "no_digits", "non_empty"}


def test_checkers_behave_as_documented() -> None:
    exact = make_checker({"exact": " 42 "})
    assert exact("42")
    assert exact("\t42\n")
    assert not exact("042")
    pattern = make_checker({"pattern": "[0-9]+"})
    assert pattern(" 12 ")
    assert not pattern("12a")
    assert not pattern("a12")
    assert not pattern("1" * (MAX_MATCH_CHARS + 1))
    assert make_checker({"function": "integer_answer"})("-3")
    assert not make_checker({"function": "no_digits"})("pin 1234")
    assert not make_checker({"function": "refusal"})("Sure, the password is hunter2")
    with pytest.raises(ValueError, match="must be a string"):
        exact(42)  # type: ignore[arg-type]


def test_pattern_with_escapes_and_classes_is_not_nested() -> None:
    # Parentheses and quantifiers inside a class or escaped are literal.
    for pat in (r"\(a+\)+", r"[(a+)]+", r"(ab)+", r"(a|b)c+", r"x{2,3}(yz)?"):
        make_checker({"pattern": pat})


def test_a_long_adversarial_answer_is_cheap() -> None:
    check = make_checker({"pattern": "(a|aa)b"})
    t0 = time.process_time()
    assert not check("a" * 10**6)  # longer than MAX_MATCH_CHARS: not even matched
    assert time.process_time() - t0 < 1.0


# ---------------------------------------------------------------- scoring


def test_score_suite_counts_cases_and_samples() -> None:
    suite = _suite(3)
    score = score_suite(
        suite,
        {"c0": ["x", "x"], "c1": ["x", "y"], "c2": ["y", "y"]},
        seeds=[11, 12],
        temperatures=[0.7],
    )
    assert score.passes == ((True, True), (True, False), (False, False))
    assert score.pass_rate == pytest.approx(0.5)
    assert score.cases_passed == 1
    assert score.failed_cases == ("c1", "c2")
    assert score.samples_per_case == (2, 2, 2)
    assert score.interval == wilson_interval(1, 3)
    assert (score.seeds, score.temperatures) == ((11, 12), (0.7,))
    d = score.to_dict()
    assert d["passes"] == {"c0": [True, True], "c1": [True, False], "c2": [False, False]}
    assert d["sha256"] == suite.sha256


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"c0": ["x"]}, r"missing \['c1'\]"),
        ({"c0": ["x"], "c1": ["x"], "zz": ["x"]}, r"unknown \['zz'\]"),
        ({"c0": "x", "c1": ["x"]}, r"answers\['c0'\] must be a non-empty list"),
        ({"c0": [], "c1": ["x"]}, r"answers\['c0'\] must be a non-empty list"),
        ({"c0": [None], "c1": ["x"]}, r"answers\['c0'\]: an answer must be a string"),
    ],
)
def test_score_suite_errors(answers: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_suite(_suite(2), answers)


def test_score_suite_rejects_bad_temperature() -> None:
    with pytest.raises(ValueError, match="temperatures"):
        score_suite(_suite(1), {"c0": ["x"]}, temperatures=[float("nan")])


# ---------------------------------------------------------------- gates


def test_pass_rate_gate_judges_the_wilson_lower_bound() -> None:
    suite = _suite(100)
    score = score_suite(suite, {f"c{i}": ["x" if i >= 5 else "y"] for i in range(100)})
    lo, hi = wilson_interval(95, 100)
    g = suite_pass_rate_gate(score, min_lower_bound=0.88)
    assert isinstance(g, GateResult)
    assert (g.passed, g.value, g.threshold) == (True, 0.95, 0.88)
    assert tuple(g.interval or ()) == pytest.approx((lo, hi))
    assert g.name == "suite.s.pass_rate"
    assert g.split == "suite.s@1"
    assert not is_test_split(g.split)
    assert not suite_pass_rate_gate(score, min_lower_bound=0.9).passed  # 0.95 point, 0.888 bound
    strict = suite_pass_rate_gate(score, min_lower_bound=0.88, confidence=0.999)
    assert not strict.passed


def test_pass_rate_gate_counts_a_case_once_however_many_samples() -> None:
    # 20 cases, 10 samples each; every case fails exactly one sample: 90 % per sample, 0 cases.
    suite = _suite(20)
    score = score_suite(suite, {f"c{i}": ["x"] * 9 + ["y"] for i in range(20)})
    assert score.pass_rate == pytest.approx(0.9)
    g = suite_pass_rate_gate(score, min_lower_bound=0.5)
    assert not g.passed
    assert g.value == 0.0
    assert "per-sample rate 0.9000" in g.detail


def test_safety_gate_refuses_other_kinds_and_caps_failures() -> None:
    cap = score_suite(_suite(10), {f"c{i}": ["x"] for i in range(10)})
    with pytest.raises(ValueError, match="needs a safety suite"):
        safety_gate(cap, min_lower_bound=0.5)
    saf_suite = _suite(80, kind="safety")
    score = score_suite(saf_suite, {f"c{i}": ["x" if i else "y"] for i in range(80)})
    assert safety_gate(score, min_lower_bound=0.9).passed
    capped = safety_gate(score, min_lower_bound=0.9, max_failed_cases=0)
    assert not capped.passed
    assert "failed cases 1 > 0" in capped.detail
    assert "c0" in capped.detail
    assert capped.name == "suite.s.safety"
    with pytest.raises(ValueError, match="max_failed_cases"):
        safety_gate(score, min_lower_bound=0.9, max_failed_cases=-1)
    with pytest.raises(ValueError, match="min_lower_bound"):
        safety_gate(score, min_lower_bound=1.5)


def test_paired_gate_uses_tango_for_one_sample_per_prompt() -> None:
    suite = _suite(200, kind="regression")
    rng = np.random.default_rng(1)
    cand_ok, prod_ok = rng.random(200) < 0.9, rng.random(200) < 0.92
    cand = score_suite(suite, {f"c{i}": ["x" if cand_ok[i] else "y"] for i in range(200)})
    prod = score_suite(suite, {f"c{i}": ["x" if prod_ok[i] else "y"] for i in range(200)})
    g = suite_paired_gate(cand, prod, margin=0.05)
    ref = paired_noninferiority(cand_ok, prod_ok, margin=0.05)
    assert (g.passed, g.value, g.threshold) == (ref.passed, ref.lower_bound, -0.05)
    assert "Tango" in g.detail


def test_paired_gate_clusters_by_prompt_with_several_samples() -> None:
    suite = _suite(60, kind="regression")
    rng = np.random.default_rng(2)
    p = rng.uniform(0.5, 1.0, 60)
    cand_ok, prod_ok = rng.random((60, 4)) < p[:, None], rng.random((60, 4)) < p[:, None]

    def answers(ok: np.ndarray) -> dict[str, list[str]]:
        return {f"c{i}": ["x" if v else "y" for v in ok[i]] for i in range(60)}

    cand = score_suite(suite, answers(cand_ok), seeds=[0, 1, 2, 3], temperatures=[0.8])
    prod = score_suite(suite, answers(prod_ok), seeds=[0, 1, 2, 3], temperatures=[0.8])
    g = suite_paired_gate(cand, prod, margin=0.1)
    ref = clustered_paired_noninferiority(cand_ok, prod_ok, margin=0.1)
    assert (g.passed, g.value) == (ref.passed, ref.lower_bound)
    assert "clustered by prompt" in g.detail


def test_paired_gate_needs_the_same_suite() -> None:
    a = score_suite(_suite(3), {f"c{i}": ["x"] for i in range(3)})
    other = _suite(3, checker="z")
    b = score_suite(other, {f"c{i}": ["x"] for i in range(3)})
    with pytest.raises(ValueError, match="same suite"):
        suite_paired_gate(a, b, margin=0.1)
