"""Fixtures of the source tests: tables made from SQL scripts, a fixed core count, and a spy on
the connectorx reads."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from shared.sources import connectorx_loader, slicing
from shared.sources.connectorx_loader import StreamOptions


@pytest.fixture
def tables() -> Iterator[Callable[[sa.Engine, str, str], str]]:
    """`make(engine, name, script)`: run a `;`-separated DDL + INSERT script (`{name}` filled in);
    every table made (and a PostgreSQL `<name>_mood` enum type) is dropped afterwards."""
    made: list[tuple[sa.Engine, str]] = []

    def _make(engine: sa.Engine, name: str, script: str) -> str:
        with engine.begin() as conn:
            for statement in script.format(name=name).split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement))
        made.append((engine, name))
        return name

    yield _make
    for engine, name in made:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP TYPE IF EXISTS {name}_mood"))


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices follow the core count: pretend four, so that tests slice the same on any machine."""
    monkeypatch.setattr(slicing, "usable_cores", lambda: 4)


@pytest.fixture
def connectorx_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The queries (one per slice) of every read the fast path opens."""
    calls: list[list[str]] = []
    real = connectorx_loader._open_stream

    def spy(options: StreamOptions, queries: list[str], batch_size: int, pre_queries: Any) -> Any:
        calls.append(list(queries))
        return real(options, queries, batch_size, pre_queries)

    monkeypatch.setattr(connectorx_loader, "_open_stream", spy)
    return calls
