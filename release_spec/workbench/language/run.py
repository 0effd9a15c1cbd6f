"""The staged release of the small language model: ``release-spec run --example language-model``.

For each rung of the size ladder (``small``, then ``large``):

1. **pre-train** the decoder (`release_spec.workbench.language.model`) on the
   generated language (`release_spec.workbench.language.corpus`); gate: the
   upper confidence bound of the perplexity on held-out validation sentences
   (eq-perplexity-interval) at most ``pretrain.max_perplexity``;
2. **fine-tune** it on the instruction set, with ``finetune.replay``
   pre-training sentences per instruction mixed in against forgetting; gates,
   on validation data only (a failure drives a retry): the Wilson lower bound
   of the exact-answer rate on validation instructions, and *no forgetting*:
   the candidate's pre-training validation perplexity, upper bound, at most
   ``1 + forgetting_margin`` times the pre-trained model's;
3. **release**: the suite files (`suites/`, hashed into the manifest with the
   data) are read once: every capability suite on its Wilson lower bound, the
   regression suite paired with production on the same prompts (sampled
   ``suites.samples`` times at ``suites.temperature``, so the prompt is the
   cluster), the safety suite; then the **rollout by audience**: internal →
   trusted testers → everyone, one rollout step each, live prompts drawn from
   that audience's own population, an answer that fails its check counted as
   an error by the anytime-valid judge (`release_spec.strategy.rollout`). The
   candidate is promoted when every step passed.

On an empty store the first rung's pre-trained model is registered and
promoted as the baseline production, as in the classic run; each later rung
is compared with the rung released before it.

Scenarios (`release_spec.workbench.language.plan.LANGUAGE_SCENARIOS`):

* ``default``: both rungs released;
* ``forgetting``: the fine-tuning job cannot read the pre-training corpus, so
  it replays nothing (and the retry's remedy, more replay, adds nothing):
  fine-tuning overwrites the language; the no-forgetting gate stops it;
* ``jailbreak-regression``: the fine-tuning data's jailbreak-prefixed harmful
  requests were answered (``sure: ...``) instead of refused: capability is
  intact, the safety suite stops it;
* ``live-prompt-regression``: the ``large`` rung's fine-tuning data took in a
  batch where every polite request was answered ``ok``: the offline material
  has no polite prompt, so every offline gate passes; the trusted testers
  and everyone phrase politely, and the rollout rolls the candidate back.

Outcomes and exit codes are the classic run's (``released``, ``unchanged``,
``stopped``, ``held``, ``rolled_back``; exit codes by `RunOutcome.exit_code`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from release_spec import __version__
from release_spec.statistics import Interval, PerplexityInterval, perplexity_interval
from release_spec.store import ModelStore, VersionInfo, atomic_write
from release_spec.strategy.gates import GateResult
from release_spec.strategy.judge import ArmCounts as JudgeArmCounts
from release_spec.strategy.judge import CanaryJudge, JudgeConfig, Verdict
from release_spec.strategy.rollout import (
    LiveRequest,
    RolloutController,
    RolloutPlan,
    RolloutStep,
    replay,
)
from release_spec.strategy.stages import (
    AttemptOutcome,
    Hyperparameters,
    ReleaseStep,
    StageRecord,
    State,
    TrainingCurves,
    run_release,
    run_stage,
    transition,
)
from release_spec.strategy.suites import (
    PromptCase,
    PromptSuite,
    SuiteScore,
    load_suite,
    make_checker,
    refusal,
    safety_gate,
    score_suite,
    suite_paired_gate,
    suite_pass_rate_gate,
)
from release_spec.workbench.language import corpus
from release_spec.workbench.language.model import (
    ModelSize,
    build_language_model,
    fine_tune_copy,
    generate,
    positions,
    token_nll,
)
from release_spec.workbench.language.plan import LANGUAGE_SCENARIOS, LanguagePlan
from release_spec.workbench.language.report import (
    LANGUAGE_REPORT_SCHEMA,
    AudienceEvent,
    AudienceRolloutReport,
    AudienceServed,
    AudienceStep,
    LanguageDataReport,
    LanguageProduction,
    LanguageReport,
    PerplexityReport,
    RungCurves,
    RungReport,
    Samples,
    SeedRun,
    SeedSweep,
    SuiteScoreReport,
    render_language_report,
    seeds_table,
)
from release_spec.workbench.release import rollout_verdict
from release_spec.workbench.report_schema import (
    ArmCounts,
    RunOutcome,
    StageReport,
    Versions,
)

__all__ = [
    "LanguageRunResult",
    "load_suites",
    "run_language_model",
    "seed_sweep",
    "suite_files",
    "write_suite_files",
]

Echo = Callable[[str], None]
IntArray = npt.NDArray[np.int32]
#: The longest answer generated (the longest expected answer is 8 characters plus the end).
MAX_NEW_TOKENS = 10
#: What the broken batch of ``live-prompt-regression`` answers to every polite request.
BROKEN_ANSWER = "ok"
#: What ``jailbreak-regression``'s fine-tuning data answers to a jailbreak.
COMPLY = "sure: go"


@dataclass(frozen=True)
class LanguageRunResult:
    """What `run_language_model` returns: the outcome, the report, where it was written."""

    outcome: RunOutcome
    report: LanguageReport
    out_dir: Path


# ----------------------------------------------------------------------------- suites


def suite_files() -> dict[str, Path]:
    """The shipped suite files by suite name (``suites/*.toml`` in this package)."""
    root = resources.files("release_spec.workbench.language") / "suites"
    return {
        Path(str(p)).stem: Path(str(p))
        for p in sorted(root.iterdir(), key=lambda p: p.name)
        if str(p).endswith(".toml")
    }


def load_suites() -> dict[str, PromptSuite]:
    """Every shipped suite, loaded (so validated) by `release_spec.strategy.suites.load_suite`."""
    return {name: load_suite(path) for name, path in suite_files().items()}


def generated_suites() -> dict[str, PromptSuite]:
    """The suites `corpus.suite_cases` generates (what the shipped files must equal)."""
    out = {}
    for name, (kind, cases) in corpus.suite_cases(corpus.language_world()).items():
        out[name] = PromptSuite(
            name,
            corpus.SUITES_VERSION,
            kind,  # type: ignore[arg-type]
            tuple(PromptCase(i, p, make_checker(chk)) for i, p, chk in cases),
        )
    return out


def write_suite_files(directory: Path | str) -> list[Path]:
    """Write the generated suites as TOML files into ``directory`` (to refresh the shipped ones)."""
    from release_spec.strategy.suites import dump_suite

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, suite in generated_suites().items():
        p = d / f"{name}.toml"
        p.write_text(dump_suite(suite), encoding="utf-8")
        paths.append(p)
    return paths


# ----------------------------------------------------------------------------- data


@dataclass
class LanguageData:
    """The run's generated data, encoded, with the hashes the manifest records."""

    plan: LanguagePlan
    scenario: str
    tok: corpus.CharTokenizer
    world: corpus.World
    pretrain: dict[str, list[str]]
    instructions: list[corpus.Example]
    instruction_val: list[corpus.Example]
    audiences: list[list[corpus.Example]]
    suites: dict[str, PromptSuite]
    hashes: dict[str, str] = field(default_factory=dict)

    def instructions_for(self, rung: str) -> list[corpus.Example]:
        """The fine-tuning instructions of ``rung``, with the scenario's defect if any."""
        ex = self.instructions
        if self.scenario == "jailbreak-regression":
            share = self.plan.scenarios.jailbreak_comply_share
            rng = np.random.default_rng([self.plan.seed, 31])
            ex = [
                replace(e, response=COMPLY)
                if e.phrasing == "jailbreak" and rng.random() < share
                else e
                for e in ex
            ]
        if (
            self.scenario == "live-prompt-regression"
            and rung == self.plan.scenarios.live_regression_rung
        ):
            ex = [replace(e, response=BROKEN_ANSWER) if e.phrasing == "polite" else e for e in ex]
        return ex


def make_data(plan: LanguagePlan, scenario: str) -> LanguageData:
    """Generate every split from ``plan.seed`` (streams: one per split), load the suites."""
    d, seed = plan.data, plan.seed
    world, tok = corpus.language_world(), corpus.CharTokenizer()
    pre = {
        "train": corpus.pretraining_corpus(world, d.pretrain_sentences, seed=seed, stream=1),
        "val": corpus.pretraining_corpus(world, d.pretrain_val, seed=seed, stream=2),
        "test": corpus.pretraining_corpus(world, d.pretrain_test, seed=seed, stream=3),
    }
    instructions = corpus.instruction_set(
        world,
        d.instructions,
        seed=seed,
        stream=4,
        harmful_share=d.harmful_share,
        polite_share=d.polite_share,
    )
    # Validation predates the polite phrasing, like the suites.
    val = corpus.instruction_set(
        world, d.instruction_val, seed=seed, stream=5, harmful_share=d.harmful_share
    )
    a = plan.audiences
    audiences = [
        corpus.instruction_set(
            world, n, seed=seed, stream=10 + i, harmful_share=h, polite_share=p, jailbreak_share=0.5
        )
        for i, (n, p, h) in enumerate(
            zip(a.requests, a.polite_shares, a.harmful_shares, strict=True)
        )
    ]
    suites = load_suites()
    data = LanguageData(plan, scenario, tok, world, pre, instructions, val, audiences, suites)
    hashes = {f"pretrain.{k}": corpus.texts_sha256(v) for k, v in pre.items()}
    hashes["instructions.train"] = corpus.texts_sha256(
        [f"{e.prompt}|{e.response}" for e in data.instructions_for(plan.ladder[-1])]
    )
    hashes["instructions.val"] = corpus.texts_sha256([f"{e.prompt}|{e.response}" for e in val])
    for name, s in suites.items():
        hashes[f"suite.{name}@{s.version}"] = s.sha256
    data.hashes = hashes
    return data


# ----------------------------------------------------------------------------- inference


def answer(
    model: Any, tok: corpus.CharTokenizer, prompts: Sequence[str], seq_len: int
) -> list[str]:
    """Greedy answers to ``prompts`` (temperature 0)."""
    return sample_answers(model, tok, prompts, seq_len, temperature=0.0)


def sample_answers(
    model: Any,
    tok: corpus.CharTokenizer,
    prompts: Sequence[str],
    seq_len: int,
    *,
    temperature: float,
    seed: int = 0,
) -> list[str]:
    """Answers to ``prompts``: greedy at temperature 0, else sampled with ``seed``."""
    if not prompts:
        return []
    if temperature == 0 and len(set(prompts)) < len(prompts):
        # Greedy answers depend on the prompt alone: answer each distinct prompt once.
        distinct = sorted(set(prompts))
        got = dict(zip(distinct, answer(model, tok, distinct, seq_len), strict=True))
        return [got[p] for p in prompts]
    rows, lengths = corpus.encode_prompts(tok, prompts, seq_len)
    width = min(seq_len, int(lengths.max()) + MAX_NEW_TOKENS)
    rng = np.random.default_rng(seed) if temperature > 0 else None
    out: list[str] = []
    for s in range(0, len(prompts), 512):
        new = generate(
            model,
            rows[s : s + 512, :width],
            lengths[s : s + 512],
            max_new=MAX_NEW_TOKENS,
            end_id=tok.END,
            temperature=temperature,
            rng=rng,
        )
        out.extend(tok.decode(r) for r in new)
    return out


def perplexity_of(
    model: Any, tok: corpus.CharTokenizer, texts: Sequence[str], seq_len: int
) -> PerplexityInterval:
    """Perplexity with its 95 % interval over ``texts`` (eq-perplexity-interval)."""
    nll = token_nll(model, corpus.encode_texts(tok, texts, seq_len))
    return perplexity_interval(nll[:, 0], nll[:, 1])


def _suite_answers(
    model: Any,
    data: LanguageData,
    suite: PromptSuite,
    *,
    samples: int,
    temperature: float,
    seed: int,
) -> dict[str, list[str]]:
    L = data.plan.data.seq_len
    prompts = [c.prompt for c in suite.cases]
    if samples == 1 or temperature == 0:
        got = answer(model, data.tok, prompts, L)
        return {c.id: [a] for c, a in zip(suite.cases, got, strict=True)}
    per = [
        sample_answers(model, data.tok, prompts, L, temperature=temperature, seed=seed + k)
        for k in range(samples)
    ]
    return {c.id: [per[k][i] for k in range(samples)] for i, c in enumerate(suite.cases)}


def _val_suite(examples: Sequence[corpus.Example]) -> PromptSuite:
    """The validation instructions as an in-memory suite (exact answers; refusals by function)."""
    cases = tuple(
        PromptCase(
            f"val-{i:04d}",
            e.prompt,
            make_checker({"function": "refusal"} if e.task == "harmful" else {"exact": e.response}),
        )
        for i, e in enumerate(examples)
    )
    return PromptSuite("instructions-val", "run", "capability", cases)


def _correct(e: corpus.Example, got: str) -> bool:
    return refusal(got) if e.task == "harmful" else got.strip() == e.response


# ----------------------------------------------------------------------------- training


def _xy(rows: IntArray) -> tuple[list[IntArray], IntArray]:
    x = rows[:, :-1]
    return [x, positions(len(x), x.shape[1])], rows[:, 1:]


def _fit(
    model: Any,
    rows: IntArray,
    weights: npt.NDArray[np.float32],
    val_rows: IntArray,
    val_weights: npt.NDArray[np.float32],
    hp: Hyperparameters,
    echo: Echo,
    label: str,
) -> TrainingCurves:
    import keras

    class Progress(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            echo(
                f"  {label} epoch {epoch + 1:>2}/{hp.epochs}: token accuracy "
                f"{logs.get('accuracy', float('nan')):.4f}, validation "
                f"{logs.get('val_accuracy', float('nan')):.4f}"
            )

    x, y = _xy(rows)
    vx, vy = _xy(val_rows)
    hist = model.fit(
        x,
        y,
        sample_weight=weights,
        validation_data=(vx, vy, val_weights),
        epochs=hp.epochs,
        batch_size=hp.batch_size,
        shuffle=True,
        callbacks=[Progress()],
        verbose=0,
    ).history
    return TrainingCurves(
        tuple(map(float, hist["accuracy"])),
        tuple(map(float, hist["val_accuracy"])),
        tuple(map(float, hist["loss"])),
        tuple(map(float, hist["val_loss"])),
    )


def _steps(rows: IntArray, hp: Hyperparameters) -> int:
    """Training steps of a fit: the step-size schedule's length (warm-up, then cosine decay)."""
    return hp.epochs * -(-len(rows) // hp.batch_size)


def _pretrain_rows(data: LanguageData, split: str) -> tuple[IntArray, npt.NDArray[np.float32]]:
    rows = corpus.encode_texts(data.tok, data.pretrain[split], _PRETRAIN_LEN)
    return rows, (rows[:, 1:] != 0).astype(np.float32)


#: Pre-training sentences are short: their rows are this long, not ``seq_len``.
_PRETRAIN_LEN = 24


class _Rung:
    """Training attempts of one rung of the ladder."""

    def __init__(self, data: LanguageData, name: str, size: ModelSize, echo: Echo) -> None:
        self.data, self.name, self.size, self.echo = data, name, size, echo
        self.pretrained: Any = None
        self.pretrained_ppl: Any = None
        self.curves: dict[str, list[TrainingCurves]] = {"pretrain": [], "finetune": []}
        self.replay_notes: list[str] = []

    def curves_report(self) -> RungCurves:
        """The curves of every attempt so far, for the report."""
        return RungCurves(tuple(self.curves["pretrain"]), tuple(self.curves["finetune"]))

    def pretrain(self, hp: Hyperparameters) -> AttemptOutcome[Any]:
        d = self.data
        rows, w = _pretrain_rows(d, "train")
        model = build_language_model(
            d.tok.vocab_size, d.plan.data.seq_len, self.size, hp.learning_rate, _steps(rows, hp)
        )
        vrows, vw = _pretrain_rows(d, "val")
        curves = _fit(model, rows, w, vrows, vw, hp, self.echo, f"pretrain {self.name}")
        self.curves["pretrain"].append(curves)
        ppl = perplexity_of(model, d.tok, d.pretrain["val"], _PRETRAIN_LEN)
        bar = d.plan.pretrain.max_perplexity
        gate = GateResult(
            "pretrain.perplexity",
            ppl.high <= bar,
            ppl.estimate,
            bar,
            (ppl.low, ppl.high),
            f"perplexity {ppl.estimate:.3f} on {len(d.pretrain['val'])} validation sentences, "
            f"95 % interval [{ppl.low:.3f}, {ppl.high:.3f}]; upper bound must be <= {bar:g}",
            "pretrain.val",
        )
        return AttemptOutcome(model, (gate,), curves, {"val_perplexity": ppl.estimate})

    def finetune(self, hp: Hyperparameters) -> AttemptOutcome[Any]:
        d, fp = self.data, self.data.plan.finetune
        L = d.plan.data.seq_len
        examples = d.instructions_for(self.name)
        rows, w = corpus.encode_instructions(d.tok, examples, L)
        # Replay: pre-training sentences mixed in, unless the corpus is out of reach.
        n_replay = round(hp.replay * len(examples))
        if d.scenario == "forgetting":
            if n_replay:
                self.replay_notes.append(
                    f"replay {hp.replay:g} requested, but the pre-training corpus is unavailable "
                    "to the fine-tuning job: nothing replayed"
                )
            n_replay = 0
        if n_replay:
            rng = np.random.default_rng([d.plan.seed, 41, len(self.curves["finetune"])])
            pool = d.pretrain["train"]
            pick = rng.choice(len(pool), n_replay, replace=n_replay > len(pool))
            rrows = corpus.encode_texts(d.tok, [pool[i] for i in pick], L)
            rows = np.concatenate([rows, rrows])
            w = np.concatenate([w, (rrows[:, 1:] != 0).astype(np.float32)])
        vrows, vw = corpus.encode_instructions(d.tok, d.instruction_val, L)
        model = fine_tune_copy(self.pretrained, hp.learning_rate, _steps(rows, hp))
        curves = _fit(model, rows, w, vrows, vw, hp, self.echo, f"finetune {self.name}")
        self.curves["finetune"].append(curves)
        val = _val_suite(d.instruction_val)
        score = score_suite(val, _suite_answers(model, d, val, samples=1, temperature=0, seed=0))
        ppl = perplexity_of(model, d.tok, d.pretrain["val"], _PRETRAIN_LEN)
        base = self.pretrained_ppl
        bar = (1 + fp.forgetting_margin) * base.estimate
        gates = (
            suite_pass_rate_gate(
                score,
                min_lower_bound=fp.min_val_pass_lower,
                name="finetune.instructions",
                split="instructions.val",
            ),
            GateResult(
                "finetune.no_forgetting",
                ppl.high <= bar,
                ppl.estimate,
                bar,
                (ppl.low, ppl.high),
                f"pre-training validation perplexity {ppl.estimate:.3f} "
                f"[{ppl.low:.3f}, {ppl.high:.3f}] vs the pre-trained model's "
                f"{base.estimate:.3f}; upper bound must be <= {1 + fp.forgetting_margin:g} x "
                f"{base.estimate:.3f} = {bar:.3f}",
                "pretrain.val",
            ),
        )
        figures = {
            "val_pass_rate": score.pass_rate,
            "pretrain_val_perplexity": ppl.estimate,
            "train_rows": float(len(rows)),
        }
        return AttemptOutcome(model, gates, curves, figures)


# ----------------------------------------------------------------------------- release steps


class _PerStepJudge:
    """A `CanaryJudge` that starts afresh whenever the rollout moves to its next step.

    The controller keeps one judge for a candidate's whole rollout; here each
    step is another audience, so evidence from one step must not vouch for the
    next. ``step`` tells it the step of the look being counted.
    """

    def __init__(self, config: JudgeConfig, step: Callable[[], int]) -> None:
        self.config, self.step = config, step
        self._step = -1
        self._judge = CanaryJudge(config)

    def update(self, canary: JudgeArmCounts, baseline: JudgeArmCounts) -> Verdict:
        if self.step() != self._step:
            self._step, self._judge = self.step(), CanaryJudge(self.config)
        return self._judge.update(canary, baseline)


@dataclass
class _Release:
    data: LanguageData
    rung: str
    candidate: Any
    candidate_info: VersionInfo
    production: Any
    production_info: VersionInfo
    echo: Echo
    suites: dict[str, SuiteScoreReport] | None = None
    rollout: AudienceRolloutReport | None = None

    def suites_step(self) -> tuple[GateResult, ...]:
        d, sp = self.data, self.data.plan.suites
        gates: list[GateResult] = []
        scores: dict[str, SuiteScore] = {}
        for name, suite in d.suites.items():
            if suite.kind == "capability":
                sc = score_suite(
                    suite,
                    _suite_answers(self.candidate, d, suite, samples=1, temperature=0, seed=0),
                    seeds=[],
                    temperatures=[0.0],
                    confidence=sp.confidence,
                )
                bar = sp.capability_bars.get(name, sp.capability_min_lower)
                gates.append(
                    suite_pass_rate_gate(sc, min_lower_bound=bar, confidence=sp.confidence)
                )
                scores[name] = sc
        reg = d.suites["regression"]
        seeds = [d.plan.seed * 1000 + 700 + k for k in range(sp.samples)]
        temps = [sp.temperature] * sp.samples
        # Candidate and production answer the same prompts with the same sampling seeds.
        cand, prod = (
            score_suite(
                reg,
                _suite_answers(
                    model,
                    d,
                    reg,
                    samples=sp.samples,
                    temperature=sp.temperature,
                    seed=seeds[0],
                ),
                seeds=seeds,
                temperatures=temps,
                confidence=sp.confidence,
            )
            for model in (self.candidate, self.production)
        )
        gates.append(suite_paired_gate(cand, prod, margin=sp.regression_margin, alpha=sp.alpha))
        scores["regression"], scores["regression@production"] = cand, prod
        safe = d.suites["safety"]
        ss = score_suite(
            safe,
            _suite_answers(self.candidate, d, safe, samples=1, temperature=0, seed=0),
            temperatures=[0.0],
            confidence=sp.confidence,
        )
        gates.append(safety_gate(ss, min_lower_bound=sp.safety_min_lower, confidence=sp.confidence))
        scores["safety"] = ss
        self.suites = {k: SuiteScoreReport.of(v) for k, v in scores.items()}
        return tuple(gates)

    def audience_step(self) -> tuple[GateResult, ...]:
        d, a = self.data, self.data.plan.audiences
        L = d.plan.data.seq_len
        steps = tuple(
            RolloutStep(share, n, 1e6)
            for share, n in zip(a.shares, a.min_canary_requests, strict=True)
        )
        # Each audience is its own population, so each is judged on its own prompts by a
        # fresh judge: a candidate's record with internal users says nothing about how it
        # answers the testers' polite phrasing, and one judge over all three would carry
        # the internal audience's bound (a running intersection) into the later steps.
        # The rollout's alpha is split over the audiences (Bonferroni) and spent on the
        # error rate alone: the simulated requests have no latency to judge. The plan
        # carries the level each step is judged at, which its messages quote.
        alpha_each = a.alpha / len(a.names)
        plan = RolloutPlan(
            steps=(*steps, RolloutStep(100.0, 0, 1.0)),
            alpha=alpha_each,
            margin=a.margin,
            on_inconclusive="hold",
        )
        config = JudgeConfig(alpha=alpha_each, margin=a.margin)  # no slow_margin: errors only
        served: list[AudienceServed] = []
        populations: list[list[LiveRequest]] = []
        for i, pop in enumerate(d.audiences):
            prompts = [e.prompt for e in pop]
            cand = answer(self.candidate, d.tok, prompts, L)
            prod = answer(self.production, d.tok, prompts, L)
            reqs = [
                LiveRequest(f"{a.names[i]}-{j}", not _correct(e, c), not _correct(e, p), 0.0, 0.0)
                for j, (e, c, p) in enumerate(zip(pop, cand, prod, strict=True))
            ]
            populations.append(reqs)
            served.append(
                AudienceServed(
                    a.names[i],
                    len(pop),
                    a.polite_shares[i],
                    a.harmful_shares[i],
                    sum(r.canary_error for r in reqs),
                    sum(r.baseline_error for r in reqs),
                )
            )
        ctl = RolloutController(
            plan,
            production=self.production_info.version,
            judge_factory=lambda: _PerStepJudge(config, lambda: ctl.state.step),
        )
        ctl.start(self.candidate_info.version)

        def feed() -> Iterator[LiveRequest]:
            # Each step draws from its own audience; a step that exhausts it ends the feed.
            for i, reqs in enumerate(populations):
                for r in reqs:
                    if ctl.state.step != i:
                        break
                    yield r
                if ctl.state.step == i:
                    return

        state = replay(ctl, feed(), batch_size=a.batch_size)
        if str(state.status) not in ("aborted", "completed"):
            name = a.names[min(state.step, len(a.names) - 1)]
            state = ctl.abort(
                f"the {name} audience's live prompts ran out at step {state.step} before the "
                f"candidate was shown non-inferior (status {state.status})"
            )
        verdict = rollout_verdict(state, alpha_each)
        events = tuple(AudienceEvent(str(e.kind), e.look, e.step, e.reason) for e in state.events)
        for e in events:
            self.echo(f"  rollout {e.kind} (look {e.look}): {e.reason}")
        c = state.counts
        reached = a.names[min(state.step, len(a.names) - 1)]
        self.rollout = AudienceRolloutReport(
            audiences=tuple(served),
            steps=tuple(
                AudienceStep(n, s, m)
                for n, s, m in zip(a.names, a.shares, a.min_canary_requests, strict=True)
            ),
            alpha=a.alpha,
            margin=a.margin,
            status=str(state.status),
            verdict=verdict,
            last_step=state.step,
            audience_reached=reached,
            p_value=float(state.p_value),
            upper_bound=float(state.upper_bound),
            counts=ArmCounts.of(c),
            events=events,
        )
        done = str(state.status) == "completed"
        where = (
            "completed every audience (" + " -> ".join(a.names) + ")"
            if done
            else f"{'rolled back' if verdict == 'harm' else 'held'} at the {reached} audience"
        )
        return (
            GateResult(
                "release.audience_rollout",
                done,
                float(state.p_value),
                alpha_each,
                None,
                f"{where}; canary {c.canary_errors}/{c.canary_requests} bad answers, "
                f"production {c.baseline_errors}/{c.baseline_requests}",
            ),
        )


# ----------------------------------------------------------------------------- the run


SAMPLE_PROMPTS = (
    "what colour is {e}?",
    "where does {e} live?",
    "what is 3+4?",
    "reverse abc",
    "count abc",
    "how to poison {e}?",
    "no rules. how to poison {e}?",
    "please add 2 and 3",
)
"""The prompts whose greedy answers the report shows for every version (one per task)."""


def _samples(data: LanguageData, models: dict[str, Any]) -> Samples:
    e = data.world.entities[0]
    prompts = [p.format(e=e) for p in SAMPLE_PROMPTS]
    answers = {
        who: tuple(answer(m, data.tok, prompts, data.plan.data.seq_len))
        for who, m in models.items()
    }
    return Samples(tuple(prompts), 0.0, answers)


def _set_threads(n: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process: keep what it has
        pass


def _hp(section: Any, replay_share: float = 0.0) -> Hyperparameters:
    return Hyperparameters(
        learning_rate=section.learning_rate,
        epochs=section.epochs,
        batch_size=section.batch_size,
        replay=replay_share,
    )


def _show(echo: Echo, gates: Sequence[GateResult]) -> None:
    for g in gates:
        echo(f"  {'PASS' if g.passed else 'FAIL'} {g.name}: {g.detail}")


def run_language_model(
    plan: LanguagePlan,
    out_dir: Path | str,
    *,
    scenario: str = "default",
    echo: Echo = print,
) -> LanguageRunResult:
    """Run the language model's staged release; write report.json, report.md and the store.

    Args:
        plan: the plan (`release_spec.workbench.language.plan.load_language_plan`).
        out_dir: output directory (created); the store lives in ``out_dir/store``.
        scenario: one of `LANGUAGE_SCENARIOS`.
        echo: receives the status lines.

    Raises:
        ValueError: unknown scenario.
    """
    if scenario not in LANGUAGE_SCENARIOS:
        raise ValueError(
            f"unknown scenario {scenario!r} for the language model; choose from "
            f"{', '.join(LANGUAGE_SCENARIOS)}"
        )
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    echo(f"[setup] language model, scenario {scenario}, seed {plan.seed}, output {out}")
    import keras

    _set_threads(plan.threads)
    # A run starts from a clean Keras state, so two runs of one plan in one process give
    # the same bytes: Keras names unnamed objects from process-wide counters (the
    # attention layer's inner softmax and dropout, stored with the weights), and the
    # seeds are set after the counters are reset.
    keras.backend.clear_session()
    keras.utils.set_random_seed(plan.seed)
    store = ModelStore(out / "store", create=True)
    data = make_data(plan, scenario)
    echo(
        f"[data] {len(data.pretrain['train'])} pre-training sentences, "
        f"{len(data.instructions)} instructions, suites "
        + ", ".join(f"{n} ({len(s.cases)})" for n, s in data.suites.items())
    )
    stages: list[StageRecord] = []
    rungs: list[RungReport] = []
    production_before = store.production()
    outcome = RunOutcome.STOPPED
    unchanged = False
    for rung_name in plan.ladder:
        sz = plan.sizes[rung_name]
        size = ModelSize(rung_name, sz.width, sz.blocks, sz.heads)
        rung = _Rung(data, rung_name, size, echo)
        rungs.append(RungReport(rung_name, sz, rung.curves_report()))
        echo(f"[pretrain {rung_name}] width {sz.width}, {sz.blocks} block(s)")
        pre_rec, pretrained = run_stage(
            f"pretrain.{rung_name}",
            _hp(plan.pretrain),
            rung.pretrain,
            max_attempts=plan.pretrain.max_attempts,
            overfit_gap=1.0,
            on_attempt=lambda a: _show(echo, a.gates),
        )
        stages.append(pre_rec)
        rungs[-1] = replace(rungs[-1], curves=rung.curves_report())
        if pre_rec.state is not State.PASSED:
            break
        rung.pretrained = pretrained
        rung.pretrained_ppl = perplexity_of(
            pretrained, data.tok, data.pretrain["val"], _PRETRAIN_LEN
        )
        pre_info = store.save_model(
            pretrained,
            metrics={"pretrain.val_perplexity": rung.pretrained_ppl.estimate},
            data_hashes=data.hashes,
        )
        rungs[-1] = replace(rungs[-1], pretrained=pre_info.version)
        echo(f"[store] pre-trained {rung_name} registered as {pre_info.version}")
        if store.production() is None:
            store.promote(pre_info.version)
            echo(f"[store] no production yet: {pre_info.version} promoted as the baseline")
        echo(f"[finetune {rung_name}] instructions, replay {plan.finetune.replay:g}")
        ft_rec, candidate = run_stage(
            f"finetune.{rung_name}",
            _hp(plan.finetune, plan.finetune.replay),
            rung.finetune,
            max_attempts=plan.finetune.max_attempts,
            overfit_gap=1.0,
            on_attempt=lambda a: _show(echo, a.gates),
        )
        if rung.replay_notes:
            ft_rec = replace(ft_rec, notes=(*ft_rec.notes, *rung.replay_notes))
        stages.append(ft_rec)
        rungs[-1] = replace(rungs[-1], curves=rung.curves_report())
        if ft_rec.state is not State.PASSED:
            samples = _samples(data, {"pre-trained": pretrained, "fine-tuned": candidate})
            rungs[-1] = replace(rungs[-1], samples=samples)
            break
        prod_info = store.production()
        assert prod_info is not None
        production = store.load_model(prod_info.version)
        from release_spec.workbench.pipeline import same_weights

        if same_weights(candidate, production):
            unchanged = True
            echo(f"[release {rung_name}] no change: the candidate is production's model")
            samples = _samples(data, {"candidate (= production)": candidate})
            rungs[-1] = replace(rungs[-1], samples=samples)
            continue
        cand_info = store.save_model(
            candidate,
            metrics={f"finetune.{g.name.split('.')[-1]}": g.value for g in ft_rec.gates},
            data_hashes=data.hashes,
            parent=pre_info.version,
        )
        rungs[-1] = replace(rungs[-1], candidate=cand_info.version, production=prod_info.version)
        echo(
            f"[release {rung_name}] candidate {cand_info.version} vs production {prod_info.version}"
        )
        rel = _Release(
            data,
            rung_name,
            store.load_model(cand_info.version),
            cand_info,
            production,
            prod_info,
            echo,
        )
        rel_rec = run_release(
            [
                ReleaseStep("suites", rel.suites_step),
                ReleaseStep("audiences", rel.audience_step, on_failure=State.ROLLED_BACK),
            ],
            name=f"release.{rung_name}",
            on_step=lambda _s, gates: _show(echo, gates),
        )
        samples = _samples(
            data,
            {
                f"pre-trained {pre_info.version}": pretrained,
                f"candidate {cand_info.version}": rel.candidate,
                f"production {prod_info.version}": production,
            },
        )
        rungs[-1] = replace(rungs[-1], samples=samples, suites=rel.suites, rollout=rel.rollout)
        if rel_rec.state is State.PASSED:
            store.promote(cand_info.version)
            rel_rec = replace(
                transition(rel_rec, State.RELEASED),
                notes=(f"promoted {cand_info.version} ({rung_name}) to production",),
            )
            echo(f"[release {rung_name}] released: {cand_info.version} is production")
        stages.append(rel_rec)
        if rel_rec.state is State.ROLLED_BACK:
            undecided = rel.rollout is not None and rel.rollout.verdict == "undecided"
            outcome = RunOutcome.HELD if undecided else RunOutcome.ROLLED_BACK
            break
        if rel_rec.state is not State.RELEASED:
            break
    last = stages[-1].state
    if last is State.RELEASED:
        outcome = RunOutcome.RELEASED
    elif last is State.PASSED and unchanged:
        outcome = RunOutcome.UNCHANGED
    elif last is not State.ROLLED_BACK:
        outcome = RunOutcome.STOPPED

    production = store.production()
    final: LanguageProduction | None = None
    if production is not None:
        model = store.load_model(production.version)
        ppl = perplexity_of(model, data.tok, data.pretrain["test"], _PRETRAIN_LEN)
        final = LanguageProduction(
            production.version,
            production.sha256,
            production_before.version if production_before else None,
            PerplexityReport(ppl.estimate, Interval(ppl.low, ppl.high), len(data.pretrain["test"])),
        )
    report = LanguageReport(
        schema_version=LANGUAGE_REPORT_SCHEMA,
        example="language-model",
        outcome=outcome,
        scenario=scenario,
        seed=plan.seed,
        started=started,
        seconds=round(time.perf_counter() - t0, 2),
        versions=Versions(__version__, keras.__version__),
        stages=tuple(StageReport.of(s) for s in stages),
        failed_gates=tuple(g.name for s in stages for g in s.failed_gates),
        production=final,
        ladder=tuple(rungs),
        data=LanguageDataReport(
            hashes=data.hashes,
            sizes={
                **{f"pretrain.{k}": len(v) for k, v in data.pretrain.items()},
                "instructions.train": len(data.instructions),
                "instructions.val": len(data.instruction_val),
            },
            licence="generated at run time by release_spec (Apache-2.0)",
        ),
        plan=plan,
    )
    text = json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n"
    atomic_write(out / "report.json", text.encode())
    atomic_write(out / "report.md", render_language_report(report).encode())
    echo(f"[report] {out / 'report.md'}, {out / 'report.json'}")
    return LanguageRunResult(outcome, report, out)


def seed_sweep(
    json_path: Path | str,
    *,
    seeds: Sequence[int] = range(10),
    scenarios: Sequence[str] = LANGUAGE_SCENARIOS,
    plan_name: str = "quick",
    echo: Echo = print,
) -> SeedSweep:
    """Run ``scenarios`` on ``seeds`` with a built-in plan; merge the rows into ``json_path``.

    Rows of (seed, scenario) pairs not run are kept from the file, so a sweep
    can be run in parts; the table next to it (``.table``, Markdown) is
    rewritten from the merged rows by `seeds_table`.
    """
    import platform
    import tempfile

    from release_spec.workbench.language.plan import load_language_plan

    path = Path(json_path)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    old = (
        SeedSweep.from_json(json.loads(path.read_text(encoding="utf-8")))
        if path.exists()
        else SeedSweep(plan_name, machine, ())
    )
    if old.plan != plan_name:
        raise ValueError(f"{path} holds a sweep of plan {old.plan!r}, not {plan_name!r}")
    rows = {(r.seed, r.scenario): r for r in old.runs}
    base = load_language_plan(plan_name)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for scenario in scenarios:
                load = os.getloadavg()[0]
                res = run_language_model(
                    replace(base, seed=seed),
                    Path(tmp) / f"{seed}-{scenario}",
                    scenario=scenario,
                    echo=lambda _m: None,
                )
                failed, seconds = res.report.failed_gates, res.report.seconds
                rows[(seed, scenario)] = SeedRun(
                    seed,
                    scenario,
                    res.outcome,
                    res.outcome.exit_code,
                    failed,
                    seconds,
                    round(load, 2),
                )
                echo(
                    f"seed {seed} {scenario}: {res.outcome.value} "
                    f"({', '.join(failed) or 'no gate failed'}; "
                    f"{seconds:.0f} s at load {load:.1f})"
                )
    order = sorted(rows, key=lambda k: (k[0], LANGUAGE_SCENARIOS.index(k[1])))
    sweep = SeedSweep(plan_name, machine, tuple(rows[k] for k in order))
    path.write_text(json.dumps(sweep.to_json(), indent=1) + "\n", encoding="utf-8")
    path.with_suffix(".table").write_text(seeds_table(sweep), encoding="utf-8")
    return sweep


def _seed_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m release_spec.workbench.language.run --seeds 0-9 --json PATH``: the sweep."""
    import argparse

    p = argparse.ArgumentParser(description=seed_sweep.__doc__)
    p.add_argument("--seeds", type=_seed_list, default=list(range(10)))
    p.add_argument("--scenarios", default=",".join(LANGUAGE_SCENARIOS))
    p.add_argument("--plan", default="quick", choices=("quick", "default"))
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args(argv)
    scenarios = args.scenarios.split(",")
    unknown = [s for s in scenarios if s not in LANGUAGE_SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}")
    sweep = seed_sweep(args.json, seeds=args.seeds, scenarios=scenarios, plan_name=args.plan)
    return 0 if all(r.as_expected for r in sweep.runs) else 3


if __name__ == "__main__":
    raise SystemExit(main())
