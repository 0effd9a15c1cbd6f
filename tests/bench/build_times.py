"""Time the site's strict build: once cold in a fresh clone, then rebuilt with nothing changed.

Usage: ``python tests/bench/build_times.py [--warm N] [--out FILE] [--source DIR]``
(``nox -s build-times``). The clone is of ``--source``'s committed HEAD, so a cold
build has neither the notebooks' cache (``.cache/``) nor the reference run
(``docs/release/run/``); the clone's own ``release_spec/`` is the one imported. Each
build is a separate ``mkdocs build --strict`` of both languages; its wall time,
CPU time (user + system, of the build and everything it started) and the load
average before it are recorded. Figures from a machine doing other work say little:
the load average is printed beside each so that such a run can be told apart.
The targets (issue 10) are reported, not asserted: a cold build within 120 s (60 s
for the pages plus the language-model notebook's own 60 s) and a rebuild within 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLD_TARGET_S = 120.0
WARM_TARGET_S = 10.0


def build(tree: Path, site: Path) -> dict[str, float]:
    """One ``mkdocs build --strict`` of ``tree`` into ``site``: wall, CPU and load figures."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "NO_MKDOCS_2_WARNING": "1",
        "DISABLE_MKDOCS_2_WARNING": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"mkdocs build failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "user_s": round(after.ru_utime - before.ru_utime, 2),
        "sys_s": round(after.ru_stime - before.ru_stime, 2),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def _line(name: str, row: dict[str, float]) -> str:
    return (
        f"{name:8} {row['wall_s']:8.1f} s wall  {row['user_s']:7.1f} + {row['sys_s']:5.1f} s CPU"
        f"  load {row['load_before']:.1f} -> {row['load_after']:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--warm", type=int, default=5, help="rebuilds after the cold build (5)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--source", type=Path, default=ROOT, help="the repository to clone (.)")
    args = parser.parse_args(argv)
    if args.warm < 1:
        parser.error(f"--warm must be 1 or more, not {args.warm}")

    with tempfile.TemporaryDirectory(prefix="build-times-") as tmp:
        tree, site = Path(tmp, "tree"), Path(tmp, "site")
        subprocess.run(["git", "clone", "-q", str(args.source), str(tree)], check=True)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
        ).stdout.strip()
        print(f"commit {head}, {os.cpu_count()} CPUs")
        cold = build(tree, site)
        print(_line("cold", cold), flush=True)
        warm = []
        for i in range(args.warm):
            warm.append(build(tree, site))
            print(_line(f"warm {i + 1}", warm[-1]), flush=True)

    walls = [w["wall_s"] for w in warm]
    median = statistics.median(walls)
    print(
        f"cold {cold['wall_s']:.1f} s (target {COLD_TARGET_S:.0f} s: "
        f"{'met' if cold['wall_s'] <= COLD_TARGET_S else 'NOT MET'}); "
        f"warm median {median:.1f} s, {min(walls):.1f}-{max(walls):.1f} over {len(walls)} "
        f"(target {WARM_TARGET_S:.0f} s: {'met' if median <= WARM_TARGET_S else 'NOT MET'})"
    )
    if args.out:
        result = {"commit": head, "cpus": os.cpu_count(), "cold": cold, "warm": warm}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
