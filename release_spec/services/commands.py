"""``release-spec judge serve|check``: the argument parsers and their handlers.

``release_spec.cli`` only registers the group (`add_judge_parser`); the web stack is
imported when a handler runs, so ``release-spec --help`` stays cheap.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from typing import Any

__all__ = ["CHECK_EXIT_CODES", "EXIT_CONTINUE", "EXIT_PROMOTE", "EXIT_REJECT", "add_judge_parser"]

EXIT_PROMOTE, EXIT_REJECT, EXIT_CONTINUE = 0, 3, 4

CHECK_EXIT_CODES = """\
exit codes (judge check):
  0  promote: the canary is shown not worse than the baseline by the margin
  3  reject: the canary is worse (anytime-valid test at level alpha)
  4  continue: not enough evidence either way yet
  2  bad flags, or Prometheus unreachable or answering nonsense (one line)
  1  unexpected error (with its traceback)
With Argo Rollouts' job provider only exit 0 passes, so "continue" fails the
measurement; count it with failureLimit, or use the web provider on
POST /v1/rollouts/{id}/measure of `judge serve`, where continue is Inconclusive.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_judge_parser(sub: Any, usage_error: type[Exception], parser_class: Any) -> None:
    """Register ``judge serve`` and ``judge check`` on the CLI's subparsers.

    Args:
        sub: the ``release-spec`` subparsers action.
        usage_error: the exception the CLI turns into exit 2 with one line.
        parser_class: the CLI's parser class (one-line errors).
    """
    judge = sub.add_parser(
        "judge",
        help="the canary judge: an HTTP service (serve) or a one-shot decision (check)",
        description="The anytime-valid canary judge for Argo Rollouts, Flagger and Kayenta.",
    )
    cmds = judge.add_subparsers(dest="judge_command", required=True, parser_class=parser_class)

    serve = cmds.add_parser(
        "serve",
        help="serve the judge over HTTP (OpenAPI at /docs)",
        description="Serve the judge's HTTP API (/v1/rollouts, /v1/flagger, /v1/kayenta, "
        "/healthz, /metrics; OpenAPI at /docs) with durable state.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_positive_int, default=8080, help="port to bind (default 8080)"
    )
    serve.add_argument(
        "--db",
        default="release-spec-judge.db",
        help="SQLite file (default release-spec-judge.db) or postgresql:// URL shared by replicas",
    )
    serve.add_argument(
        "--sqlite-synchronous",
        choices=("normal", "full"),
        default="normal",
        help="SQLite only. normal (default): an acknowledged look survives the service's "
        "death (SIGKILL); full: also a power loss or an OS crash, at an fsync per commit",
    )
    serve.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )
    serve.set_defaults(handler=lambda args: _serve(args, usage_error))

    check = cmds.add_parser(
        "check",
        help="judge one look from flags or Prometheus; the exit code is the decision",
        description="Judge the canary once, from counts given as flags or read from "
        "Prometheus over the last --window seconds, and print the verdict as JSON.",
        epilog=CHECK_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--alpha", type=_fraction, default=0.05)
    check.add_argument("--margin", type=_fraction, default=0.03)
    check.add_argument(
        "--slow-margin", type=_fraction, help="judge the slow-request rate with this margin"
    )
    check.add_argument("--min-canary-requests", type=_positive_int, default=0)
    for arm in ("canary", "baseline"):
        for kind in ("requests", "errors", "slow"):
            check.add_argument(f"--{arm}-{kind}", type=_positive_int, metavar="N")
            check.add_argument(
                f"--{arm}-{kind}-query",
                metavar="PROMQL",
                help="counter selector or expression with $window" if kind == "requests" else None,
            )
    check.add_argument("--prometheus", metavar="URL", help="read counts from this Prometheus")
    check.add_argument(
        "--window", type=_seconds, default=300.0, help="Prometheus window in seconds (300)"
    )
    check.set_defaults(handler=lambda args: _check(args, usage_error))


def _serve(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    import uvicorn

    from release_spec.services.app import create_app
    from release_spec.services.store import open_store

    try:
        store = open_store(args.db, sqlite_synchronous=args.sqlite_synchronous.upper())
    except ValueError as e:
        raise usage_error(str(e)) from None
    try:
        app = create_app(store)
        # What is imported and built by now lives as long as the process: frozen out of
        # the garbage collector's passes, which would otherwise rescan its hundreds of
        # thousands of objects over and over while looks are served.
        gc.freeze()
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
        )
    finally:
        store.close()
    return 0


def _check(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    from release_spec.services.rollouts import verdict_body
    from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig

    config = JudgeConfig(
        alpha=args.alpha,
        margin=args.margin,
        slow_margin=args.slow_margin,
        min_canary_requests=args.min_canary_requests,
    )
    arms: list[ArmCounts] = []
    if args.prometheus:
        arms = list(_from_prometheus(args, usage_error))
    else:
        for arm in ("canary", "baseline"):
            got = {k: getattr(args, f"{arm}_{k}") for k in ("requests", "errors", "slow")}
            for k in ("requests", "errors"):
                if got[k] is None:
                    raise usage_error(f"--{arm}-{k} is required (or --prometheus with queries)")
            if config.slow_margin is not None and got["slow"] is None:
                raise usage_error(f"--{arm}-slow is required with --slow-margin")
            try:
                arms.append(ArmCounts(got["requests"], got["errors"], got["slow"] or 0))
            except ValueError as e:
                raise usage_error(f"--{arm}-{e}") from None
    verdict = CanaryJudge(config).update(arms[0], arms[1])
    print(json.dumps(verdict_body("check", verdict, closed=True), indent=2))
    print(verdict.reason, file=sys.stderr)
    return {"promote": EXIT_PROMOTE, "reject": EXIT_REJECT}.get(verdict.decision, EXIT_CONTINUE)


def _from_prometheus(args: argparse.Namespace, usage_error: type[Exception]) -> Any:
    from release_spec.services.prometheus import SourceError, fetch_counts
    from release_spec.services.rollouts import NoSampleError, PrometheusArm, PrometheusConfig

    queries: dict[str, PrometheusArm] = {}
    for arm in ("canary", "baseline"):
        q = {k: getattr(args, f"{arm}_{k}_query") for k in ("requests", "errors", "slow")}
        for k in ("requests", "errors"):
            if not q[k]:
                raise usage_error(f"--{arm}-{k}-query is required with --prometheus")
        if args.slow_margin is not None and not q["slow"]:
            raise usage_error(f"--{arm}-slow-query is required with --slow-margin")
        queries[arm] = PrometheusArm(q["requests"], q["errors"], q["slow"])
    source = PrometheusConfig(args.prometheus, queries["canary"], queries["baseline"])
    end = time.time()
    try:
        return fetch_counts(source, end - args.window, end)
    except (SourceError, NoSampleError) as e:
        raise usage_error(f"--prometheus {args.prometheus}: {e}") from None
