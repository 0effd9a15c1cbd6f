"""The command line: exit codes, one-line errors, store subcommands, a light import."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fakes import CHILD_ENV, fake_keras_file
from hypothesis import given, settings
from hypothesis import strategies as st

from release_spec.cli import EXIT_OK, EXIT_STOPPED, EXIT_USAGE, main
from release_spec.store.registry import ModelStore


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "release_spec", *args],
        capture_output=True,
        text=True,
        env=CHILD_ENV,
        cwd=cwd,
        timeout=600,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("release-spec: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("plan_text", "names"),
    [
        ("[finetune]\nepochs = 0\n", "finetune.epochs"),
        ("[finetune]\nepoch = 3\n", "finetune.epoch: unknown key"),
        ("[release]\nmax_latency_drift = 'fast'\n", "release.max_latency_drift: expected a number"),
        ("[release\n", "invalid TOML"),
        ("[phased_rollout]\nmin_canary_requests = [1]\n", "phased_rollout.min_canary_requests"),
        (
            "[[phased_rollout.steps]]\nshare_pct = 50.0\nmin_canary_requests = 1\n"
            "max_bake_minutes = 1.0\n"
            "[[phased_rollout.steps]]\nshare_pct = 25.0\nmin_canary_requests = 1\n"
            "max_bake_minutes = 1.0\n",
            "phased_rollout.steps: expected strictly increasing shares",
        ),
        (
            "[phased_rollout]\nshares = [5.0, 100.0]\n",
            "phased_rollout.shares: no longer a key; the steps are one [[phased_rollout.steps]]",
        ),
        ("[phased_rollout]\nsteps = 5.0\n", "phased_rollout.steps: expected a non-empty array"),
        ("[monitoring]\npsi_warning = 0.5\n", "monitoring.psi_warning: expected at most psi_alert"),
    ],
)
def test_bad_plan_exits_2_with_one_line_naming_the_key(tmp_path, plan_text, names):
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text)
    proc = _cli("run", "--plan", str(plan), "--out", str(tmp_path / "out"))
    assert proc.returncode == EXIT_USAGE
    line = _one_line_error(proc)
    assert names in line
    assert str(plan) in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ((), "command"),
        (("fly",), "invalid choice: 'fly'"),
        (("run", "--scenario", "nope"), "--scenario"),
        (("run", "--seed", "-3"), "--seed"),
        (("run", "--plan", "/no/such/plan.toml"), "cannot read"),
        (("store", "list"), "--store"),
        (("run", "--seed", "4294967296"), "--seed: expected an integer in [0, 4294967295]"),
        (
            ("simulate", "--canary-fraction", "1.5"),
            "--canary-fraction: expected a number in (0, 1)",
        ),
        (("simulate", "--runs", "0"), "--runs"),
        (("simulate", "--baseline-error", "0.6", "--regression", "0.5"), "below 1"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, names, capsys):
    assert main(list(args)) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert names in err[0]


def test_simulate_prints_both_judges(capsys):
    code = main(["simulate", "--runs", "300", "--looks", "120", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    table = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["sequential"], ["naive"])
    ]
    rows = {r[0]: r[1:] for r in table if len(r) == 5}
    seq, naive = (float(rows[k][0]) for k in ("sequential", "naive"))
    assert seq <= 0.05 < naive
    assert float(rows["sequential"][1]) > 0.95
    assert float(rows["sequential"][2]) > 0.95  # within 2,500 canary requests
    assert float(rows["sequential"][3]) < 610  # median exposure
    assert "by 2500" in out
    assert "fixed-horizon canary requests at 80% power (one-sided): 610" in out
    assert "within the bound: yes" in out


def test_importing_the_cli_does_not_import_tensorflow():
    code = (
        "import sys, release_spec.cli; release_spec.cli.build_parser(); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_script_and_module_both_answer_help():
    assert _cli("--help").returncode == 0
    script = shutil.which("release-spec", path=str(Path(sys.executable).parent))
    assert script is not None
    proc = subprocess.run([script, "run", "--help"], capture_output=True, text=True, env=CHILD_ENV)
    assert proc.returncode == 0
    assert "--scenario" in proc.stdout


@pytest.fixture
def store_dir(tmp_path):
    store = ModelStore(tmp_path / "store", create=True)
    for tag in ("a", "b"):
        info = store.register(fake_keras_file(tmp_path / f"{tag}.keras", tag))
        store.promote(info.version)
    return tmp_path / "store"


def test_store_list_verify_backup_rollback_restore(store_dir, tmp_path, capsys):
    s = str(store_dir)
    assert main(["store", "list", "--store", s]) == EXIT_OK
    out = capsys.readouterr().out
    assert "* v0002" in out
    assert "production: v0002" in out

    assert main(["store", "verify", "--store", s]) == EXIT_OK
    assert capsys.readouterr().out.startswith("ok: 2 version(s), production v0002")

    backups = tmp_path / "backups"
    backups.mkdir()
    assert main(["store", "backup", "--store", s, "--dest", str(backups)]) == EXIT_OK
    (archive,) = backups.iterdir()
    capsys.readouterr()

    assert main(["store", "rollback", "--store", s]) == EXIT_OK
    assert "production is now v0001" in capsys.readouterr().out
    assert ModelStore(store_dir).production().version == "v0001"
    # Nothing earlier than v0001: a refused operation exits 2 with one line.
    assert main(["store", "rollback", "--store", s]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("release-spec: error: store rollback: no earlier production version")

    restored = tmp_path / "restored"
    args = ["store", "restore", "--store", str(restored), "--archive", str(archive)]
    assert main(args) == EXIT_OK
    assert "production v0002" in capsys.readouterr().out
    assert ModelStore(restored).verify().ok


def test_store_verify_exits_3_on_a_flipped_byte(store_dir, capsys):
    model = store_dir / "versions" / "v0001" / "model.keras"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert main(["store", "verify", "--store", str(store_dir)]) == EXIT_STOPPED
    out = capsys.readouterr().out
    assert "problem:" in out
    assert "FAILED" in out


def test_store_commands_name_missing_arguments(store_dir, tmp_path, capsys):
    for action in ("list", "verify", "backup", "rollback"):
        assert main(["store", action, "--store", str(tmp_path / "nothing")]) == EXIT_USAGE
        assert f"store {action}: --store {tmp_path / 'nothing'}: no such directory" in (
            capsys.readouterr().err
        )
    assert main(["store", "list", "--store", str(tmp_path)]) == EXIT_USAGE
    assert "not a model store" in capsys.readouterr().err
    assert main(["store", "backup", "--store", str(store_dir)]) == EXIT_USAGE
    assert "--dest" in capsys.readouterr().err
    assert main(["store", "restore", "--store", str(store_dir)]) == EXIT_USAGE
    assert "--archive" in capsys.readouterr().err


@pytest.mark.slow
def test_run_regression_from_the_command_line_exits_3(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[data]\ntarget_train_copies = 2\n[pretrain]\nepochs = 8\n"
        "[finetune]\nepochs = 3\nmax_attempts = 2\n[release]\nsoak_seconds = 1.0\n"
        # A 1-s soak cannot tell a leak from a one-off allocation (tested in test_gates.py).
        "max_rss_slope_mb_per_min = 1000.0\n"
    )
    out = tmp_path / "out"
    proc = _cli(
        "run", "--plan", str(plan), "--out", str(out), "--scenario", "regression", "--seed", "0"
    )
    assert proc.returncode == EXIT_STOPPED, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("[setup] scenario regression")
    assert any(line.startswith("[pretrain] passed") for line in lines)
    assert any(line.startswith("[finetune] failed after 2 attempt(s)") for line in lines)
    assert any("finetune attempt 1 epoch  3/3" in line for line in lines)
    assert lines[-2].startswith("outcome: stopped; production v0001")
    assert (
        lines[-1]
        == "stopped: stopped by an offline gate before any live traffic; production unchanged"
    )
    report = json.loads((out / "report.json").read_text())
    assert report["failed_gates"][0] in lines[-2]
    assert report["production"]["version"] == "v0001"
    assert not report["production"]["candidate_promoted"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("release-spec: error: ")
    return err[0]


def test_store_problems_exit_2_with_one_line_naming_the_file(store_dir, tmp_path, capsys):
    s = str(store_dir)
    missing = tmp_path / "missing.tar.gz"
    args = ["store", "restore", "--store", str(tmp_path / "r"), "--archive", str(missing)]
    assert main(args) == EXIT_USAGE
    assert f"{missing}: no such backup archive" in _one_line(capsys)

    taken = tmp_path / "taken.tar.gz"
    taken.write_bytes(b"")
    assert main(["store", "backup", "--store", s, "--dest", str(taken)]) == EXIT_USAGE
    assert f"{taken} exists" in _one_line(capsys)

    pointer = store_dir / "production.json"
    pointer.write_bytes(pointer.read_bytes()[:20])  # truncated by a crash or an edit
    assert main(["store", "list", "--store", s]) == EXIT_USAGE
    assert f"store list: {pointer}: " in _one_line(capsys)
    assert main(["store", "rollback", "--store", s]) == EXIT_USAGE
    assert str(pointer) in _one_line(capsys)


@pytest.fixture
def lock_holder(store_dir, hold_lock):
    return hold_lock(store_dir)


def test_store_locked_by_another_writer_exits_2_naming_the_holder(store_dir, lock_holder, capsys):
    s = str(store_dir)
    assert main(["store", "rollback", "--store", s]) == EXIT_USAGE
    line = _one_line(capsys)
    assert f"store rollback: model store is locked by pid {lock_holder.pid} on host" in line
    assert f"lock file {store_dir / '.lock'}" in line
    assert ModelStore(store_dir).production().version == "v0002"  # nothing changed
    # Readers need no lock.
    assert main(["store", "verify", "--store", s]) == EXIT_OK


def test_run_out_is_a_file_exits_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "report.txt"
    out.write_text("not a directory")
    assert main(["run", "--out", str(out)]) == EXIT_USAGE
    assert f"--out {out}: exists and is not a directory" in _one_line(capsys)
    assert main(["run", "--out", str(out / "sub")]) == EXIT_USAGE
    assert f"--out {out / 'sub'}: cannot create the directory" in _one_line(capsys)


def test_unreadable_plans_exit_2_naming_the_file(tmp_path, capsys):
    binary = tmp_path / "plan.toml"
    binary.write_bytes(b"\xff\xfe\x00seed = 1")
    for plan in (tmp_path, binary):
        assert main(["run", "--plan", str(plan), "--out", str(tmp_path / "out")]) == EXIT_USAGE
        assert f"plan {plan}: cannot read" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


# Trains one quick epoch; thresholds at 0 so the pre-trained model passes and is registered.
QUICK_PLAN = (
    "[data]\ntarget_train_copies = 1\n"
    "[pretrain]\nepochs = 1\nmax_attempts = 1\nmin_accuracy_lower = 0.0\nmin_macro_f1_lower = 0.0\n"
)


@pytest.mark.slow
def test_run_on_a_locked_store_exits_2_naming_the_holder(store_dir, lock_holder, tmp_path):
    # The store already holds v0001/v0002 (production): this run's registration needs the lock.
    out = store_dir.parent
    plan = tmp_path / "quick.toml"
    plan.write_text(QUICK_PLAN)
    proc = _cli("run", "--plan", str(plan), "--out", str(out), "--no-progress")
    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    line = _one_line_error(proc)
    assert f"error: run stopped: model store is locked by pid {lock_holder.pid} on host" in line
    assert str(store_dir / ".lock") in line
    assert "[pretrain] passed" in proc.stdout
    assert ModelStore(store_dir).production().version == "v0002"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["pointer", "not_a_store"])
def test_run_on_a_damaged_store_exits_2_naming_the_file(store_dir, tmp_path, damage):
    if damage == "pointer":
        named = store_dir / "production.json"
        named.write_text("{")
    else:
        shutil.rmtree(store_dir)
        store_dir.mkdir()
        (store_dir / "notes.txt").write_text("someone else's files")
        named = store_dir
    proc = _cli("run", "--out", str(store_dir.parent), "--no-progress")
    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    line = _one_line_error(proc)
    assert (
        f"run stopped: {named}: " in line
        or f"run stopped: refusing to create a model store in non-empty {named}" in line
    )
    assert "[pretrain]" not in proc.stdout  # refused before any training


# --------------------------------------------- issue 8: environment problems exit 2

_HIDE_WORKBENCH = """
import sys
from importlib.abc import MetaPathFinder

HIDDEN = {"tensorflow", "keras", "sklearn", "matplotlib", "psutil", "tqdm"}


class BaseInstall(MetaPathFinder):
    # A base install (no [workbench] extra): these top-level packages do not exist.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, BaseInstall())
from release_spec.cli import main

code = main(sys.argv[1:])
print("imported:", sorted(m for m in HIDDEN if m in sys.modules))
sys.exit(code)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=CHILD_ENV,
        timeout=600,
    )


def test_run_on_a_base_install_exits_2_naming_the_extra_and_creates_nothing(tmp_path):
    out = tmp_path / "out"
    proc = _python(_HIDE_WORKBENCH, "run", "--out", str(out))
    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    line = _one_line_error(proc)
    assert 'pip install "release-spec[workbench]"' in line
    assert "missing: tensorflow, keras, sklearn, matplotlib, psutil, tqdm" in line
    assert not out.exists()
    assert "imported: []" in proc.stdout
    # The other commands do not need the extra.
    proc = _python(_HIDE_WORKBENCH, "simulate", "--runs", "20", "--looks", "10")
    assert proc.returncode in (EXIT_OK, EXIT_STOPPED), proc.stderr[-2000:]


_RUN_AND_REPORT_IMPORTS = """
import sys
from release_spec.cli import main

code = main(sys.argv[1:])
print("tensorflow imported:", "tensorflow" in sys.modules)
sys.exit(code)
"""


@pytest.fixture
def read_only_dir(tmp_path):
    """An existing directory nobody can write into: a read-only bind mount as root, else 0o555."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(target), str(target)], capture_output=True)
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mount --bind failed: {mounted.stderr!r}")
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_run_out_read_only_exits_2_before_importing_tensorflow(read_only_dir):
    proc = _python(_RUN_AND_REPORT_IMPORTS, "run", "--out", str(read_only_dir), "--no-progress")
    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    line = _one_line_error(proc)
    assert f"--out {read_only_dir}: cannot write into the directory: " in line
    assert "tensorflow imported: False" in proc.stdout
    assert list(read_only_dir.iterdir()) == []


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: writing a report of 1 MiB into it fails with ENOSPC (needs root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root to mount a tmpfs; CI runs as root")
        pytest.skip("needs root to mount a tmpfs")
    point = tmp_path / "disk"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_a_full_disk_while_writing_the_report_exits_2_naming_the_file(
    full_disk, monkeypatch, capsys
):
    import release_spec.workbench.pipeline
    from release_spec.store import atomic_write

    def writes_a_large_report(plan, out, **kwargs):
        atomic_write(out / "report.md", b"x" * 2**20)  # the kernel says ENOSPC
        raise AssertionError("the write above must fail")

    monkeypatch.setattr(release_spec.workbench.pipeline, "run_pipeline", writes_a_large_report)
    assert main(["run", "--out", str(full_disk), "--no-progress"]) == EXIT_USAGE
    line = _one_line(capsys)
    assert str(full_disk / "report.md") in line
    assert "No space left on device" in line
    assert [p.name for p in full_disk.iterdir()] == []  # no half-written file

    def figure_fails(plan, out, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "drift.png"))

    monkeypatch.setattr(release_spec.workbench.pipeline, "run_pipeline", figure_fails)
    assert main(["run", "--out", str(full_disk), "--no-progress"]) == EXIT_USAGE
    assert f"error: cannot write {full_disk / 'drift.png'}: No space left on device" in (
        _one_line(capsys)
    )


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--runs", "1000000000"), "--runs: expected an integer in [1, 100000], got 1000000000"),
        (("--looks", "1000000000"), "--looks: expected an integer in [1, 100000], got 1000000000"),
        (("--runs", "100000", "--looks", "100000"), "--runs x --looks must be at most 4194304"),
        (
            ("--canary-per-look", "1000000000000", "--canary-fraction", "0.001"),
            "--canary-per-look / --canary-fraction must be at most 1099511627776",
        ),
    ],
)
def test_simulate_sizes_past_the_caps_exit_2_naming_the_limit(args, names, capsys):
    # Before the caps: a MemoryError traceback, exit 1.
    assert main(["simulate", *args]) == EXIT_USAGE
    assert names in _one_line(capsys)


def test_simulate_help_states_the_limits(capsys):
    assert main(["simulate", "--help"]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())
    assert "at most 100000; runs x looks at most 4194304" in out


_TOKENS = [
    "simulate",
    "store",
    "list",
    "verify",
    "backup",
    "rollback",
    "restore",
    "--store",
    "STORE",
    "--dest",
    "--archive",
    "--overwrite",
    "--runs",
    "--looks",
    "--canary-per-look",
    "--canary-fraction",
    "--alpha",
    "--seed",
    "--baseline-error",
    "--regression",
    "--within",
    "--help",
    "-h",
    "--bogus",
    "-x",
    "1",
    "2",
    "3",
    "5",
    "0",
    "-1",
    "0.5",
    "0.02",
    "nan",
    "inf",
    "-inf",
    "1e9",
    "1000000000",
    "abc",
    "",
    "--",
    "=",
    "--runs=3",
    "--looks=0",
]


@settings(max_examples=60)
@given(st.lists(st.sampled_from(_TOKENS), max_size=8), st.sampled_from([(), ("simulate",)]))
def test_the_argument_parser_never_raises(tokens, prefix):
    """Any argument list gives exit 0, 2 or 3, and exit 2 comes with exactly one line."""
    with tempfile.TemporaryDirectory() as empty:
        argv = [empty if t == "STORE" else t for t in (*prefix, *tokens)]
        if argv[:1] == ["simulate"]:
            # Small sizes first: later tokens may override them, within the caps.
            argv[1:1] = ["--runs", "4", "--looks", "4"]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        assert isinstance(code, int)
        assert code in (EXIT_OK, EXIT_USAGE, EXIT_STOPPED), (argv, err.getvalue())
        if code == EXIT_USAGE:
            lines = err.getvalue().strip().splitlines()
            assert len(lines) == 1, (argv, lines)
            assert lines[0].startswith("release-spec: error: ")
        assert os.listdir(empty) == []  # nothing written into the store directory


# -- help texts (issue 10 item 4) ---------------------------------------------


def _subparser(name):
    import argparse

    from release_spec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["run", "simulate", "export"])
def test_help_states_every_default(command):
    """Every option with a default names it in its help line."""
    import argparse

    for action in _subparser(command)._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            continue
        shown = str(action.default)
        assert action.help, (command, action.option_strings)
        assert "default" in action.help, (command, action.option_strings)
        assert shown in action.help, (command, action.option_strings, shown)


def test_run_help_describes_each_scenario(capsys):
    scenario = next(a for a in _subparser("run")._actions if "--scenario" in a.option_strings)
    assert scenario.help
    assert not scenario.help.startswith("what to release")
    assert main(["run", "--help"]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())
    for scenario, fate in (
        ("default:", "expected released"),
        ("regression:", "expected stopped by an offline gate"),
        ("live- regression:", "expected rolled back during the rollout"),
    ):
        assert scenario in out
        assert fate in out
    assert "(default: build/release)" in out


def test_store_help_describes_every_action(capsys):
    import re

    assert main(["store", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for action in ("list", "verify", "backup", "restore", "rollback"):
        assert re.search(rf"^  {action} +\S", out, re.MULTILINE), action
    rollback = " ".join(out.split("rollback  ", 1)[1].split("\n\n")[0].split())
    assert "the version that was production before the current one was promoted" in rollback


def test_bare_command_prints_usage_and_one_error_line(capsys):
    import re

    assert main([]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out.startswith("usage: release-spec")
    for name in ("run", "store", "simulate", "export", "judge"):
        assert re.search(rf"^    {name} +\S", out, re.MULTILINE), name
    assert err.strip().splitlines() == [
        "release-spec: error: give a command: run, store, simulate, export, judge"
    ]


def test_version(capsys):
    from release_spec import __version__

    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"release-spec {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--canary-per-look", "0"), "--canary-per-look: expected an integer >= 1, got 0"),
        (("--within", "-5"), "--within: expected an integer >= 1, got -5"),
        (("--canary-fraction", "0"), "--canary-fraction: expected a number in (0, 1), got 0"),
    ],
)
def test_range_errors_read_as_english(args, message, capsys):
    assert main(["simulate", *args]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "must be in >=" not in err


def test_store_list_has_a_header_and_aligned_columns(store_dir, capsys):
    assert main(["store", "list", "--store", str(store_dir)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # header, two versions, production
    header = lines[0]
    assert header.split() == ["version", "sha256", "(first", "16)", "created", "parent"]
    assert lines[1].startswith("  v0001")
    assert lines[2].startswith("* v0002")
    for column in ("sha256", "created", "parent"):
        start = header.index(column)
        assert lines[1][start - 2 : start] == "  "
        assert lines[1][start] != " "
        assert lines[2][start] != " "
    assert lines[2].split()[-1] == "-"  # registered without a parent
    assert lines[3] == "production: v0002 (marked *)"


def test_store_list_of_an_empty_store_prints_no_header(tmp_path, capsys):
    ModelStore(tmp_path / "store", create=True)
    assert main(["store", "list", "--store", str(tmp_path / "store")]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["production: none"]
