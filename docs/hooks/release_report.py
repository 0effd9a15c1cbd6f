"""Embed the report of a real reference-release run in the Reference release page.

At build time this hook runs the pipeline once, exactly as a user would::

    python -m release_spec run --plan release_spec/strategy/default_plan.toml --out DIR --seed 0

and puts the ``report.md`` it writes into ``release/reference-release.md`` in
place of the line ``<!-- release:report -->``: its headings are moved down so
that they nest under the page's section, and its figures are published as
``release/run/<name>.png`` next to the page.

The run is cached in ``.cache/release-run/<key>/`` (``report.md``,
``report.json`` and the figures; the model store is not kept), where the key
digests every input of the run: the sources under ``release_spec/``, the
Python and package versions (``build_inputs.inputs_digest``, the key of the
executed notebooks too), the plan and the command's arguments. A
rebuild with nothing changed reuses it; any change runs the pipeline again.
A missing run is started in the background before the pages are read
(``on_pre_build``), so that it overlaps the execution of the notebooks, and
is waited for when the Reference release page is read; its figures are then
added to the site's files. The run writes into a temporary directory that is moved into place with
``os.replace`` only once it has succeeded, so an interrupted build leaves no
half-written report behind. Directories of other keys are deleted after a
successful build.

A run that does not end ``released`` (exit code 0) fails the build: the page
promises a release that went through every gate, and a stopped or rolled
back run (exit code 3), a plan error (2) or a crash (1) means the code or the
plan needs fixing, not that the page should show it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from build_inputs import inputs_digest
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel

from release_spec.store.files import fsync_dir

ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = ROOT / ".cache" / "release-run"
# The page shows the reference release itself: the embedded default plan.
PLAN = ROOT / "release_spec" / "strategy" / "default_plan.toml"
PAGE = "release/reference-release.md"
FIGURE_DIR = "release/run"
PLACEHOLDER = "<!-- release:report -->"
RUN_ARGS = ("--seed", "0", "--no-progress")
# The report's top heading becomes this level: the placeholder sits under an H2.
TOP_LEVEL = 3
# A guard against a hung run, not a speed limit: a busy 2-core machine (the
# default plan soaks for 60 s) must never fail the build for being slow.
TIMEOUT_S = 1800

_HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)
_FIGURE = re.compile(r"!\[([^\]]*)\]\(([A-Za-z0-9_.-]+\.png)\)")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def run_key(plan: Path = PLAN) -> str:
    """Digest of everything the cached run depends on."""
    h = hashlib.sha256()
    h.update(inputs_digest().encode() + b"\0")
    h.update(plan.read_bytes() + b"\0")
    h.update("\0".join(RUN_ARGS).encode())
    return h.hexdigest()[:20]


def run_command(out: Path, plan: Path) -> list[str]:
    """The command line of the reference run."""
    return [sys.executable, "-m", "release_spec", "run", "--plan", str(plan), "--out", str(out)]


class Run:
    """The cached run for the current inputs, started in the background when absent.

    The pipeline runs in a subprocess while MkDocs carries on (the notebooks
    execute meanwhile); :meth:`wait` returns the cache directory once the run
    has released, or raises PluginError.
    """

    def __init__(self, cache_root: Path = CACHE_ROOT, plan: Path = PLAN) -> None:
        self.cache_root = cache_root
        self.final = cache_root / run_key(plan)
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        if (self.final / "report.md").is_file():
            return
        cache_root.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_root))
        self._cmd = [*run_command(self._tmp / "run", plan), *RUN_ARGS]
        # A file, not a pipe: the run prints a line per epoch and gate, and
        # nobody reads a pipe while MkDocs builds the other pages.
        with (self._tmp / "run.log").open("wb") as log:
            self._proc = subprocess.Popen(
                self._cmd,
                cwd=ROOT,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait(self) -> Path:
        """The run's directory; PluginError unless the run exited 0 (released)."""
        if self._proc is None:
            return self.final
        assert self._tmp is not None
        try:
            code = self._proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self.cancel()
            raise PluginError(f"release_report: the reference run took over {TIMEOUT_S} s") from exc
        try:
            if code != 0:
                text = (self._tmp / "run.log").read_text("utf-8", errors="replace")
                tail = "\n".join(text.strip().splitlines()[-15:])
                raise PluginError(
                    f"release_report: the reference run ({' '.join(self._cmd[1:])}) exited with "
                    f"{code}, expected 0 (released); its last lines:\n{tail}"
                )
            out = self._tmp / "run"
            # The store holds the models (megabytes); the page needs the report only.
            shutil.rmtree(out / "store", ignore_errors=True)
            fsync_dir(out, files=True)
            try:
                os.replace(out, self.final)
            except OSError:
                # Another build finished the same run first; keep its copy.
                if not (self.final / "report.md").is_file():
                    raise
            fsync_dir(self.cache_root, files=True)
        finally:
            self._proc = None
            shutil.rmtree(self._tmp, ignore_errors=True)
        return self.final

    def cancel(self) -> None:
        """Stop a run still in progress and remove its temporary directory."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


_run: Run | None = None


def figures(run_dir: Path) -> list[str]:
    """The figure file names the report lists, each checked to exist."""
    names = json.loads((run_dir / "report.json").read_text("utf-8"))["figures"]
    missing = [n for n in names if not (run_dir / n).is_file()]
    if missing:
        raise PluginError(f"release_report: figures missing from {run_dir}: {missing}")
    return list(names)


def embed(report_md: str, figure_dir: str = "run", top_level: int = TOP_LEVEL) -> str:
    """The report as page Markdown: headings moved down, figure links pointed at ``figure_dir``.

    >>> embed("# Report: released\\n\\n## Stages\\n\\n![gate summary](gate_summary.png)\\n")
    '### Report: released\\n\\n#### Stages\\n\\n![gate summary](run/gate_summary.png)\\n'
    """
    if _FENCE.search(report_md):
        raise PluginError(
            "release_report: report.md has a code fence; heading shift would be unsafe"
        )
    shift = top_level - 1

    def heading(m: re.Match[str]) -> str:
        level = len(m.group(1)) + shift
        if level > 6:
            raise PluginError(
                f"release_report: a report heading would nest below h6: {m.group(0)!r}"
            )
        return "#" * level + " "

    text = _HEADING.sub(heading, report_md)
    return _FIGURE.sub(lambda m: f"![{m.group(1)}]({figure_dir}/{m.group(2)})", text)


def on_pre_build(config: Any) -> None:
    global _run
    _run = Run()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if _run is None:
        raise PluginError(f"release_report: {PAGE} is built but the run was not started")
    if markdown.count(PLACEHOLDER) != 1:
        raise PluginError(f"release_report: {PAGE} must contain {PLACEHOLDER} exactly once")
    run_dir = _run.wait()
    # Pages are read after on_files; files added here are still copied into the
    # site and found by the link check of this page, which runs after this event.
    for name in figures(run_dir):
        uri = f"{FIGURE_DIR}/{name}"
        if files.get_file_from_path(uri) is None:
            files.append(
                File.generated(
                    config,
                    uri,
                    abs_src_path=str(run_dir / name),
                    inclusion=InclusionLevel.INCLUDED,
                )
            )
    report = (run_dir / "report.md").read_text("utf-8")
    return markdown.replace(PLACEHOLDER, embed(report).rstrip("\n"))


def on_build_error(error: Exception) -> None:
    if _run is not None:
        _run.cancel()


def on_post_build(config: Any) -> None:
    if _run is None:
        return
    keep = _run.wait()
    for stale in CACHE_ROOT.iterdir() if CACHE_ROOT.is_dir() else ():
        if stale.is_dir() and stale != keep and not stale.name.startswith(".tmp-"):
            shutil.rmtree(stale, ignore_errors=True)
