"""Sessions that build the site, verify the spec and run the reference release.

``nox`` alone runs lint, typing and tests; ``nox -s docs`` builds the site,
``nox -s serve`` previews it, ``nox -s offline`` zips a copy that opens from files.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

ROOT = Path(__file__).parent
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "NO_MKDOCS_2_WARNING": "1",
    # mkdocs-gen-files depends on properdocs, which prints the same warning otherwise.
    "DISABLE_MKDOCS_2_WARNING": "true",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}


def _hypothesis_profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the property tests, parity tests, doctests and browser tests."""
    session.install("-e", ".[test]")
    env = {**QUIET_ENV, "HYPOTHESIS_PROFILE": _hypothesis_profile()}
    session.run("pytest", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff, and the layer contracts with import-linter."""
    session.install("ruff>=0.6", "import-linter>=2")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contracts in pyproject.toml [tool.importlinter]; it reads the source
    # from the working directory, so the package need not be installed.
    session.run("lint-imports")


@nox.session
def typing(session: nox.Session) -> None:
    """Type-check the package with mypy."""
    session.install(
        "mypy>=1.10",
        "numpy>=1.26",
        "scipy>=1.11",
        "types-tqdm",
        "types-psutil",
        "types-PyYAML",
        "fastapi>=0.110",
        "httpx>=0.27",
        "psycopg[binary]>=3.1",
        "prometheus-client>=0.20",
        "uvicorn>=0.29",
        "pyyaml>=6",
    )
    session.install("--no-deps", "-e", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Time the formulas against their peers; write docs/data/bench.json."""
    session.install("-e", ".[test]")
    out = ROOT / "docs" / "data" / "bench.json"
    session.run("python", "tests/bench/run.py", "--out", str(out), *session.posargs, env=QUIET_ENV)


@nox.session(name="lm-seeds")
def lm_seeds(session: nox.Session) -> None:
    """Run the language model's four scenarios on seeds 0-9 (quick plan).

    Writes docs/data/language-model-seeds.json and the table beside it (.table);
    exit 3 if a run ends otherwise than its scenario claims. ``-- --seeds 3-5``
    runs a subset and merges it into the file.
    """
    session.install("-e", ".[workbench]")
    args = session.posargs or []
    json_path = ROOT / "docs" / "data" / "language-model-seeds.json"
    session.run(
        "python",
        "-m",
        "release_spec.workbench.language.run",
        "--json",
        str(json_path),
        *args,
        env={**QUIET_ENV, "TF_ENABLE_ONEDNN_OPTS": "0"},
    )


@nox.session
def seeds(session: nox.Session) -> None:
    """Run the reference release's three scenarios on seeds 0-19; write docs/data/seeds.json.

    One Python process (TensorFlow imported once), 60 runs with the default plan
    but a 10 s soak (see release_spec/workbench/sweep.py); exit 3 if a documented claim fails.
    Pass ``-- --seeds 1,5,7`` for a subset (then the JSON is not rewritten).
    """
    session.install("-e", ".[workbench]")
    out = ROOT / "build" / "seeds"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    args = session.posargs or ["--json", str(ROOT / "docs" / "data" / "seeds.json")]
    session.run(
        "python", "-m", "release_spec.workbench.sweep", "--out", str(out), *args, env=QUIET_ENV
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site to site/ (strict, both languages, notebooks executed).

    The first build after a change to release_spec/ (or to the package versions)
    executes the notebooks and the reference run; later builds take both from
    their caches (.cache/mkdocs-jupyter/<digest>/, docs/release/run/KEY).
    """
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env=QUIET_ENV)
    session.log(f"Site built: {ROOT / 'site' / 'index.html'}")


@nox.session(name="build-times")
def build_times(session: nox.Session) -> None:
    """Time the site's build: cold in a fresh clone of HEAD, then 5 rebuilds with nothing changed.

    Prints wall and CPU time and the load average of each build beside the targets
    (cold 120 s, rebuild 10 s); writes build/build-times.json. ``-- --warm 11`` for more.
    """
    session.install("-e", ".[docs]")
    out = ROOT / "build" / "build-times.json"
    session.run("python", "tests/bench/build_times.py", "--out", str(out), *session.posargs)


@nox.session
def serve(session: nox.Session) -> None:
    """Preview the site with live reload on http://127.0.0.1:8000/release-spec/.

    Both languages (the Chinese one under zh/); the notebooks and the reference run
    come from the same caches as ``nox -s docs``. ``-- --dirty`` rebuilds only the
    pages that changed.
    """
    session.install("-e", ".[docs]")
    session.run("mkdocs", "serve", *session.posargs, env=QUIET_ENV)


@nox.session
def offline(session: nox.Session) -> None:
    """Build the offline copy (mkdocs-offline.yml) and zip it to dist/release-spec-offline.zip.

    Unzipped, its release-spec/index.html (English) and release-spec/zh/index.html
    (Chinese) open from the file system, search included, with no server and no network.
    """
    session.install("-e", ".[docs]")
    site = ROOT / "build" / "offline" / "site"
    session.run("mkdocs", "build", "--strict", "-f", "mkdocs-offline.yml", env=QUIET_ENV)
    out = ROOT / "dist" / "release-spec-offline.zip"
    session.run("python", "docs/site_tools/zip_site.py", str(site), str(out))


@nox.session
def release(session: nox.Session) -> None:
    """Run the reference release end to end on the embedded data set."""
    session.install("-e", ".[workbench]")
    session.run("release-spec", "run", "--out", "build/release", *session.posargs, env=QUIET_ENV)
