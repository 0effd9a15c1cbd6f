"""Run every benchmark module, print a table of medians and ratios, write JSON.

Usage: ``python tests/bench/run.py [--out FILE] [--repeats N] [--only NAME]``.
Each ``bench_*.py`` module beside this file exposes
``run(repeats: int) -> list[Comparison]``. The ratios compare medians taken in
the same run on the same machine; no wall-clock limit is asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import Comparison  # noqa: E402


def _modules(only: str | None) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in names if only is None or only in n]


def _print_table(rows: list[dict[str, object]]) -> None:
    header = f"{'subject':44} {'ms':>10} {'peer':38} {'ms':>10} {'ratio':>8}  target"
    print(header)
    print("-" * len(header))
    for r in rows:
        status = "ok" if r["met"] else "MISSED"
        print(
            f"{r['subject']!s:44} {r['subject_ms']:10.2f} {r['peer']!s:38} "
            f"{r['peer_ms']:10.2f} {r['ratio']:8.2f}  {r['target']} [{status}]"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--only", default=None, help="run only modules whose name contains this")
    args = parser.parse_args(argv)

    rows: list[dict[str, object]] = []
    for name in _modules(args.only):
        module = importlib.import_module(name)
        print(f"== {name}", flush=True)
        comparisons: list[Comparison] = module.run(args.repeats)
        rows.extend({"module": name, **c.as_row()} for c in comparisons)
    _print_table(rows)

    if args.out is not None:
        import numpy as np

        payload = {
            "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "numpy": np.__version__,
            },
            "repeats": args.repeats,
            "rows": rows,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
