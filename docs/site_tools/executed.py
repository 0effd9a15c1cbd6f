"""What the build executes: the notebooks and the reference release run (mkdocs-gen-files).

Both depend on the code in ``release_spec/`` and are cached by `inputs_digest`:

- mkdocs-jupyter (0.26) keys its cache on the notebook and its options only, so its
  ``cache_dir`` is named by the digest and the directories of other digests are
  deleted; its kernel is this Python (a kernel spec first on ``JUPYTER_PATH``), not
  whichever ``python3`` kernel Jupyter would find first. Its JupyterLab stylesheet is
  added to the site once (``assets/jupyter/index.css``; docs/hooks/notebook_pages.py
  links it from the notebook pages).
- The reference run (``release-spec run``, default plan, seed 0) is written to
  ``docs/release/run/``, whose ``KEY`` holds the digest of its inputs: a build with
  nothing changed reuses it. The Reference release page includes its ``report.md``
  (mkdocs-include-markdown-plugin); its figures are added to the site here. A run
  that does not release (exit code other than 0) fails the build and leaves nothing.
- A cold build executes the notebooks while the run works in its own process (its
  soak alone is a minute of wall-clock time): through mkdocs-jupyter's own page
  events, which write the cache entries its render of the site's pages then reads.

mkdocs-gen-files runs this script at the start of each language's build; the
second language finds everything in place. ``python docs/site_tools/executed.py``
makes the run without building the site.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
NB_CACHE = ROOT / ".cache" / "mkdocs-jupyter"
KERNELS = ROOT / ".cache" / "jupyter"
OUT = ROOT / "docs" / "release" / "run"
PLAN = ROOT / "release_spec" / "strategy" / "default_plan.toml"
RUN = [sys.executable, "-m", "release_spec", "run", "--seed", "0", "--no-progress", "--plan"]
NOTEBOOK_CSS = "assets/jupyter/index.css"
PACKAGES = "numpy scipy keras tensorflow-cpu tensorflow scikit-learn matplotlib psutil ipykernel"


def inputs_digest() -> str:
    """``release_spec/``, ``docs/data/*.json``, ``docs/release/*.toml``, Python and versions."""
    h = hashlib.sha256(sys.version.encode())
    files = [*(ROOT / "release_spec").rglob("*"), *(ROOT / "docs/data").glob("*.json")]
    for path in sorted([*files, *(ROOT / "docs/release").glob("*.toml")]):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    versions = [_version(n) for n in [*PACKAGES.split(), "nbclient", "nbconvert", "mkdocs-jupyter"]]
    return hashlib.sha256(h.digest() + str(versions).encode()).hexdigest()


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def run_key() -> str:
    """The reference run's key: its inputs, its plan and its command line."""
    return hashlib.sha256(f"{inputs_digest()}{PLAN.read_text()}{RUN[2:]}".encode()).hexdigest()[:20]


def reference_run(meanwhile: Callable[[], object] = lambda: None) -> Path:
    """``docs/release/run/`` reused or run now (PluginError unless released).

    ``meanwhile`` is called in this process while the run works in its own: the build
    executes its notebooks there (the run takes about a minute and a half, a minute of it
    its soak).
    """
    key = run_key()
    if (OUT / "KEY").is_file() and (OUT / "KEY").read_text() == key:
        meanwhile()
        return OUT
    shutil.rmtree(OUT, ignore_errors=True)
    (ROOT / ".cache").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="release-run-", dir=ROOT / ".cache"))
    try:
        with open(tmp / "run.log", "wb") as log:
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            cmd = [*RUN, str(PLAN), "--out", str(tmp / "run")]
            run = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env)
            try:
                meanwhile()
            except BaseException:
                run.kill()
                raise
            finally:
                code = run.wait()
        if code != 0:
            tail = (tmp / "run.log").read_text("utf-8", "replace").splitlines()[-15:]
            raise PluginError(f"reference run exited {code}, not 0:\n" + "\n".join(tail))
        shutil.rmtree(tmp / "run" / "store")  # the models: megabytes, not shown
        (tmp / "run" / "KEY").write_text(key)
        if not (OUT / "KEY").is_file():  # else a concurrent build wrote the same run first
            os.replace(tmp / "run", OUT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return OUT


def execute_notebooks(config: MkDocsConfig, files: Files) -> None:
    """The notebooks that mkdocs-jupyter's cache lacks, executed now by mkdocs-jupyter itself.

    Its ``on_pre_page`` and the render it installs, on a page made for the purpose: they write
    the cache entry its own render of the site's page then reads.
    Two at a time, each in a process forked from this one: mkdocs-jupyter numbers a
    notebook's cells in a module global, which conversions in two threads would share.
    """
    plugin = config.plugins["mkdocs-jupyter"]

    def execute(file: File) -> None:
        Page(None, file, config)  # sets file.page, only in the child
        plugin.on_pre_page(file.page, config=config, files=files).render(config, files)

    fork = multiprocessing.get_context("fork")  # from this thread: the child has its state
    pending = [f for f in files.documentation_pages() if f.src_uri.endswith(".ipynb")]
    pending = [f for f in pending if not _cache_path(plugin.config, f.abs_src_path).is_file()]
    running: dict[int, tuple[multiprocessing.process.BaseProcess, File]] = {}
    try:
        while pending or running:
            while pending and len(running) < 2:
                child = fork.Process(target=execute, args=(file := pending.pop(0),))
                child.start()
                running[child.sentinel] = (child, file)
            for ended in multiprocessing.connection.wait(list(running)):
                child, file = running.pop(ended)  # type: ignore[index]
                child.join()
                if child.exitcode != 0:
                    raise PluginError(f"notebook {file.src_uri} failed to execute (see above)")
    finally:
        for child, _ in running.values():
            child.kill()
            child.join()


def _cache_path(options: Any, notebook: str | None) -> Path:
    """mkdocs-jupyter's (0.26) cache entry for the notebook (the key of its ``on_pre_page``)."""
    from mkdocs_jupyter.plugin import _compute_cache_key, _get_cache_path

    key = _compute_cache_key(notebook, options, options["execute"])
    return Path(_get_cache_path(options["cache_dir"], key))


def notebook_setup(plugin_config: dict[str, object]) -> None:
    """Point mkdocs-jupyter at this Python's kernel and at the cache for the current digest."""
    spec = KERNELS / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    if not os.environ.get("JUPYTER_PATH", "").startswith(str(KERNELS)):
        os.environ["JUPYTER_PATH"] = f"{KERNELS}{os.pathsep}{os.environ.get('JUPYTER_PATH', '')}"
    keep = NB_CACHE / inputs_digest()[:20]
    for stale in NB_CACHE.iterdir() if NB_CACHE.is_dir() else ():
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)
    plugin_config["cache_dir"] = str(keep)


def main() -> None:
    import mkdocs_gen_files
    import mkdocs_jupyter

    config = mkdocs_gen_files.config
    notebook_setup(config.plugins["mkdocs-jupyter"].config)
    css = Path(mkdocs_jupyter.__file__).parent / "templates/mkdocs_html/assets/index.css"
    with mkdocs_gen_files.open(NOTEBOOK_CSS, "wb") as f:
        f.write(css.read_bytes())
    run = reference_run(meanwhile=lambda: execute_notebooks(config, mkdocs_gen_files.files))
    for png in sorted(run.glob("*.png")):
        with mkdocs_gen_files.open(f"release/run/{png.name}", "wb") as f:
            f.write(png.read_bytes())


if __name__ == "<run_path>":  # run by mkdocs-gen-files
    main()
elif __name__ == "__main__":
    print(reference_run())
