"""One SQLAlchemy engine per source connection, shared by the jobs that run on it.

A job used to create its own engine, and each new engine costs three things a small job notices:
a new dialect (its first connection runs the dialect's initialisation queries), an empty cache
of compiled statements (SQLAlchemy keys the cache by dialect, so reflection's large catalog
queries were compiled again for every table) and a new database connection (on PostgreSQL a
server process per connection). The jobs of a source now borrow one engine: same URL and
driver options, same engine, whatever the job or its thread.

What keeps the sharing safe:

- A connection is pinged when it leaves the pool (`pool_pre_ping`): one the server or the
  network dropped while it was idle is replaced, never handed to a job.
- The pool never makes a job wait (no overflow limit): concurrent jobs open connections as
  they did with engines of their own; connections beyond the pool size close when returned.
- A connection goes back to the pool rolled back, with its isolation level reset (SQLAlchemy's
  reset on return), so no transaction or snapshot outlives the job that opened it.
- An engine no job has borrowed for `IDLE_SECONDS` is disposed (its connections closed), so a
  long-lived Functions worker holds no connection between runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa

IDLE_SECONDS = 10.0
"""How long an engine that no job uses keeps its pooled connections."""


@dataclass
class _Shared:
    engine: sa.Engine
    users: int = 0
    last_used: float = 0.0
    """`time.monotonic()` when the last job gave it back."""
    timer: bool = False
    """Whether an idle check is scheduled (one at a time per engine)."""


_lock = threading.Lock()
_shared: dict[tuple[str, str], _Shared] = {}
_by_engine: dict[int, tuple[str, str]] = {}


def _key(url: sa.URL, connect_args: Mapping[str, Any]) -> tuple[str, str]:
    return url.render_as_string(hide_password=False), repr(sorted(connect_args.items()))


def borrow(url: sa.URL, connect_args: Mapping[str, Any]) -> sa.Engine:
    """The shared engine of this URL and driver options (created on first use); give it back
    with `give_back` when the job is done."""
    key = _key(url, connect_args)
    with _lock:
        entry = _shared.get(key)
        if entry is None:
            engine = sa.create_engine(url, connect_args=dict(connect_args), pool_pre_ping=True, max_overflow=-1)
            entry = _shared[key] = _Shared(engine)
            _by_engine[id(engine)] = key
        entry.users += 1
        return entry.engine


def give_back(engine: sa.Engine) -> None:
    """A job is done with `engine`; once no job uses it for `IDLE_SECONDS`, it is disposed."""
    with _lock:
        key = _by_engine.get(id(engine))
        entry = _shared.get(key) if key else None
        if entry is None or entry.engine is not engine:
            engine.dispose()  # not (or no longer) shared: nobody else holds it
            return
        entry.users -= 1
        entry.last_used = time.monotonic()
        if entry.users == 0 and not entry.timer:
            entry.timer = True
            _schedule(key, IDLE_SECONDS)


def _schedule(key: tuple[str, str], seconds: float) -> None:
    timer = threading.Timer(seconds, _dispose_if_idle, (key,))
    timer.daemon = True
    timer.start()


def _dispose_if_idle(key: tuple[str, str]) -> None:
    """Dispose the engine if no job used it for `IDLE_SECONDS`; else check again when that is due."""
    with _lock:
        entry = _shared.get(key)
        if entry is None:
            return
        if entry.users:  # in use: the last job to give it back schedules the next check
            entry.timer = False
            return
        idle = time.monotonic() - entry.last_used
        if idle < IDLE_SECONDS:
            _schedule(key, IDLE_SECONDS - idle)
            return
        del _shared[key]
        del _by_engine[id(entry.engine)]
    entry.engine.dispose()


def dispose_all() -> None:
    """Close every shared engine's connections (tests; a process that wants its connections back)."""
    with _lock:
        entries = list(_shared.values())
        _shared.clear()
        _by_engine.clear()
    for entry in entries:
        entry.engine.dispose()


def shared_engines() -> int:
    """How many engines are shared right now (tests)."""
    with _lock:
        return len(_shared)
