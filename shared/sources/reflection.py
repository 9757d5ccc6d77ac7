"""Reflect a source table's columns and primary key, and nothing else.

`sa.Table(name, metadata, autoload_with=engine)` runs every reflection query of the dialect:
columns, primary key, foreign keys (and, by default, the tables they refer to), indexes, unique
and check constraints, the comment and the table options; on PostgreSQL that is a fifth of a
small job's time, and most of it is the foreign-key query. The library reads only the columns
and the primary key (types, read plans, key slicing; dlt's `sql_table` reads the columns and
resolves no foreign keys by default), so only those two are queried. A name the two queries do
not find as a plain table (a view, a synonym, a missing table) goes through SQLAlchemy's full
reflection, which raises the same errors as before.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Union

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope, _ReflectionInfo


def reflect_table(name: str, metadata: sa.MetaData, bind: Union[sa.Engine, sa.Connection]) -> sa.Table:
    """The table `name` (in `metadata`'s schema) with its columns and primary key reflected,
    through `bind` (a connection, or an engine to take one from).

    Uses SQLAlchemy's `Inspector.reflect_table` with pre-fetched reflection info holding only
    the columns and the primary key (the `_reflect_info` hook of SQLAlchemy 2.x), so the
    columns come out exactly as full reflection makes them.
    """
    table = sa.Table(name, metadata)
    key = (table.schema, name)
    with (nullcontext(bind) if isinstance(bind, sa.Connection) else bind.connect()) as conn:
        inspector = sa.inspect(conn)
        unreflectable: dict[Any, Any] = {}
        kw: dict[str, Any] = {"kind": ObjectKind.ANY, "scope": ObjectScope.ANY, "unreflectable": unreflectable}
        columns = inspector.get_multi_columns(table.schema, filter_names=[name], **kw)
        if key in columns and key not in unreflectable:
            primary_key = inspector.get_multi_pk_constraint(table.schema, filter_names=[name], **kw)
            info = _ReflectionInfo(
                columns=columns, pk_constraint=primary_key, foreign_keys={}, indexes={}, unique_constraints={},
                table_comment={}, check_constraints={}, table_options={}, unreflectable=unreflectable,
            )
            inspector.reflect_table(table, None, _reflect_info=info)
            return table
    metadata.remove(table)
    return sa.Table(name, metadata, autoload_with=bind)
