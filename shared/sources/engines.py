"""One SQLAlchemy engine per database per process, without a connection pool.

A new engine per job paid, on every small table, what SQLAlchemy keeps per engine: the dialect's
set-up queries on the first connection, and an empty compiled-statement cache (it is keyed by
the dialect object), so reflection's catalog queries were built and compiled again for every
table: ~30 ms CPU of a ~300 ms small PostgreSQL job.

The jobs of a database share its engine here, but not connections: the engine has a `NullPool`
(each checkout opens a connection, each return closes it), and a job keeps its one connection
for its catalog queries (`SqlSource.catalog`) until it ends. An engine shared with a queue pool
was tried and reverted: the local runtime's simulated kill (an exception at a Python call in the
job's thread) could stop a thread inside the pool's condition-variable lock and leave it held.
A `NullPool` takes no lock; what the shared engine still locks is SQLAlchemy's first-connect
mutex (a C lock held in a `with` block, released by any exception) and its compiled cache's
(taken without waiting). Nothing here locks either: two jobs that find no engine build one
each, and one of them is kept.

May import: SQLAlchemy only.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

MAX_ENGINES = 64
"""Engines kept per process (one per database URL and connect arguments); past it the cache is
emptied (an engine without a pool holds no connection: dropping it closes nothing)."""

_engines: dict[tuple[str, tuple[tuple[str, Any], ...]], sa.Engine] = {}


def shared_engine(url: sa.URL, connect_args: dict[str, Any]) -> sa.Engine:
    """The process's engine for `url` and `connect_args` (made on first use; no pool)."""
    key = (url.render_as_string(hide_password=False), tuple(sorted(connect_args.items())))
    engine = _engines.get(key)
    if engine is None:
        if len(_engines) >= MAX_ENGINES:
            _engines.clear()
        engine = _engines.setdefault(key, sa.create_engine(url, connect_args=connect_args, poolclass=NullPool))
    return engine


def clear() -> None:
    """Forget every engine (tests)."""
    _engines.clear()
