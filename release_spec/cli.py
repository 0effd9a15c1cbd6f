"""The ``release-spec`` command line.

``release-spec run`` runs the reference release end to end;
``release-spec store list|verify|backup|restore|rollback`` manages a model store;
``release-spec simulate`` measures the canary judges on simulated rollouts.

Exit codes (also in ``release-spec --help``):

* 0: released (``run``), or unchanged (``run``: the fine-tuned candidate is
  production's model again, so there is nothing to release), or the command
  succeeded;
* 3: the command ran and its verdict is negative: ``run`` was stopped by a
  gate or rolled back on evidence of harm, ``store verify`` found problems,
  ``simulate`` found the false-rollback rate above its bound;
* 4: ``run`` was held: the rollout ended before the candidate was shown
  non-inferior (the live traffic ran out) and found no evidence of harm
  either; production is unchanged, and more traffic would decide. A CI job
  treats it as "not released" like 3, but the fix is more evidence, not a
  new model;
* 2: the command could not start or finish because of its inputs or
  environment: a usage error, a bad plan file, an unusable ``--out``, or a
  model store problem (locked by another writer, a damaged or missing file,
  a hash mismatch, a refused operation such as a rollback with no earlier
  version). One line on stderr names the problem: the file, or who holds the
  lock. No traceback;
* 1: an unexpected error (a bug), with its traceback.

Importing this module is cheap: TensorFlow is imported only when ``run``
trains. Each subcommand is declared by one ``_add_<name>`` function that
registers its handler, so a new subcommand is one more such function listed
in `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from release_spec.strategy._validate import OPEN_FRACTION, Range
from release_spec.strategy.plan import SCENARIOS
from release_spec.workbench.language.plan import LANGUAGE_SCENARIOS
from release_spec.workbench.report_schema import RunOutcome

#: ``run --scenario``'s choices: the classic example's and the language model's.
_RUN_SCENARIOS = tuple(dict.fromkeys((*SCENARIOS, *LANGUAGE_SCENARIOS)))

__all__ = [
    "EXIT_ERROR",
    "EXIT_HELD",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "RUN_EXIT_CODES",
    "build_parser",
    "main",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STOPPED, EXIT_HELD = 0, 1, 2, 3, 4
#: ``run``'s exit code per outcome (`RunOutcome.exit_code`): 0 nothing to fix, 3 the
#: candidate is bad, 4 undecided.
RUN_EXIT_CODES = {outcome.value: outcome.exit_code for outcome in RunOutcome}
PROG = "release-spec"

EXIT_CODES_HELP = """\
exit codes:
  0  released (run), or unchanged (run: the candidate is production's model
     again, nothing to release), or the command succeeded
  3  run stopped by a gate or rolled back on evidence of harm; store verify
     found problems; simulate: false-rollback rate above its bound
  4  run held: the rollout ended (live traffic ran out) before the candidate
     was shown non-inferior, without evidence of harm; production unchanged
  2  could not start or finish because of the inputs or environment: usage,
     plan, --out, or model store problem (locked, damaged file, hash mismatch,
     refused operation); one line on stderr names it
  1  unexpected error (with its traceback)
"""


class UsageError(Exception):
    """A problem with the command's inputs or environment: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _number(rng: Range) -> Callable[[str], Any]:
    """An argparse type: a number in ``rng`` (`release_spec.strategy._validate.Range`)."""

    def parse(text: str) -> Any:
        try:
            value = rng.kind(text)
        except ValueError:
            value = text
        if not rng.contains(value):
            raise argparse.ArgumentTypeError(f"expected {rng.describe()}, got {text}")
        return value

    return parse


def _add_option(
    p: argparse.ArgumentParser,
    flag: str,
    kind: Callable[[str], Any],
    default: object,
    text: str,
    *,
    dest: str | None = None,
) -> None:
    """An option whose help ends with its default (when it has one)."""
    p.add_argument(
        flag,
        dest=dest or flag.removeprefix("--").replace("-", "_"),
        type=kind,
        default=default,
        help=text if default is None else f"{text} (default {default})",
    )


#: run's --seed: a whole number here; its range is the plan's (``Plan.seed``), checked there.
_seed = _number(Range(int))


# ---------------------------------------------------------------------------- run


#: What ``run`` imports beyond the base install: the ``[workbench]`` extra.
WORKBENCH_MODULES = ("tensorflow", "keras", "sklearn", "matplotlib", "psutil", "tqdm")
WORKBENCH_INSTALL = 'pip install "release-spec[workbench]"'

# A failed write of these kinds is the environment's problem (exit 2), not a bug.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}


def _missing_workbench() -> list[str]:
    """The workbench modules this interpreter cannot import (found without importing them)."""
    missing = []
    for name in WORKBENCH_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # blocked, or a broken half-import
            found = False
        if not found:
            missing.append(name)
    return missing


def _output_dir(out: Path) -> None:
    """Create ``--out`` first: an unusable path fails in one line, not after training.

    A directory that exists but cannot be written (read-only file system, no
    permission) is refused here too: an unnamed temporary file is created and
    dropped, which leaves nothing behind.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory: {exc.strerror}") from None
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write into the directory: {exc.strerror}") from None


class _Ran(NamedTuple):
    """What ``run`` prints of a finished run: its outcome, production and failed gates."""

    outcome: str
    production: str
    failed_gates: Sequence[str]
    text: str


def _cmd_run(args: argparse.Namespace) -> int:
    # Before anything touches the disk or imports TensorFlow.
    missing = _missing_workbench()
    if missing:
        raise UsageError(
            f"run needs the workbench extra, which is not installed (missing: "
            f"{', '.join(missing)}); install it with: {WORKBENCH_INSTALL}"
        )
    # Each example checks its scenario and reads its plan, then hands back the run itself.
    run = _language_model_run(args) if args.example == "language-model" else _classic_run(args)
    _output_dir(args.out)
    from release_spec.store import StoreError
    from release_spec.workbench.pipeline import TENSORFLOW_ENVIRONMENT

    # Before TensorFlow is imported (it reads them once); a value the user set wins.
    for name, value in TENSORFLOW_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        ran = run()
    except StoreError as exc:
        # The store's messages name the file, or the lock's holder and lock file.
        raise UsageError(f"run stopped: {exc}") from None
    except OSError as exc:
        # A full disk or a read-only file system while writing the report or figures.
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise UsageError(f"cannot write {exc.filename or args.out}: {exc.strerror}") from None
    summary = f"outcome: {ran.outcome}; production {ran.production}"
    if ran.failed_gates:
        summary += "; failed gate(s): " + ", ".join(ran.failed_gates)
    print(summary)
    print(f"{ran.outcome}: {ran.text}")
    return RUN_EXIT_CODES[ran.outcome]


def _classic_run(args: argparse.Namespace) -> Callable[[], _Ran]:
    """``run`` (``--example classic``): `release_spec.workbench.pipeline.run_pipeline`."""
    if args.scenario not in SCENARIOS:
        raise UsageError(
            f"--scenario {args.scenario} is a language-model scenario; the classic example's "
            f"are {', '.join(SCENARIOS)} (or pass --example language-model)"
        )
    from release_spec.strategy.plan import load_plan

    try:
        plan = load_plan(args.plan)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.seed is not None:
        try:
            plan = replace(plan, seed=args.seed)
        except ValueError as exc:
            # The plan checks its own seed: "seed: expected an integer in [0, ...], got ...".
            raise UsageError(f"--{exc}") from None

    def run() -> _Ran:
        from release_spec.workbench.pipeline import run_pipeline
        from release_spec.workbench.report import outcome_summary

        result = run_pipeline(plan, args.out, scenario=args.scenario, progress=not args.no_progress)
        report = result.report
        prod = f"{report.production.version} (sha256 {report.production.sha256})"
        text = outcome_summary(report.to_json())
        return _Ran(result.outcome.value, prod, report.failed_gates, text)

    return run


def _language_model_run(args: argparse.Namespace) -> Callable[[], _Ran]:
    """``run --example language-model``: `release_spec.workbench.language.run`."""
    from release_spec.workbench.language.plan import load_language_plan

    if args.scenario not in LANGUAGE_SCENARIOS:
        raise UsageError(
            f"--scenario {args.scenario} is not a language-model scenario; choose from "
            f"{', '.join(LANGUAGE_SCENARIOS)}"
        )
    try:
        plan = load_language_plan(args.plan)
        if args.seed is not None:
            plan = replace(plan, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def run() -> _Ran:
        from release_spec.workbench.language.report import OUTCOME_TEXT
        from release_spec.workbench.language.run import run_language_model

        result = run_language_model(plan, args.out, scenario=args.scenario)
        prod, failed = result.report.production, result.report.failed_gates
        version = prod.version if prod else None
        return _Ran(result.outcome.value, str(version), failed, OUTCOME_TEXT[result.outcome])

    return run


def _add_run(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the reference release (pre-train, fine-tune, release)",
        description="Run every stage on the embedded data; write report.md, report.json, "
        "figures and the model store under --out. A later run into the same --out judges its "
        "candidate against that store's production; the same plan and seed again fine-tune "
        "production's own model, which ends 'unchanged' (exit 0) without a rollout.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--plan",
        type=Path,
        help="TOML release plan (default: the embedded plan, release_spec/strategy/"
        "default_plan.toml)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("build/release"),
        help="output directory: report, figures and the model store (default: build/release)",
    )
    p.add_argument(
        "--seed", type=_seed, help="override the plan's seed (default: the plan's; 0 embedded)"
    )
    p.add_argument(
        "--example",
        choices=("classic", "language-model"),
        default="classic",
        help="what to release (default: classic): the classic digits network, or the small "
        "language model (--plan: a file, or quick / default for a built-in plan; scenarios "
        "default, forgetting, jailbreak-regression, live-prompt-regression)",
    )
    p.add_argument(
        "--scenario",
        choices=_RUN_SCENARIOS,
        default="default",
        help="which candidate the run fine-tunes (default: default). default: clean target "
        "data, expected released; regression: class 3 relabelled 4 in the fine-tuning data, "
        "expected stopped by an offline gate; live-regression: a mislabelled batch from a new "
        "intake channel the offline sets barely contain, expected rolled back during the "
        "rollout",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar for the soak (default: a bar on stderr)",
    )
    p.set_defaults(handler=_cmd_run)


# ---------------------------------------------------------------------------- store


def _cmd_store(args: argparse.Namespace) -> int:
    from release_spec.store.errors import StoreError, _shown

    # Names in a store may hold newlines or escapes: every message is shown as one line.
    # A warning (a stale lock taken over) is one line too, and only on success, so a
    # refusal is exactly one line on stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = _store_action(args)
        except StoreError as exc:
            # Write failures are StoreWriteErrors: "cannot write FILE: No space left on device".
            raise UsageError(_shown(f"store {args.action}: {exc}")) from None
        except OSError as exc:
            # Anything the store did not wrap (reading --archive, say) names its file if it has one.
            where = f"{exc.filename}: " if exc.filename else ""
            raise UsageError(_shown(f"store {args.action}: {where}{exc.strerror or exc}")) from None
    for warning in caught:
        print(f"{PROG}: warning: {_shown(warning.message)}", file=sys.stderr)
    return code


def _store_action(args: argparse.Namespace) -> int:
    from release_spec.store import ModelStore
    from release_spec.store.errors import _shown

    if args.action == "restore":
        if args.archive is None:
            raise UsageError("store restore: give the backup archive (--archive FILE)")
        restored = ModelStore.restore(args.archive, args.store, overwrite=args.overwrite)
        prod = restored.production()
        print(_shown(f"restored {args.archive} into {args.store}; production {_name(prod)}"))
        return EXIT_OK
    if not args.store.exists():
        raise UsageError(_shown(f"store {args.action}: --store {args.store}: no such directory"))
    store = ModelStore(args.store)
    if args.action == "list":
        prod = store.production()
        rows = [
            (
                "*" if prod is not None and info.version == prod.version else " ",
                info.version,
                info.sha256[:16],
                _shown(info.created),
                info.parent or "-",
            )
            for info in store.versions()
        ]
        width = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in _LIST_HEADER]
        head = ("", *(h for _, h in _LIST_HEADER))
        for row in [head, *rows] if rows else []:
            cells = [f"{c:<{w}}" for c, w in zip(row[1:], width, strict=True)]
            print(f"{row[0]:1} " + "  ".join(cells).rstrip())
        print(f"production: {_name(prod)}" + (" (marked *)" if prod is not None else ""))
        return EXIT_OK
    if args.action == "verify":
        report = store.verify()
        for problem in report.problems:
            print(f"problem: {_shown(problem)}")
        for left in report.leftovers:
            print(f"leftover of a crashed writer: {_shown(left)}")
        print(
            f"{'ok' if report.ok else 'FAILED'}: {len(report.versions)} version(s), "
            f"production {report.production or '-'}"
        )
        return EXIT_OK if report.ok else EXIT_STOPPED
    if args.action == "backup":
        if args.dest is None:
            raise UsageError("store backup: give a destination (--dest DIR or FILE.tar.gz)")
        print(_shown(f"backup written: {store.backup(args.dest)}"))
        return EXIT_OK
    info = store.rollback()
    print(f"rolled back: production is now {info.version} (sha256 {info.sha256})")
    return EXIT_OK


#: ``store list``'s columns after the production mark: (row index, header).
_LIST_HEADER = ((1, "version"), (2, "sha256 (first 16)"), (3, "created"), (4, "parent"))

#: What each ``store`` action does (its --help).
STORE_ACTIONS_HELP = """\
actions:
  list      the versions, oldest first, with a header; * marks production
  verify    re-hash every version's files against its manifest and check the
            production pointer; exit 3 when a problem is found
  backup    write the whole store to one .tar.gz (--dest DIR or FILE.tar.gz)
  restore   rebuild a store from a backup (--archive FILE; --overwrite to
            replace an existing store)
  rollback  put the previous production version back into production: the
            version that was production before the current one was promoted
            (the store keeps that history); fails if there is none
"""


def _name(info: object) -> str:
    version = getattr(info, "version", None)
    return str(version) if version else "none"


def _add_store(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "store",
        help="list, verify, back up, restore or roll back a model store",
        description="Manage a model store (see release_spec.store).\n\n" + STORE_ACTIONS_HELP,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action",
        choices=("list", "verify", "backup", "restore", "rollback"),
        help="what to do with the store (each is described above)",
    )
    p.add_argument("--store", type=Path, required=True, help="the store directory")
    p.add_argument("--dest", type=Path, help="backup: a directory or a .tar.gz path")
    p.add_argument("--archive", type=Path, help="restore: the backup archive")
    p.add_argument("--overwrite", action="store_true", help="restore: replace an existing store")
    p.set_defaults(handler=_cmd_store)


# ---------------------------------------------------------------------------- simulate


def _rules(text: str) -> tuple[str, ...]:
    from release_spec.strategy.simulation import parse_rules

    try:
        return parse_rules(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _simulate_rules(args: argparse.Namespace) -> int:
    """``simulate --rules``: the engines' rules and the sequential judge on the same streams."""
    import json

    from release_spec.strategy.simulation import (
        RULES,
        RuleSettings,
        compare_rules,
        monte_carlo_bound,
    )

    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        # Refused before the simulation runs, not after.
        raise UsageError(f"--json {args.json}: not a file in an existing directory")
    try:
        result = compare_rules(
            args.rules, runs=args.runs, seed=args.seed, settings=RuleSettings(alpha=args.alpha)
        )
    except ValueError as exc:
        # The simulator's size caps (MAX_RUNS, MAX_CELLS), named in the message.
        raise UsageError(f"--runs: {exc}") from None
    for line in result.lines():
        print(line)
    ok = True
    if "sequential" in result.rules:
        bound = monte_carlo_bound(args.alpha, args.runs)
        rates = [
            result.result("sequential", s.name).rollback_rate for s in result.scenarios if s.null
        ]
        ok = max(rates) <= bound
        print(
            f"sequential false-rollback rate within alpha + 3 s.e. = {bound:.4f} on every "
            f"scenario without a canary excursion: {'yes' if ok else 'NO'}"
        )
    if args.json is not None:
        from release_spec.store import StoreError, atomic_write

        rules = "all" if result.rules == RULES else ",".join(result.rules)
        command = (
            f"release-spec simulate --rules {rules} --runs {args.runs} --seed {args.seed} "
            f"--alpha {args.alpha:g} --json {args.json.as_posix()}"
        )
        text = json.dumps({"generated": command, **result.to_dict()}, indent=1) + "\n"
        try:
            atomic_write(args.json, text.encode("utf-8"))
        except (StoreError, OSError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise UsageError(f"--json {args.json}: cannot write: {why}") from None
        print(f"wrote {args.json}")
    return EXIT_OK if ok else EXIT_STOPPED


def _cmd_simulate(args: argparse.Namespace) -> int:
    from release_spec.strategy.simulation import compare_judges, monte_carlo_bound

    if args.rules is not None:
        return _simulate_rules(args)
    if args.json is not None:
        raise UsageError("--json needs --rules (it writes the rule comparison)")
    from release_spec.strategy.simulation import MAX_CELLS, MAX_LOOK_REQUESTS

    if args.runs * args.looks > MAX_CELLS:
        raise UsageError(
            f"--runs x --looks must be at most {MAX_CELLS} (simulation.MAX_CELLS), "
            f"got {args.runs} x {args.looks}"
        )
    if args.canary_per_look / args.canary_fraction > MAX_LOOK_REQUESTS:
        raise UsageError(
            f"--canary-per-look / --canary-fraction must be at most {MAX_LOOK_REQUESTS} requests "
            f"per look (simulation.MAX_LOOK_REQUESTS), got {args.canary_per_look} / "
            f"{args.canary_fraction:g}"
        )
    if args.baseline_error + args.regression >= 1:
        raise UsageError(
            f"--baseline-error + --regression must be below 1, got "
            f"{args.baseline_error} + {args.regression}"
        )
    result = compare_judges(
        runs=args.runs,
        baseline_error=args.baseline_error,
        regression=args.regression,
        canary_fraction=args.canary_fraction,
        canary_per_look=args.canary_per_look,
        looks=args.looks,
        alpha=args.alpha,
        seed=args.seed,
    )
    for line in result.lines(within=args.within):
        print(line)
    bound = monte_carlo_bound(args.alpha, args.runs)
    ok = result.null.sequential.rollback_rate <= bound
    print(f"sequential false-rollback rate within the bound: {'yes' if ok else 'NO'}")
    return EXIT_OK if ok else EXIT_STOPPED


def _add_simulate(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="false rollbacks, detection and exposure of the canary judges, by simulation",
        description="Simulate rollouts without and with a regression; print the false-rollback "
        "rate, the detection rate and the median canary exposure of the anytime-valid judge "
        "and of a two-proportion z-test repeated at every look. Exit 3 if the sequential "
        "judge's false-rollback rate exceeds alpha + 3 Monte Carlo standard errors.",
    )
    from release_spec.strategy.simulation import MAX_CELLS, MAX_LOOKS, MAX_RUNS

    options = {
        "--runs": (
            Range(int, 1, MAX_RUNS),
            2000,
            f"rollouts per case, at most {MAX_RUNS}; runs x looks at most {MAX_CELLS}",
        ),
        "--baseline-error": (OPEN_FRACTION, 0.02, "production's error rate"),
        "--regression": (OPEN_FRACTION, 0.02, "how much higher the canary's error rate is"),
        "--canary-fraction": (
            OPEN_FRACTION,
            0.05,
            "the canary's share of traffic as a fraction, in (0, 1)",
        ),
        "--looks": (
            Range(int, 1, MAX_LOOKS),
            400,
            f"looks per rollout, at most {MAX_LOOKS}; runs x looks at most {MAX_CELLS}",
        ),
        "--canary-per-look": (Range(int, 1, None), 25, "canary requests between looks"),
        "--within": (
            Range(int, 1, None),
            2500,
            "also report detection with at most this many canary requests",
        ),
        "--alpha": (OPEN_FRACTION, 0.05, "the judges' significance level"),
        "--seed": (Range(int, 0, None), 0, "random seed"),
    }
    for flag, (rng, default, text) in options.items():
        _add_option(p, flag, _number(rng), default, text)
    p.add_argument(
        "--rules",
        type=_rules,
        metavar="LIST",
        help="instead: compare rollback rules on fixed scenarios (no regression at 1, 5 and "
        "20 %%, 2 %% -> 4 %%, shared spikes, canary blips, idle intervals); 'all' or a "
        "comma-separated subset of argo, flagger, kayenta, sequential. Uses --runs, --seed "
        "and --alpha (the sequential judge's) only",
    )
    p.add_argument(
        "--json", type=Path, metavar="FILE", help="with --rules: also write the results as JSON"
    )
    p.set_defaults(handler=_cmd_simulate)


# ---------------------------------------------------------------------------- export

#: ``ExportOptions`` field -> its flag (and help) on ``release-spec export``.
_EXPORT_FLAGS = {
    "service_url": ("--service-url", "the judge service as the controller reaches it"),
    "prometheus_url": ("--prometheus-url", "the Prometheus the judge service reads"),
    "name": ("--name", "Rollout / Canary name"),
    "namespace": ("--namespace", "namespace of every object and of the counted pods"),
    "target": ("--target", "the Deployment to roll out"),
    "port": ("--port", "Flagger: the container port of the canary services"),
    "requests_metric": ("--requests-metric", "per-pod counter of requests served"),
    "errors_metric": ("--errors-metric", "per-pod counter of failed requests"),
    "slow_metric": ("--slow-metric", "per-pod counter of requests slower than latency_slo_ms"),
    "rollout_id": (
        "--rollout-id",
        "Flagger: one judge rollout id for every revision (default: the service's "
        "namespace.name.checksum, one per revision)",
    ),
    "interval_seconds": (
        "--interval",
        "seconds; Argo: between looks (default: batch_size requests at requests_per_minute); "
        "Flagger: the analysis interval (default: the longest wait for a step's minimum)",
    ),
}


def _cmd_export(args: argparse.Namespace) -> int:
    from release_spec.services.export import ExportOptions, export
    from release_spec.strategy.plan import load_plan

    try:
        plan = load_plan(args.plan)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        options = ExportOptions(**{field: getattr(args, field) for field in _EXPORT_FLAGS})
        text = export(args.controller, plan.phased_rollout, options)
    except ValueError as exc:
        # An option's message starts with its field name: say it as the flag. Anything
        # else names a plan key.
        field, _, rest = str(exc).partition(":")
        if field in _EXPORT_FLAGS:
            raise UsageError(f"{_EXPORT_FLAGS[field][0]}:{rest}") from None
        raise UsageError(f"plan {args.plan or '(embedded)'}: {exc}") from None
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    from release_spec.store import atomic_write

    try:
        # Atomic: a failed write leaves no half-written manifest behind.
        atomic_write(args.out, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _add_export(sub: argparse._SubParsersAction[_Parser]) -> None:
    from release_spec.services.export import TARGETS, ExportOptions

    defaults = ExportOptions()
    p = sub.add_parser(
        "export",
        help="write the plan's phased rollout as Argo Rollouts or Flagger manifests",
        description="Write the [phased_rollout] steps of a plan as an Argo Rollouts Rollout\n"
        "with one AnalysisTemplate per step, or as a Flagger Canary; the canary judge\n"
        "service (release-spec judge serve) decides every step. YAML on stdout, or --out FILE.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("controller", choices=TARGETS, help="argo (Argo Rollouts) or flagger")
    p.add_argument("--plan", type=Path, help="TOML release plan (default: the embedded plan)")
    p.add_argument("--out", type=Path, help="write this file instead of stdout")
    for field, (flag, text) in _EXPORT_FLAGS.items():
        number = field in ("port", "interval_seconds")
        kind = _number(Range(int, 1, None)) if number else str
        _add_option(p, flag, kind, getattr(defaults, field), text, dest=field)
    p.set_defaults(handler=_cmd_export)


# ---------------------------------------------------------------------------- judge


def _add_judge(sub: argparse._SubParsersAction[_Parser]) -> None:
    # The handlers live in the services layer and import the web stack when they run.
    from release_spec.services.commands import add_judge_parser

    add_judge_parser(sub, usage_error=UsageError, parser_class=_Parser)


#: One function per subcommand; each adds its parser and sets ``handler``.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[_Parser]], None]] = [
    _add_run,
    _add_store,
    _add_simulate,
    _add_export,
    _add_judge,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand in `SUBCOMMANDS`."""
    parser = _Parser(
        prog=PROG,
        description="Staged release of a model, with gates.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from release_spec import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    # Not required: a bare `release-spec` prints the usage (main), not argparse's one line.
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    return [
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            # The usage and the commands on stdout, the error as one line on stderr.
            parser.print_help()
            raise UsageError("give a command: " + ", ".join(_command_names(parser)))
        code: int = args.handler(args)
        return code
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:
        # argparse's --help (and nothing else: errors are UsageError): a code, not a raise.
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        traceback.print_exc()
        print(f"{PROG}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
