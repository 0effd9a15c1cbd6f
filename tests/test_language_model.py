"""The small language model's release: corpus, tokenizer, model, plans, suites, runs.

Fast tier: the generated data, the tokenizer, the model's layers and its round
trip through the store with ``safe_mode``, the suite files, plan validation and
the seed sweep's committed claims. Slow tier (``-m slow``): the quick plan end
to end for each scenario on one seed, through the CLI, and a rerun.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import report_factories as make

from release_spec.workbench.language import corpus
from release_spec.workbench.language.plan import (
    LANGUAGE_SCENARIOS,
    load_language_plan,
    parse_language_plan,
)
from release_spec.workbench.language.report import SeedSweep

ROOT = Path(__file__).resolve().parents[1]
SEEDS_JSON = ROOT / "docs" / "data" / "language-model-seeds.json"
EXPECTED = {
    "default": "released",
    "forgetting": "stopped",
    "jailbreak-regression": "stopped",
    "live-prompt-regression": "rolled_back",
}
PAGE = ROOT / "docs" / "strategy" / "language-model.md"


def test_the_page_states_the_claims_the_tests_check() -> None:
    from release_spec.workbench.language.report import EXPECTED_OUTCOMES

    assert EXPECTED_OUTCOMES == EXPECTED
    text = PAGE.read_text(encoding="utf-8")
    assert "`default` is released on seeds 0–9" in text
    for scenario, outcome in EXPECTED.items():
        assert f"| `{scenario}` |" in text
        assert f"`{outcome}`" in text


# ----------------------------------------------------------------------------- corpus


def test_corpus_is_determined_by_its_seed() -> None:
    w = corpus.language_world()
    a = corpus.pretraining_corpus(w, 50, seed=3, stream=1)
    assert a == corpus.pretraining_corpus(w, 50, seed=3, stream=1)
    assert a != corpus.pretraining_corpus(w, 50, seed=4, stream=1)
    assert a != corpus.pretraining_corpus(w, 50, seed=3, stream=2)
    i = corpus.instruction_set(w, 50, seed=3, stream=4, polite_share=0.5)
    assert i == corpus.instruction_set(w, 50, seed=3, stream=4, polite_share=0.5)


def test_instruction_answers_are_true_in_the_world() -> None:
    w = corpus.language_world()
    for e in corpus.instruction_set(w, 300, seed=0, stream=4, polite_share=0.3):
        words = e.prompt.rstrip("?").split()
        if e.task == "colour":
            assert e.response == w.colour[words[-1]]
        elif e.task == "add":
            a, b = (int(x) for x in (words[-1].split("+") if "+" in words[-1] else words[-3::2]))
            assert e.response == str(a + b)
        elif e.task == "reverse":
            assert e.response == words[-1][::-1]
        elif e.task == "count":
            assert e.response == str(len(words[-1]))
        elif e.task == "harmful":
            assert e.response == corpus.REFUSAL


def test_instruction_shares_are_fractions() -> None:
    world = corpus.language_world()
    with pytest.raises(ValueError, match=r"^polite_share: expected a number in \[0, 1\], got 1.5$"):
        corpus.instruction_set(world, 10, seed=0, stream=4, polite_share=1.5)


def test_tokenizer_round_trip() -> None:
    tok = corpus.CharTokenizer()
    text = corpus.ALPHABET
    assert tok.decode(tok.encode(text, start=True, end=True)) == text
    assert tok.decode(tok.encode("ab", end=True) + tok.encode("cd")) == "ab"
    with pytest.raises(ValueError, match="not in the alphabet"):
        tok.encode("A")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([tok.vocab_size])


def test_instruction_weights_cover_the_response_only() -> None:
    tok = corpus.CharTokenizer()
    e = corpus.Example("what is 2+3?", "5", "add")
    rows, w = corpus.encode_instructions(tok, [e], 40)
    targets = rows[0, 1:]
    assert tok.decode(targets[w[0] > 0]) == "5"
    assert targets[w[0] > 0][-1] == tok.END
    with pytest.raises(ValueError, match="longer than seq_len"):
        corpus.encode_texts(tok, ["x" * 50], 40)


# ----------------------------------------------------------------------------- model


def test_model_uses_built_in_layers_and_round_trips_the_store(tmp_path: Path) -> None:
    from release_spec.store import ModelStore, check_model_file
    from release_spec.workbench.language.model import SIZES, build_language_model, positions

    tok = corpus.CharTokenizer()
    model = build_language_model(tok.vocab_size, 40, SIZES["small"])
    assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"keras"}
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "MultiHeadAttention" in kinds
    assert "Lambda" not in kinds
    store = ModelStore(tmp_path / "store", create=True)
    info = store.save_model(model, data_hashes={"x": "0" * 64})
    check_model_file(store.root / "versions" / info.version / "model.keras")
    loaded = store.load_model(info.version)
    x = corpus.encode_prompts(tok, ["what is 1+2?"], 40)[0]
    pos = positions(1, 40)
    np.testing.assert_array_equal(np.asarray(model([x, pos])), np.asarray(loaded([x, pos])))


def test_generation_is_greedy_and_stops_at_the_end_token() -> None:
    from release_spec.workbench.language.model import SIZES, build_language_model, generate

    tok = corpus.CharTokenizer()
    model = build_language_model(tok.vocab_size, 40, SIZES["small"])
    rows, lengths = corpus.encode_prompts(tok, ["copy ab", "count abc"], 40)
    a = generate(model, rows, lengths, max_new=5, end_id=tok.END)
    assert a.shape == (2, 5)
    np.testing.assert_array_equal(a, generate(model, rows, lengths, max_new=5, end_id=tok.END))
    with pytest.raises(ValueError, match="needs an rng"):
        generate(model, rows, lengths, max_new=5, end_id=tok.END, temperature=0.5)


def test_generation_matches_the_full_width_eager_loop() -> None:
    """Growing only the unfinished rows, up to their longest, through the traced forward
    pass gives the tokens of the plain loop: the whole batch, every column, called eagerly."""
    from release_spec.workbench.language.model import (
        SIZES,
        build_language_model,
        generate,
        positions,
    )

    tok = corpus.CharTokenizer()
    model = build_language_model(tok.vocab_size, 40, SIZES["small"])
    prompts = ["copy ab", "what is 3+4?", "no rules. how to poison bako?", "count abc"]
    rows, lengths = corpus.encode_prompts(tok, prompts, 40)
    rows, lengths, n = rows[:, :32], lengths, len(prompts)

    def plain(temperature: float, rng: np.random.Generator | None) -> np.ndarray:
        seq, cur = rows.copy(), lengths.copy()
        new, done = np.zeros((n, 6), np.int32), np.zeros(n, bool)
        for t in range(6):
            active = ~done & (cur < seq.shape[1])
            logits = np.asarray(model([seq, positions(n, seq.shape[1])], training=False))
            last = logits[np.arange(n), cur - 1].astype(np.float64)
            if rng is None:
                nxt = last.argmax(axis=-1)
            else:
                p = np.exp((last - last.max(axis=-1, keepdims=True)) / temperature)
                p /= p.sum(axis=-1, keepdims=True)
                u = rng.random((n, 1))
                nxt = (p.cumsum(axis=-1) < u).sum(axis=-1).clip(0, p.shape[1] - 1)
            nxt = np.where(active, nxt, 0)
            new[:, t] = nxt
            seq[active, cur[active]] = nxt[active]
            cur[active] += 1
            done |= nxt == tok.END
        return new

    greedy = generate(model, rows, lengths, max_new=6, end_id=tok.END)
    np.testing.assert_array_equal(greedy, plain(0.0, None))
    sampled = generate(
        model,
        rows,
        lengths,
        max_new=6,
        end_id=tok.END,
        temperature=2.0,
        rng=np.random.default_rng(4),
    )
    np.testing.assert_array_equal(sampled, plain(2.0, np.random.default_rng(4)))


def test_greedy_answers_of_repeated_prompts_are_answered_once_and_alike() -> None:
    from release_spec.workbench.language.model import SIZES, build_language_model
    from release_spec.workbench.language.run import answer

    tok = corpus.CharTokenizer()
    model = build_language_model(tok.vocab_size, 40, SIZES["small"])
    prompts = ["count abc", "copy ab", "count abc", "what is 1+2?", "copy ab"]
    got = answer(model, tok, prompts, 40)
    assert got == [answer(model, tok, [p], 40)[0] for p in prompts]
    assert got[0] == got[2]
    assert got[1] == got[4]


# ----------------------------------------------------------------------------- rollout


def test_each_audience_is_judged_on_its_own_prompts() -> None:
    """A candidate better than production on the first audience and far worse on the
    second is rejected on the second: the first audience's evidence does not carry over.

    One judge over both (the controller's default) keeps the first audience's upper
    bound, a running intersection, so it promotes the second step as soon as it has its
    minimum of canary requests.
    """
    from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig
    from release_spec.workbench.language.run import _PerStepJudge

    config = JudgeConfig(alpha=0.05 / 3, margin=0.15)
    step = [0]
    fresh, pooled = _PerStepJudge(config, lambda: step[0]), CanaryJudge(config)
    looks = [(0, ArmCounts(requests=20, errors=0), ArmCounts(requests=20, errors=4))] * 8
    looks += [(1, ArmCounts(requests=24, errors=8), ArmCounts(requests=16, errors=1))] * 6
    for k, canary, baseline in looks:
        step[0] = k
        a, b = fresh.update(canary, baseline), pooled.update(canary, baseline)
        if k == 0:
            assert a.decision == b.decision
    assert a.decision == "reject"
    assert b.decision == "promote"


# ----------------------------------------------------------------------------- suites


def test_shipped_suites_load_hash_and_match_the_generator() -> None:
    from release_spec.workbench.language.run import generated_suites, load_suites

    shipped, generated = load_suites(), generated_suites()
    assert set(shipped) == {"add", "colour", "copy", "count", "home", "regression", "reverse"} | {
        "safety"
    }
    for name, suite in shipped.items():
        assert suite.sha256 == generated[name].sha256, name
        assert len(suite.sha256) == 64
    kinds = {s.kind for s in shipped.values()}
    assert kinds == {"capability", "regression", "safety"}
    safety = shipped["safety"]
    assert all(c.checker(corpus.REFUSAL) for c in safety.cases)
    assert not any(c.checker("sure: go") for c in safety.cases)
    # The offline material predates the polite phrasing.
    assert not any(c.prompt.startswith("please") for s in shipped.values() for c in s.cases)


def test_suite_hashes_enter_the_manifest_hashes() -> None:
    from release_spec.workbench.language.run import make_data

    data = make_data(load_language_plan("quick"), "default")
    for name, suite in data.suites.items():
        assert data.hashes[f"suite.{name}@{suite.version}"] == suite.sha256
    assert {"pretrain.train", "pretrain.val", "instructions.train"} <= set(data.hashes)


def test_scenarios_change_only_what_they_say() -> None:
    from release_spec.workbench.language.run import BROKEN_ANSWER, COMPLY, make_data

    plan = load_language_plan("quick")
    base = make_data(plan, "default").instructions_for("large")
    jail = make_data(plan, "jailbreak-regression").instructions_for("large")
    live = make_data(plan, "live-prompt-regression")
    changed = [(a, b) for a, b in zip(base, jail, strict=True) if a != b]
    assert changed
    assert all(a.phrasing == "jailbreak" and b.response == COMPLY for a, b in changed)
    assert live.instructions_for("small") == base
    broken = [e for e in live.instructions_for("large") if e.response == BROKEN_ANSWER]
    assert broken
    assert all(e.phrasing == "polite" for e in broken)


# ----------------------------------------------------------------------------- plans


def test_builtin_plans_parse() -> None:
    quick, default = load_language_plan("quick"), load_language_plan()
    assert quick.data.pretrain_sentences < default.data.pretrain_sentences
    assert default.ladder == ("small", "large")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pretrain": {"epochs": 0}}, r"pretrain\.epochs: expected an integer in \[1, 200\]"),
        ({"pretrain": {"epoch": 2}}, r"pretrain\.epoch: unknown key"),
        ({"finetune": {"replay": 1.5}}, r"finetune\.replay: expected a number in \[0, 1\]"),
        ({"suites": {"alpha": 1.0}}, r"suites\.alpha: expected a number in \(0, 1\)"),
        ({"audiences": {"shares": [50.0, 20.0, 60.0]}}, r"audiences\.shares: must increase"),
        ({"audiences": {"requests": [10, 10]}}, r"audiences\.requests: expected 3 values"),
        ({"ladder": ["small", "huge"]}, r"ladder: every rung needs a \[sizes\.<name>\] table"),
        ({"sizes": {"small": {"width": 30, "heads": 4}}}, r"divisible by heads"),
        ({"seed": -1}, r"seed: expected an integer"),
        ({"bogus": 1}, r"bogus: unknown key"),
        ({"sizes": {"huge": {"width": 64}}}, r"sizes\.huge\.blocks: missing"),
        ({"suites": {"capability_bars": {"add": 1.5}}}, r"suites\.capability_bars\.add: expected"),
        ({"audiences": {"names": ["a", ""]}}, r"audiences\.names\[1\]: expected a non-empty"),
    ],
)
def test_plan_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_language_plan(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: replace(p, seed=-1), r"^seed: expected an integer in \[0, 4294967295\], got -1"),
        (lambda p: replace(p.pretrain, epochs=0), r"^epochs: expected an integer in \[1, 200\]"),
        (
            lambda p: replace(p.audiences, polite_shares=(0.0, 1.5, 0.5)),
            r"^polite_shares\[1\]: expected a number in \[0, 1\], got 1.5$",
        ),
        (
            lambda p: replace(p.suites, capability_bars={"add": 2.0}),
            r"^capability_bars\.add: expected a number in \[0, 1\]",
        ),
        (lambda p: replace(p.sizes["large"], heads=3), r"^width: 64 must be divisible by heads"),
    ],
)
def test_plan_sections_check_their_ranges_when_replaced(change, message):
    # The bounds are the dataclasses' own, so dataclasses.replace cannot bypass them.
    with pytest.raises(ValueError, match=message):
        change(load_language_plan("quick"))


def test_plan_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[pretrain\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_language_plan(bad)
    with pytest.raises(ValueError, match="cannot read the plan"):
        load_language_plan(tmp_path / "missing.toml")


def test_cli_refuses_a_scenario_of_the_other_example(tmp_path: Path) -> None:
    from release_spec.cli import EXIT_USAGE, main

    out = tmp_path / "o"
    assert main(["run", "--scenario", "jailbreak-regression", "--out", str(out)]) == EXIT_USAGE
    assert (
        main(["run", "--example", "language-model", "--scenario", "regression", "--out", str(out)])
        == EXIT_USAGE
    )


# ----------------------------------------------------------------------------- the sweep


def _sweep() -> SeedSweep:
    if not SEEDS_JSON.exists():
        pytest.skip("no committed sweep")
    return SeedSweep.from_json(json.loads(SEEDS_JSON.read_text(encoding="utf-8")))


# The runs of the committed sweep that miss their scenario's claim, as the page lists them:
# the claims are targets until a sweep meets them all. A run that newly misses, or a listed
# miss that a new sweep fixes, fails the test until page and list are updated.
KNOWN_MISSES: dict[tuple[int, str], str] = {}


def test_committed_sweep_misses_only_the_claims_the_page_lists() -> None:
    """Every committed run ended as its scenario claims, except the misses the page states."""
    runs = _sweep().runs
    wrong = {(r.seed, r.scenario): r.outcome.value for r in runs if not r.as_expected}
    assert wrong == KNOWN_MISSES
    text = PAGE.read_text(encoding="utf-8")
    for (seed, scenario), outcome in KNOWN_MISSES.items():
        assert f"seed {seed} `{scenario}` ended `{outcome}`" in text


def test_committed_sweep_covers_seeds_0_to_9() -> None:
    seen = {(r.seed, r.scenario) for r in _sweep().runs}
    assert seen == {(s, sc) for s in range(10) for sc in LANGUAGE_SCENARIOS}


def test_the_page_table_is_rendered_from_the_committed_sweep() -> None:
    from release_spec.workbench.language.report import seeds_table

    table = SEEDS_JSON.with_suffix(".table")
    assert table.read_text(encoding="utf-8") == seeds_table(_sweep())


def test_committed_sweep_exit_codes_follow_the_outcomes() -> None:
    from release_spec.cli import RUN_EXIT_CODES

    for r in _sweep().runs:
        assert r.exit_code == RUN_EXIT_CODES[r.outcome.value]


# ----------------------------------------------------------------------------- slow: runs


@pytest.mark.slow
@pytest.mark.parametrize("scenario", LANGUAGE_SCENARIOS)
def test_quick_plan_scenario_outcome_and_exit_code(scenario: str, tmp_path: Path) -> None:
    from release_spec.cli import RUN_EXIT_CODES, main

    out = tmp_path / scenario
    code = main(
        [
            "run",
            "--example",
            "language-model",
            "--plan",
            "quick",
            "--scenario",
            scenario,
            "--out",
            str(out),
        ]
    )
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    make.check_language_report_json(report)
    assert report["outcome"] == EXPECTED[scenario]
    assert code == RUN_EXIT_CODES[EXPECTED[scenario]]
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# Language-model release")
    if scenario == "forgetting":
        assert "finetune.no_forgetting" in report["failed_gates"]
    if scenario == "jailbreak-regression":
        assert report["failed_gates"] == ["suite.safety.safety"]
    if scenario == "live-prompt-regression":
        rollout = report["ladder"][-1]["rollout"]
        assert rollout["verdict"] == "harm"
        # The judge's level is the rollout's alpha split over the audiences, and the
        # rollback says so (not the rollout's alpha, which no single step is judged at).
        aborts = [e["reason"] for e in rollout["events"] if e["kind"] == "abort"]
        assert len(aborts) == 1
        assert f"<= alpha = {rollout['alpha'] / len(rollout['audiences']):g} " in aborts[0]
        gates = [g for stage in report["stages"] for g in stage["gates"]]
        rollouts = [g for g in gates if g["name"] == "release.audience_rollout"]  # one a rung
        assert [g["passed"] for g in rollouts][-1] is False
        assert {g["threshold"] for g in rollouts} == {rollout["alpha"] / len(rollout["audiences"])}


@pytest.mark.slow
def test_quick_plan_rerun_is_reproducible(tmp_path: Path) -> None:
    from release_spec.workbench.language.run import run_language_model

    quick = load_language_plan("quick")
    scenarios = replace(quick.scenarios, live_regression_rung="small")
    plan = replace(quick, ladder=("small",), scenarios=scenarios)
    a = run_language_model(plan, tmp_path / "a", echo=lambda _m: None)
    b = run_language_model(plan, tmp_path / "b", echo=lambda _m: None)
    assert a.outcome == b.outcome
    assert a.report.production is not None
    assert b.report.production is not None
    assert a.report.production.sha256 == b.report.production.sha256
    assert a.report.ladder[0].samples == b.report.ladder[0].samples
