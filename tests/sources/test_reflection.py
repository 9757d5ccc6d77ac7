"""Reflecting only columns and primary key: the same columns as SQLAlchemy's full reflection, fewer
queries, and the full reflection's behaviour for views and missing tables (real PostgreSQL and MariaDB)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import sqlalchemy as sa

from shared.sources.reflection import reflect_table


def _described(table: sa.Table) -> list[tuple[Any, ...]]:
    return [(c.name, repr(c.type), c.nullable, c.primary_key, c.autoincrement, c.comment,
             str(c.server_default.arg) if c.server_default is not None else None) for c in table.columns]


def _statements(engine: sa.Engine, reflect: Callable[[], sa.Table]) -> tuple[sa.Table, int]:
    count = 0

    def seen(*_: Any) -> None:
        nonlocal count
        count += 1

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        return reflect(), count
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


@pytest.mark.parametrize("engine_name", ["pg_engine", "mariadb_engine"])
def test_columns_and_key_equal_full_reflection_with_fewer_queries(
    engine_name: str, request: pytest.FixtureRequest, unique_name: Callable[[str], str]
) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_name)
    parent, child = unique_name("refl_parent"), unique_name("refl_child")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {parent} (id int PRIMARY KEY)"))
        conn.execute(sa.text(
            f"CREATE TABLE {child} (a int NOT NULL, b varchar(20) NOT NULL DEFAULT 'x', amount numeric(12,2), "
            f"parent_id int REFERENCES {parent} (id), note text, PRIMARY KEY (a, b), UNIQUE (amount))"))
        conn.execute(sa.text(f"CREATE INDEX {child}_note ON {child} (parent_id)"))
    try:
        full, full_queries = _statements(engine, lambda: sa.Table(child, sa.MetaData(), autoload_with=engine))
        ours, our_queries = _statements(engine, lambda: reflect_table(child, sa.MetaData(), engine))
        assert _described(ours) == _described(full)
        assert [c.name for c in ours.primary_key] == ["a", "b"]
        assert our_queries < full_queries
        assert not ours.foreign_keys and not ours.indexes and len(ours.metadata.tables) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {child}"))
            conn.execute(sa.text(f"DROP TABLE {parent}"))


def test_a_view_is_reflected_and_a_missing_table_raises_as_before(
    pg_engine: sa.Engine, unique_name: Callable[[str], str]
) -> None:
    table, view = unique_name("refl_t"), unique_name("refl_v")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)"))
        conn.execute(sa.text(f"CREATE VIEW {view} AS SELECT * FROM {table}"))
    try:
        assert [c.name for c in reflect_table(view, sa.MetaData(), pg_engine).columns] == ["id", "v"]
        with pytest.raises(sa.exc.NoSuchTableError):
            reflect_table(unique_name("refl_missing"), sa.MetaData(), pg_engine)
        with pytest.raises(sa.exc.NoSuchTableError):
            reflect_table(table, sa.MetaData(schema="no_such_schema_here"), pg_engine)
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP VIEW {view}"))
            conn.execute(sa.text(f"DROP TABLE {table}"))
