"""Durable state of the judge service: SQLite (WAL) on one host, PostgreSQL for replicas.

Two tables. ``rollouts`` holds one row per rollout: its configuration, the judge's
state (`release_spec.strategy.judge.CanaryJudge.state` as JSON), the response body of its
latest verdict (so a GET decodes nothing), the look count, whether it is closed and
where its next Prometheus window starts. ``looks`` holds one row per counted look,
keyed by ``(rollout_id, look_id)``: the counts and the response given, which is what
makes a retried POST idempotent.

Every change is one transaction that first locks the rollout's row (SQLite:
``BEGIN IMMEDIATE`` takes the database's write lock; PostgreSQL: ``SELECT ... FOR
UPDATE``), so replicas behind a load balancer, or processes sharing a SQLite file,
never interleave two looks of one rollout. SQLite runs with ``journal_mode=WAL`` and
``synchronous=NORMAL`` by default: a commit has reached the operating system before it
returns, so killing the service (SIGKILL) never loses an acknowledged look; a power
loss or a crash of the operating system can lose the last commits. ``synchronous=FULL``
(``judge serve --sqlite-synchronous full``) syncs the log to disk at every commit and
covers those too, at the price of an fsync per group of looks.
"""

from __future__ import annotations

import abc
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_SECONDS",
    "SYNCHRONOUS",
    "PostgresStore",
    "RetryError",
    "RolloutRow",
    "SQLiteStore",
    "Store",
    "Tx",
    "open_store",
]


class RetryError(Exception):
    """Another writer created the same rollout at the same moment: run the operation again."""


@dataclass(frozen=True)
class RolloutRow:
    """One stored rollout (JSON columns kept as text)."""

    id: str
    config: str
    source: str | None
    state: str
    verdict: str
    looks: int
    closed: bool
    measured_at: float


_COLUMNS = "id, config, source, state, verdict, looks, closed, measured_at"
_JOINED = ", ".join(f"r.{c}" for c in _COLUMNS.split(", "))


def _row(values: tuple[Any, ...] | None) -> RolloutRow | None:
    if values is None:
        return None
    rid, config, source, state, verdict, looks, closed, measured_at = values
    return RolloutRow(
        str(rid),
        str(config),
        None if source is None else str(source),
        str(state),
        str(verdict),
        int(looks),
        bool(closed),
        float(measured_at),
    )


def _mutable(row: RolloutRow) -> tuple[Any, ...]:
    """The columns after ``id``, in `_COLUMNS` order, as the database takes them."""
    return (
        row.config,
        row.source,
        row.state,
        row.verdict,
        row.looks,
        int(row.closed),
        row.measured_at,
    )


class Tx:
    """Statements of one transaction; obtained from `Store.transaction`."""

    def __init__(self, cursor: Any, param: str, lock_clause: str) -> None:
        self._cur = cursor
        self._p = param
        self._lock = lock_clause

    def _q(self, sql: str) -> str:
        return sql.replace("?", self._p)

    def get(self, rollout_id: str) -> RolloutRow | None:
        """Read a rollout and lock its row until the transaction ends."""
        self._cur.execute(
            self._q(f"SELECT {_COLUMNS} FROM rollouts WHERE id = ?{self._lock}"), (rollout_id,)
        )
        return _row(self._cur.fetchone())

    def insert(self, row: RolloutRow) -> None:
        """Create a rollout; `RetryError` if another writer created it meanwhile."""
        self._cur.execute(
            self._q(
                f"INSERT INTO rollouts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            (row.id, *_mutable(row)),
        )
        if self._cur.rowcount != 1:
            raise RetryError(row.id)

    def update(self, row: RolloutRow) -> None:
        """Replace a rollout's mutable columns."""
        self._cur.execute(
            self._q(
                "UPDATE rollouts SET config = ?, source = ?, state = ?, verdict = ?, looks = ?, "
                "closed = ?, measured_at = ? WHERE id = ?"
            ),
            (*_mutable(row), row.id),
        )

    def get_with_look(
        self, rollout_id: str, look_id: str
    ) -> tuple[RolloutRow | None, tuple[str, str] | None]:
        """The rollout (locked, as `get`) and ``(counts, response)`` of its look ``look_id``."""
        if self._lock:
            # PostgreSQL: the look must be read after the row lock is granted. A join
            # locking the rollout re-reads only the rollout after waiting, not the look
            # another transaction inserted meanwhile.
            row = self.get(rollout_id)
            if row is None:
                return None, None
            self._cur.execute(
                self._q("SELECT counts, response FROM looks WHERE rollout_id = ? AND look_id = ?"),
                (rollout_id, look_id),
            )
            seen = self._cur.fetchone()
            return row, None if seen is None else (str(seen[0]), str(seen[1]))
        # SQLite: BEGIN IMMEDIATE already holds the write lock; one statement for both.
        self._cur.execute(
            f"SELECT {_JOINED}, l.counts, l.response FROM rollouts r LEFT JOIN looks l "
            "ON l.rollout_id = r.id AND l.look_id = ? WHERE r.id = ?",
            (look_id, rollout_id),
        )
        found = self._cur.fetchone()
        if found is None:
            return None, None
        return _row(found[:-2]), None if found[-2] is None else (str(found[-2]), str(found[-1]))

    def record_look(
        self,
        rollout_id: str,
        look_id: str,
        counts: str,
        response: str,
        after: tuple[str, str, int, float],
    ) -> None:
        """Record a counted look and the rollout after it (state, verdict, looks, measured_at)."""
        self._cur.execute(
            self._q(
                "INSERT INTO looks (rollout_id, look_id, counts, response) VALUES (?, ?, ?, ?)"
            ),
            (rollout_id, look_id, counts, response),
        )
        self._cur.execute(
            self._q(
                "UPDATE rollouts SET state = ?, verdict = ?, looks = ?, measured_at = ? "
                "WHERE id = ?"
            ),
            (*after, rollout_id),
        )


class Store(abc.ABC):
    """Where rollouts live. Use `transaction` for every change; `read` for a GET."""

    #: True when calls block on the network (run them off the event loop).
    blocking: bool = False

    @abc.abstractmethod
    def transaction(self) -> Any:
        """Context manager yielding a `Tx`; commits on success, rolls back on an exception."""

    @abc.abstractmethod
    def read(self, rollout_id: str) -> RolloutRow | None:
        """The rollout as last committed, without locking."""

    @abc.abstractmethod
    def counted(self, rollout_id: str) -> list[tuple[str, str]]:
        """Every counted look of a rollout: ``(look_id, counts)`` (for audits and tests)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, config TEXT NOT NULL, source TEXT, state TEXT NOT NULL,
    verdict TEXT NOT NULL, looks INTEGER NOT NULL, closed INTEGER NOT NULL,
    measured_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS looks (
    rollout_id TEXT NOT NULL, look_id TEXT NOT NULL, counts TEXT NOT NULL,
    response TEXT NOT NULL, PRIMARY KEY (rollout_id, look_id)
);
"""
# ``looks`` keeps its rowid: each look's row (its response is most of the row) lands at
# the end of the table, and only the small key goes into the (rollout_id, look_id)
# index at a place set by the id. A WITHOUT ROWID table stores the whole row by the key,
# so a batch of looks of many rollouts dirties a page per look, each written to the log
# at commit: twice the cost of a look's commit. (A file created before keeps its table;
# the statements are the same for both.)


#: What `SQLiteStore` accepts as ``synchronous``.
SYNCHRONOUS = ("NORMAL", "FULL")

#: Seconds between two background checkpoints of a `SQLiteStore`.
CHECKPOINT_SECONDS = 0.5
# The connection's automatic checkpoint (pages of log, 4 KiB each): 64 MiB, far above
# what half a second of looks writes.
_BACKSTOP_PAGES = 16384


class SQLiteStore(Store):
    """SQLite in WAL mode; one connection shared by the service's threads under a lock.

    Checkpoints (copying the write-ahead log into the database file, with an fsync)
    run on a thread of their own every `CHECKPOINT_SECONDS`, so no request waits for
    one; the connection's own automatic checkpoint stays as a backstop at a size a
    working checkpointer never lets the log reach.

    Args:
        path: the database file (created with its tables if absent).
        synchronous: ``"NORMAL"`` (survives the process's death) or ``"FULL"`` (also
            a power loss); see the module's docstring.

    Examples:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     store = SQLiteStore(os.path.join(d, "judge.db"))
        ...     print(store.read("r1"))
        ...     store.close()
        None
    """

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = Path(path)
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
            self._conn.executescript(_SQLITE_SCHEMA)
        except sqlite3.Error as e:
            raise ValueError(f"--db {path}: cannot open the SQLite database: {e}") from e
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                try:
                    # PASSIVE copies what it can without waiting for writers or readers.
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue  # the backstop checkpoint and the next round cover it
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(cur, "?", "")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def read(self, rollout_id: str) -> RolloutRow | None:
        with self._lock:
            cur = self._conn.execute(f"SELECT {_COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,))
            return _row(cur.fetchone())

    def counted(self, rollout_id: str) -> list[tuple[str, str]]:
        with self._lock:
            cur = self._conn.execute(
                "SELECT look_id, counts FROM looks WHERE rollout_id = ? ORDER BY look_id",
                (rollout_id,),
            )
            return [(str(a), str(b)) for a, b in cur.fetchall()]

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join()
        with self._lock:
            self._conn.close()


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, config TEXT NOT NULL, source TEXT, state TEXT NOT NULL,
    verdict TEXT NOT NULL, looks INTEGER NOT NULL, closed INTEGER NOT NULL,
    measured_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS looks (
    rollout_id TEXT NOT NULL, look_id TEXT NOT NULL, counts TEXT NOT NULL,
    response TEXT NOT NULL, PRIMARY KEY (rollout_id, look_id)
);
"""


class PostgresStore(Store):
    """PostgreSQL through psycopg 3: a small pool of connections, row locks per rollout.

    Args:
        url: a libpq URL, ``postgresql://user@host:port/db``.
        pool_size: connections kept open (one per concurrent request thread).
    """

    blocking = True

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        import psycopg  # imported here: the SQLite path must not need it

        self._psycopg = psycopg
        self.url = url
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._size = pool_size
        try:
            with self._connection() as conn, conn.transaction():
                # Replicas starting together must not race on CREATE TABLE.
                conn.execute("SELECT pg_advisory_xact_lock(7243901)")
                conn.execute(_PG_SCHEMA)
        except psycopg.Error as e:
            raise ValueError(f"--db {_redact(url)}: cannot use the PostgreSQL database: {e}") from e

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._psycopg.connect(self.url, autocommit=True)
        try:
            yield conn
        except self._psycopg.OperationalError:
            conn.close()  # a broken connection is not returned to the pool
            raise
        if conn.closed:
            return
        if self._pool.qsize() < self._size:
            self._pool.put(conn)
        else:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield Tx(cur, "%s", " FOR UPDATE")

    def read(self, rollout_id: str) -> RolloutRow | None:
        with self._connection() as conn:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM rollouts WHERE id = %s", (rollout_id,))
            return _row(cur.fetchone())

    def counted(self, rollout_id: str) -> list[tuple[str, str]]:
        with self._connection() as conn:
            cur = conn.execute(
                "SELECT look_id, counts FROM looks WHERE rollout_id = %s ORDER BY look_id",
                (rollout_id,),
            )
            return [(str(a), str(b)) for a, b in cur.fetchall()]

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


def open_store(db: str, *, sqlite_synchronous: str = "NORMAL") -> Store:
    """A store for ``--db``: a ``postgresql://`` URL, or a SQLite path (``sqlite:///`` optional).

    ``sqlite_synchronous`` applies to a SQLite file (see `SQLiteStore`).

    Raises:
        ValueError: the database cannot be opened, naming it.

    Examples:
        >>> _redact("postgresql://judge:secret@127.0.0.1:5432/judge")
        'postgresql://judge:***@127.0.0.1:5432/judge'
    """
    if db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db)
    path = db.removeprefix("sqlite:///") if db.startswith("sqlite:///") else db
    if not path:
        raise ValueError("--db must be a file path or a postgresql:// URL")
    return SQLiteStore(path, synchronous=sqlite_synchronous)
