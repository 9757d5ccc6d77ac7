"""URL building, dialect SQL and unreachable-server errors for every SQL source type.

No Oracle or SQL Server can run on this machine: for those the tests check the URL, the
dialect's compiled catalog query and the error against a closed local port (no doubles).
"""

from __future__ import annotations

import sqlalchemy as sa
import pytest

from shared.workbook.models import Job
from shared.redaction import clear_secrets
from shared.runner import run_job
from shared.secrets import EnvProvider, resolve_source_secrets
from shared.sources import SOURCE_CLASSES, chunk_size_for, make_source
from tests.conftest import free_port

PASSWORD = "p@ss:w/rd#1"


def job(source_type: str, **kw: object) -> Job:
    defaults: dict[str, object] = {"source_name": "src", "table_name": "orders", "load_type": "FULL"}
    defaults.update(kw)
    return Job(source_type=source_type, **defaults)  # type: ignore[arg-type]


def secrets(**values: str):
    env = {f"SOURCES__SRC__{k.upper()}": v for k, v in values.items()}
    return resolve_source_secrets("src", "postgresql", [EnvProvider(env)])


def test_every_source_type_has_a_class() -> None:
    assert set(SOURCE_CLASSES) == {"postgresql", "mysql", "oracle", "mssql", "azure_sql", "sqlite", "api"}


@pytest.mark.parametrize(
    "source_type, drivername, port",
    [("postgresql", "postgresql+psycopg2", 5432), ("mysql", "mysql+pymysql", 3306), ("mssql", "mssql+pyodbc", 1433), ("azure_sql", "mssql+pyodbc", 1433)],
)
def test_url_keeps_special_characters_exactly(source_type: str, drivername: str, port: int) -> None:
    src = make_source(job(source_type), secrets(host="db.example.com", database="sales", username="u@corp", password=PASSWORD))
    url = src.url()
    assert (url.drivername, url.port, url.password, url.username) == (drivername, port, PASSWORD, "u@corp")
    rendered = url.render_as_string(hide_password=False)
    assert PASSWORD not in rendered  # encoded in the string form...
    assert sa.make_url(rendered).password == PASSWORD  # ...and decodes back exactly
    assert src.describe() == f"{source_type} source 'src' at db.example.com:{port}"


def test_mssql_and_azure_sql_encryption() -> None:
    s = secrets(host="h", database="d", username="u")
    assert make_source(job("mssql"), s).url().query["Encrypt"] == "no"
    azure = make_source(job("azure_sql"), s).url().query
    assert (azure["Encrypt"], azure["TrustServerCertificate"], azure["driver"]) == ("yes", "no", "ODBC Driver 18 for SQL Server")


def test_oracle_service_name_and_sid() -> None:
    by_service = make_source(job("oracle", schema_name="FIN"), secrets(host="h", username="u", service_name="ORCLPDB1")).url()
    assert by_service.query == {"service_name": "ORCLPDB1"} and by_service.database is None
    by_sid = make_source(job("oracle", schema_name="FIN"), secrets(host="h", username="u", sid="ORCL")).url()
    assert by_sid.database == "ORCL" and by_sid.port == 1521


@pytest.mark.parametrize(
    "source_type, dialect, fragment",
    [
        ("postgresql", "postgresql", "pg_class"),
        ("mysql", "mysql", "information_schema.tables"),
        ("oracle", "oracle", "all_tables"),
        ("mssql", "mssql", "sys.partitions"),
    ],
)
def test_estimate_queries_compile_for_their_dialect(source_type: str, dialect: str, fragment: str) -> None:
    from sqlalchemy.dialects import registry

    query = make_source(job(source_type), secrets(host="h", database="d")).estimate_rows_query()
    compiled = str(query.compile(dialect=registry.load(dialect)()))
    assert fragment in compiled and "COUNT(" not in compiled.upper()


@pytest.mark.parametrize(
    "rows, size",
    [(None, 50_000), (0, 50_000), (99_999, 50_000), (100_000, 100_000), (999_999, 100_000), (1_000_000, 250_000),
     (9_999_999, 250_000), (10_000_000, 500_000), (49_999_999, 500_000), (50_000_000, 1_000_000)],
)
def test_chunk_size_thresholds(rows: int | None, size: int) -> None:
    assert chunk_size_for(rows) == size


@pytest.mark.parametrize("source_type", ["postgresql", "mysql", "oracle", "mssql", "azure_sql"])
def test_unreachable_server_fails_with_one_line_naming_source_and_host(source_type: str, lake) -> None:
    clear_secrets()
    port = free_port()
    extra = {"service_name": "XE"} if source_type == "oracle" else {}
    s = secrets(host="127.0.0.1", port=str(port), database="d", username="u", password=PASSWORD, **extra)
    result = run_job(job(source_type, schema_name="s"), secrets=s, bucket_url=str(lake))
    assert result.status == "failed"
    assert result.error.startswith(f"{source_type} source 'src' at 127.0.0.1:{port}: ")
    assert "\n" not in result.error and PASSWORD not in result.error and "p%40ss" not in result.error
    assert result.rows_processed == 0 and result.files == []
    assert not any(lake.rglob("*.parquet"))
