"""A throwaway PostgreSQL server for tests, from Debian's postgresql-15 binaries.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres``
user (``runuser``) in a temporary data directory it owns; it listens on 127.0.0.1
and a free port and is stopped at the end. Missing binaries skip the tests with a
reason, except under CI=true, where they are a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binaries() -> None:
    """Skip (or fail under CI) when the PostgreSQL server binaries are absent."""
    missing = [n for n in ("initdb", "pg_ctl", "postgres") if not (BIN / n).exists()]
    if missing:
        message = f"PostgreSQL server binaries missing in {BIN}: {missing}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield a ``postgresql://`` URL of its ``postgres`` database."""
    require_binaries()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = Path(tempfile.mkdtemp(prefix="release-spec-pg-"))
    if as_root:
        shutil.chown(data, "postgres", "postgres")
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(
        [*prefix, str(BIN / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        env=env,
    )
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
    subprocess.run(
        [
            *prefix,
            str(BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(data / "log"),
            "-w",
            "-t",
            "120",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
        )
        time.sleep(0.1)
        shutil.rmtree(data, ignore_errors=True)
