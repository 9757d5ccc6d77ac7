"""Circuit states in a local SQLite file: for local runs and tests, shared by threads and processes."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import fields
from pathlib import Path
from typing import Iterator, Union

from .state import BreakerState
from .store import BreakerStore, Mutation, apply_mutation

_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(BreakerState))

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS breaker_state (
    source_name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    half_open_successes INTEGER NOT NULL,
    total_failures INTEGER NOT NULL,
    total_successes INTEGER NOT NULL,
    opened_at TEXT,
    last_error TEXT,
    updated_at TEXT
)
"""

_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM breaker_state"
_UPSERT = (
    f"INSERT OR REPLACE INTO breaker_state ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


class LocalBreakerStore(BreakerStore):
    """A `BreakerStore` in one SQLite file, one row per source.

    Every operation opens its own connection, so an instance can be shared by threads and
    pickled into other processes; `update` runs in a `BEGIN IMMEDIATE` transaction, which
    takes the write lock before reading, so two updaters can never read the same old state.
    """

    def __init__(self, path: Union[str, Path], busy_timeout_seconds: float = 30.0) -> None:
        """Open (and create if needed) the store.

        Args:
            path: The SQLite file; missing parent folders are created.
            busy_timeout_seconds: How long an operation waits for another writer's lock
                before failing with `sqlite3.OperationalError`.
        """
        self.path = Path(path)
        self.busy_timeout_seconds = busy_timeout_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_CREATE_TABLE)

    def get(self, source_name: str) -> BreakerState:
        """See `BreakerStore.get`."""
        with self._connect() as conn:
            return self._read(conn, source_name)

    def update(self, source_name: str, mutate: Mutation) -> BreakerState:
        """See `BreakerStore.update`; `mutate` is called exactly once, under the write lock."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._read(conn, source_name)
                new_state = apply_mutation(source_name, mutate, current)
                if new_state != current:
                    conn.execute(_UPSERT, tuple(getattr(new_state, c) for c in _COLUMNS))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return new_state

    def list(self) -> list[BreakerState]:
        """See `BreakerStore.list`."""
        with self._connect() as conn:
            rows = conn.execute(f"{_SELECT} ORDER BY source_name").fetchall()
        return [_to_state(row) for row in rows]

    def reset(self, source_name: str) -> None:
        """See `BreakerStore.reset`."""
        with self._connect() as conn:
            conn.execute("DELETE FROM breaker_state WHERE source_name = ?", (source_name,))

    def __repr__(self) -> str:
        return f"LocalBreakerStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: autocommit, so transactions are exactly the BEGIN/COMMIT we
        # issue. The default rollback journal (not WAL) also works on network file systems
        # such as the Azure Files share behind a Functions app's HOME.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_seconds, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _read(conn: sqlite3.Connection, source_name: str) -> BreakerState:
        row = conn.execute(f"{_SELECT} WHERE source_name = ?", (source_name,)).fetchone()
        return _to_state(row) if row else BreakerState(source_name=source_name)


def _to_state(row: tuple) -> BreakerState:
    return BreakerState(**dict(zip(_COLUMNS, row)))
