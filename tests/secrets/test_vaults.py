"""The process's secret chain: one credential, vault reads cached per run, the priority order, no
secret in any error (`shared/secrets/providers.py` and `secret_chain`).

Key Vault and Databricks cannot run here: `azure.identity.DefaultAzureCredential`,
`azure.keyvault.secrets.SecretClient` and Databricks' `dbutils` (the `pyspark` modules) are replaced
by small in-memory fakes that count what they are asked. Environment variables, `.dlt/secrets.toml`,
SQLite and the lake are real.
"""

from __future__ import annotations

import sqlite3
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.redaction import clear_secrets
from shared.secrets import (DB_FIELDS, KeyVaultProvider, missing_secrets, reset_secret_chain, resolve_source_secrets,
                            secret_chain, use_run)

VAULT_URL = "https://ingest-test.vault.azure.net"


class Vault:
    """What the fakes share: the secrets, and counts of credentials, clients and reads."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.credentials = 0
        self.clients = 0
        self.reads: list[str] = []
        self.failure: Exception | None = None


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vault]:
    """`AZURE_KEY_VAULT_URL` set, the Azure SDK's credential and SecretClient replaced by fakes."""
    import azure.identity
    import azure.keyvault.secrets

    state = Vault()

    class FakeCredential:
        def __init__(self, **kwargs: Any) -> None:
            state.credentials += 1

    class FakeSecretClient:
        def __init__(self, vault_url: str, credential: Any) -> None:
            assert vault_url == VAULT_URL and isinstance(credential, FakeCredential)
            state.clients += 1

        def get_secret(self, name: str) -> SimpleNamespace:
            state.reads.append(name)
            if state.failure is not None:
                raise state.failure
            if name not in state.secrets:
                raise ResourceNotFoundError(f"A secret with (name/id) {name} was not found in this key vault.")
            return SimpleNamespace(value=state.secrets[name])

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", FakeCredential)
    monkeypatch.setattr(azure.keyvault.secrets, "SecretClient", FakeSecretClient)
    monkeypatch.setenv("AZURE_KEY_VAULT_URL", VAULT_URL)
    reset_secret_chain()
    yield state
    reset_secret_chain()


@pytest.fixture
def databricks(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A Databricks runtime: `pyspark.dbutils.DBUtils` is a fake over one `dlt-framework` scope."""
    secrets: dict[str, str] = {}

    class FakeDBUtils:
        def __init__(self, spark: Any) -> None:
            def get(scope: str, key: str) -> str:
                if scope != "dlt-framework" or key not in secrets:
                    raise Exception(f"Secret does not exist with scope: {scope} and key: {key}")
                return secrets[key]

            self.secrets = SimpleNamespace(get=get)

    dbutils_module = types.ModuleType("pyspark.dbutils")
    dbutils_module.DBUtils = FakeDBUtils  # type: ignore[attr-defined]
    sql_module = types.ModuleType("pyspark.sql")
    sql_module.SparkSession = SimpleNamespace(builder=SimpleNamespace(getOrCreate=lambda: "spark"))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyspark", types.ModuleType("pyspark"))
    monkeypatch.setitem(sys.modules, "pyspark.dbutils", dbutils_module)
    monkeypatch.setitem(sys.modules, "pyspark.sql", sql_module)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    reset_secret_chain()
    yield secrets
    reset_secret_chain()


def test_one_credential_per_process_and_one_read_per_field_per_run(vault: Vault) -> None:
    vault.secrets.update({"erp-host": "db.example.com", "erp-database": "erp", "erp-password": "s3cret"})
    use_run("run-1")
    assert missing_secrets("erp", "postgresql") == []  # load_plan
    first = resolve_source_secrets("erp", "postgresql")  # job 1 of source erp
    second = resolve_source_secrets("erp", "postgresql")  # job 2 of source erp, and its retry
    resolve_source_secrets("erp", "postgresql")
    assert first.get("host") == second.get("host") == "db.example.com"
    assert sorted(vault.reads) == sorted(f"erp-{f}".replace("_", "-") for f in DB_FIELDS)  # 9, not 9 per attempt
    assert (vault.credentials, vault.clients) == (1, 1)

    use_run("run-1")  # another step of the same run
    resolve_source_secrets("erp", "postgresql")
    assert len(vault.reads) == len(DB_FIELDS)

    vault.secrets["erp-password"] = "rotated"
    del vault.secrets["erp-database"]
    use_run("run-2")  # the next run reads afresh, with the same credential
    again = resolve_source_secrets("erp", "postgresql")
    assert (again.get("password"), again.get("database")) == ("rotated", None)
    assert len(vault.reads) == 2 * len(DB_FIELDS)
    assert (vault.credentials, vault.clients) == (1, 1)
    assert secret_chain() is secret_chain()


def test_two_jobs_of_one_source_read_the_vault_once(vault: Vault, tmp_path: Path, lake: Path) -> None:
    """Through the runner, as the activities call it: a SQLite source whose path is in Key Vault."""
    from shared.runner import run_job
    from shared.workbook.models import Job

    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (1), (2);"
                           "CREATE TABLE customers (id INTEGER PRIMARY KEY); INSERT INTO customers VALUES (7);")
    vault.secrets["shop-path"] = str(db)
    use_run("run-1")
    results = [run_job(Job("sqlite", "shop", table, "FULL"), bucket_url=str(lake), run_id="run-1")
               for table in ("orders", "customers")]
    assert [(r.status, r.rows_processed) for r in results] == [("success", 2), ("success", 1)], results[0].error
    assert len(vault.reads) == len(DB_FIELDS) and len(set(vault.reads)) == len(DB_FIELDS)
    assert (vault.credentials, vault.clients) == (1, 1)


def test_priority_through_the_process_chain(vault: Vault, databricks: dict[str, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "project" / ".dlt" / "secrets.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text('[sources.erp]\nhost = "toml-host"\ndatabase = "toml-db"\nusername = "toml-user"\nport = 5433\n'
                    'driver = "toml-driver"\n')
    monkeypatch.setenv("SOURCES__ERP__HOST", "env-host")
    monkeypatch.setenv("SOURCES__ERP__DATABASE", "env-db")
    monkeypatch.setenv("SOURCES__ERP__USERNAME", "env-user")
    monkeypatch.setenv("SOURCES__ERP__PORT", "")  # blank: not set
    vault.secrets.update({"erp-host": "kv-host", "erp-database": "kv-db"})
    databricks["erp-host"] = "dbx-host"
    use_run("run-1")
    secrets = resolve_source_secrets("erp", "postgresql")
    assert [p.name for p in secret_chain().providers] == [
        "Databricks secrets", "Azure Key Vault", "environment", "secrets.toml"]
    assert (secrets.get("host"), secrets.get("database"), secrets.get("username"), secrets.get("port"),
            secrets.get("driver")) == ("dbx-host", "kv-db", "env-user", "5433", "toml-driver")
    assert dict(secrets.origins) == {"host": "Databricks secrets", "database": "Azure Key Vault",
                                     "username": "environment", "port": "secrets.toml", "driver": "secrets.toml"}


def test_key_vault_names_and_values_are_kept_as_they_are(vault: Vault) -> None:
    vault.secrets.update({"sales-eu-host": "h", "sales-eu-database": "d", "sales-eu-password": 'a = "1"',
                          "sales-eu-service-name": '{"x": 1}'})
    secrets = resolve_source_secrets("sales_eu", "oracle")
    assert "sales-eu-service-name" in vault.reads
    # A value that parses as TOML or JSON is a value, not a fragment of a document.
    assert (secrets.get("password"), secrets.get("service_name")) == ('a = "1"', '{"x": 1}')


def test_keys_other_than_a_source_field_never_reach_the_vault(vault: Vault) -> None:
    provider = next(p for p in secret_chain().providers if isinstance(p, KeyVaultProvider))
    assert provider.get_value("bucket_url", str, None, "destination", "filesystem") == (None, "bucket_url")
    assert provider.get_value("password", str, "pipeline", "sources") == (None, "password")
    assert vault.reads == [] and vault.credentials == 0


def test_secrets_never_appear_in_errors_or_reprs(vault: Vault) -> None:
    clear_secrets()
    vault.secrets.update({"erp-host": "h", "erp-database": "d", "erp-password": "Pa55-w0rd!"})
    use_run("run-1")
    secrets = resolve_source_secrets("erp", "postgresql")
    assert secrets.get("password") == "Pa55-w0rd!"
    shown = repr(secrets) + str(secrets) + repr(secret_chain().providers)
    assert "Pa55-w0rd!" not in shown

    vault.failure = RuntimeError("403 Forbidden for erp-password (cached value was Pa55-w0rd!)\ntrace...")
    use_run("run-2")
    problems = missing_secrets("erp", "postgresql")
    assert problems == ["could not read secrets: 403 Forbidden for erp-password (cached value was ***)"]
