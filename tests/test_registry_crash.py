"""SIGKILL a writer at random points of registration and promotion; the store must stay sound.

A child process (tests/_registry_child.py) registers and promotes versions in
a loop; the parent kills it after a seeded random delay. After every kill
``verify`` must pass and production must be the last version the child
finished promoting or the one it was promoting, never anything else and never
nothing. The next child takes over the dead one's lock and cleans up its
leftovers, so every trial also exercises recovery from the previous crash.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from fakes import CHILD_ENV, fake_keras_file

from release_spec.store import ModelStore, StaleLockWarning

TRIALS = 30
SEED = 20261129
CHILD = Path(__file__).with_name("_registry_child.py")


def _fake_models(directory: Path, count: int = 3) -> list[Path]:
    """Structurally valid .keras zips (never loaded by Keras here) with 64 KiB of weights."""
    rng = random.Random(SEED)
    paths = []
    for i in range(count):
        paths.append(
            fake_keras_file(directory / f"m{i}.keras", f"m{i}", weights=rng.randbytes(65536))
        )
    return paths


def _wait_ready(log: Path, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not log.read_text().startswith("ready"):
        assert child.poll() is None, f"child exited early with {child.returncode}"
        assert time.monotonic() < deadline, "child never became ready"
        time.sleep(0.002)


def _phase(store: ModelStore) -> str:
    """Where the kill landed, judged from what the dead writer left behind."""
    if list((store.root / "versions").glob(".incoming-*")):
        return "mid-registration"
    if list(store.root.glob(".production.json.*.tmp")):
        return "mid-pointer-write"
    if (store.root / ".lock").read_bytes():
        return "holding the lock"
    return "between operations"


def test_sigkill_during_register_and_promote_never_breaks_the_store(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    models = _fake_models(tmp_path)
    store = ModelStore(tmp_path / "store", create=True)
    store.promote(store.register(models[0]).version)
    phases: Counter[str] = Counter()
    steps = 0
    stale_takeovers = 0
    lock_left_behind = False
    confirmed = [store.production().version]  # type: ignore[union-attr]
    started = time.monotonic()
    last_pid = 0

    for trial in range(TRIALS):
        before = store.production()
        assert before is not None
        log = tmp_path / f"child-{trial}.log"
        log.write_text("")
        with log.open("w") as out:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), str(store.root), *map(str, models)],
                stdout=out,
                env=CHILD_ENV,
            )
        _wait_ready(log, child)
        time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL, "the child must die by the kill, not on its own"
        last_pid = child.pid

        lines = log.read_text().splitlines()
        registered = [line.split()[1] for line in lines if line.startswith("registered ")]
        promoted = [line.split()[1] for line in lines if line.startswith("promoted ")]
        stale = [line for line in lines if line.startswith("stale ")]
        stale_takeovers += len(stale)
        if registered:
            # The child took the lock at least once: it must have found the previous
            # child's record exactly when that child was killed holding the lock.
            assert bool(stale) == lock_left_behind, f"trial {trial}: {stale}"
            assert len(stale) <= 1
        lock_left_behind = bool((store.root / ".lock").read_bytes())
        steps += len(registered) + len(promoted)
        old = promoted[-1] if promoted else before.version
        new = registered[-1] if registered else before.version
        phases[_phase(store)] += 1

        report = store.verify()
        assert report.ok, f"trial {trial}: {report.problems}"
        production = store.production()
        assert production is not None, f"trial {trial}: no production version after the kill"
        assert production.version in {old, new}, (
            f"trial {trial}: production {production.version}, expected {old} or {new}"
        )
        # The pointer's history is exactly the sequence of promotions, including one
        # that committed just before the kill but was never reported.
        confirmed += promoted
        if production.version != confirmed[-1]:
            confirmed.append(production.version)
        assert [*store.production_history(), production.version] == confirmed

    elapsed = time.monotonic() - started
    killed_inside = TRIALS - phases["between operations"]
    print(
        f"\n{TRIALS} SIGKILL trials in {elapsed:.1f} s, {steps} completed steps, "
        f"{stale_takeovers} stale-lock takeovers, kills landed: {dict(phases)}"
    )
    # Most kills must land inside a write, or the trials would prove little.
    assert killed_inside >= TRIALS // 2, phases
    assert stale_takeovers >= 1

    # The next writer takes over the last child's lock and removes its leftovers.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.register(models[1])
    stale = [w for w in caught if issubclass(w.category, StaleLockWarning)]
    assert len(stale) == int(lock_left_behind)
    if lock_left_behind:
        assert f"pid {last_pid} " in str(stale[0].message)
    final = store.verify()
    assert final.ok
    assert final.leftovers == ()
