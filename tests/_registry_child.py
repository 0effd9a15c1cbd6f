"""Child process of tests/test_registry_crash.py: register and promote until killed.

Usage: ``python tests/_registry_child.py STORE MODEL_FILE [MODEL_FILE ...]``

Writes ``ready`` once the store is open, then after every completed step a
line ``registered vNNNN`` or ``promoted vNNNN`` (flushed, so the parent
knows what had certainly finished when it sent SIGKILL), and ``stale ...``
when it took over the lock of a previously killed child. Imports the store
only: no TensorFlow, so it starts in a fraction of a second.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from release_spec.store import ModelStore, StaleLockWarning


def _report_stale(message: Warning | str, *args: object, **kwargs: object) -> None:
    print(f"stale {message}", flush=True)


def main(argv: list[str]) -> None:
    store = ModelStore(argv[1])
    models = [Path(p) for p in argv[2:]]
    warnings.simplefilter("always", StaleLockWarning)
    warnings.showwarning = _report_stale
    print("ready", flush=True)
    step = 0
    while True:
        current = store.production()
        info = store.register(
            models[step % len(models)],
            metrics={"step": step},
            data_hashes={"model": models[step % len(models)].name},
            parent=current.version if current else None,
        )
        print(f"registered {info.version}", flush=True)
        store.promote(info.version)
        print(f"promoted {info.version}", flush=True)
        step += 1


if __name__ == "__main__":
    main(sys.argv)
