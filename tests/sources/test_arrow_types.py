"""Integer widths per dialect, the types the connectorx path accepts, and casting batches back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql

from shared.sources.arrow_types import conform, integer_bits, rtrim_spaces
from shared.sources.connectorx_loader import reads_type
from shared.sources.sql_types import read_as


@pytest.mark.parametrize(
    "sql_type, dialect, bits",
    [
        (postgresql.INTEGER(), "postgresql", 32), (postgresql.BIGINT(), "postgresql", 64),
        (postgresql.SMALLINT(), "postgresql", 16),
        (mysql.TINYINT(), "mysql", 8), (mysql.SMALLINT(), "mysql", 16), (mysql.MEDIUMINT(), "mysql", 32),
        (mysql.INTEGER(), "mysql", 32), (mysql.BIGINT(), "mysql", 64),
        (mysql.TINYINT(unsigned=True), "mysql", 16), (mysql.INTEGER(unsigned=True), "mysql", 64),
        (mssql.TINYINT(), "mssql", 16), (mssql.SMALLINT(), "mssql", 16),
        (sa.INTEGER(), "sqlite", 64), (sa.SMALLINT(), "sqlite", 64),
        (oracle.NUMBER(10, 0), "oracle", None), (sa.Numeric(12, 2), "postgresql", None), (sa.Text(), "mysql", None),
    ],
)
def test_integer_bits_follow_the_source_type(sql_type: sa.types.TypeEngine, dialect: str, bits: int | None) -> None:
    assert integer_bits(sql_type, dialect) == bits


@pytest.mark.parametrize(
    "sql_type, fast",
    [
        (sa.Integer(), True), (sa.Numeric(12, 2), True), (sa.Numeric(28, 6), True), (sa.Float(), True),
        (sa.Text(), True), (sa.DateTime(timezone=True), True), (sa.Date(), True), (sa.Boolean(), True),
        (postgresql.UUID(), True), (postgresql.BYTEA(), True),
        (sa.Numeric(), False), (sa.Numeric(38, 10), False), (mysql.BIGINT(unsigned=True), False),
        (postgresql.JSONB(), False), (postgresql.INTERVAL(), False), (postgresql.ARRAY(sa.Integer()), True),
        (postgresql.ARRAY(sa.Numeric()), False), (read_as(sa.Text(), lambda c: c), True),
        (postgresql.ENUM("a", name="e"), False), (mysql.SET("a"), False), (mysql.YEAR(), False),
        (sa.types.NullType(), False),
    ],
)
def test_connectorx_path_only_takes_types_it_reads_faithfully(sql_type: sa.types.TypeEngine, fast: bool) -> None:
    assert reads_type(sql_type) is fast


def test_conform_casts_connectorx_types_back_to_the_reflected_ones() -> None:
    batch = pa.RecordBatch.from_pydict({
        "id": pa.array([1, 2], pa.int64()),
        "amount": pa.array([Decimal("1.5"), None], pa.decimal128(38, 10)),
        "ts": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), None], pa.timestamp("us", tz="+00:00")),
        "other": pa.array(["x", None]),
    })
    fields = {
        "id": pa.field("id", pa.int32(), nullable=False),
        "amount": pa.field("amount", pa.decimal128(12, 2)),
        "ts": pa.field("ts", pa.timestamp("us", tz="UTC")),
    }
    out = conform(batch, fields)
    assert out.schema == pa.schema([fields["id"], fields["amount"], fields["ts"], pa.field("other", pa.string())])
    assert out.to_pylist()[0] == {"id": 1, "amount": Decimal("1.50"), "ts": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "other": "x"}


def test_conform_refuses_values_that_do_not_fit() -> None:
    batch = pa.RecordBatch.from_pydict({"n": pa.array([2**40], pa.int64())})
    with pytest.raises(pa.ArrowInvalid):
        conform(batch, {"n": pa.field("n", pa.int32())})


def test_trimmed_columns_lose_their_trailing_spaces_only() -> None:
    batch = pa.RecordBatch.from_pydict({
        "code": pa.array(["ab  ", " c", None, "   ", "tab\t "]),
        "other": pa.array(["x  ", None, "y", "z", "w"]),
        "n": pa.array([1, 2, 3, 4, 5]),
    })
    expected = ["ab", " c", None, "", "tab\t"]
    assert conform(batch, {}, trim={"code", "n"}).column("code").to_pylist() == expected
    table = rtrim_spaces(pa.Table.from_batches([batch, batch]), ["code", "n", "missing"])
    assert table.column("code").to_pylist() == expected * 2
    assert table.column("other").to_pylist() == ["x  ", None, "y", "z", "w"] * 2 and table.schema == batch.schema
