"""Secrets resolution order and secret hygiene (`shared/secrets/__init__.py`).

Databricks and Azure Key Vault cannot run here: those two providers get small in-memory
doubles of `dbutils` and of Key Vault's `SecretClient` (the only doubles in this module).
Environment variables and `.dlt/secrets.toml` are real.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.redaction import clear_secrets, redact
from shared.secrets import (
    DatabricksProvider,
    EnvProvider,
    KeyVaultProvider,
    TomlProvider,
    default_providers,
    missing_secrets,
    resolve_source_secrets,
)


class FakeSecretClient:
    """Key Vault double: `get_secret(name).value`, ResourceNotFoundError when absent."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.calls: list[str] = []

    def get_secret(self, name: str) -> SimpleNamespace:
        self.calls.append(name)
        if name not in self.secrets:
            raise ResourceNotFoundError(f"secret {name} not found")
        return SimpleNamespace(value=self.secrets[name])


class FakeDbutils:
    """Databricks `dbutils` double with one secret scope."""

    def __init__(self, scope: str, secrets: dict[str, str]) -> None:
        def get(scope: str, key: str) -> str:
            if scope != expected_scope or key not in secrets:
                raise Exception(f"Secret does not exist with scope: {scope} and key: {key}")
            return secrets[key]

        expected_scope = scope
        self.secrets = SimpleNamespace(get=get)


def write_toml(project: Path, text: str) -> Path:
    path = project / ".dlt" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_priority_databricks_then_key_vault_then_env_then_toml(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[sources.erp]\nhost = "toml-host"\nport = 5433\ndatabase = "toml-db"\nusername = "toml-user"\ndriver = "toml-driver"\n')
    env = {"SOURCES__ERP__HOST": "env-host", "SOURCES__ERP__DATABASE": "env-db", "SOURCES__ERP__USERNAME": "env-user"}
    vault = FakeSecretClient({"erp-host": "kv-host", "erp-database": "kv-db"})
    dbutils = FakeDbutils("dlt-framework", {"erp-host": "dbx-host"})
    providers = [
        DatabricksProvider(dbutils=dbutils),
        KeyVaultProvider("https://vault.example", client=vault),
        EnvProvider(env),
        TomlProvider(toml),
    ]
    secrets = resolve_source_secrets("erp", "postgresql", providers)
    assert secrets.get("host") == "dbx-host"
    assert secrets.get("database") == "kv-db"
    assert secrets.get("username") == "env-user"
    assert secrets.get("port") == "5433"
    assert secrets.get("driver") == "toml-driver"
    assert secrets.origins["host"] == "Databricks secrets"
    assert secrets.origins["port"] == "secrets.toml"


def test_key_vault_names_use_dashes(tmp_path: Path) -> None:
    vault = FakeSecretClient({"sales-eu-host": "h", "sales-eu-database": "d"})
    secrets = resolve_source_secrets("sales_eu", "postgresql", [KeyVaultProvider("https://v", client=vault)])
    assert secrets.get("host") == "h"
    assert "sales-eu-password" in vault.calls


def test_default_providers_follow_the_environment() -> None:
    names = [p.name for p in default_providers({})]
    assert names == ["environment", "secrets.toml"]
    names = [p.name for p in default_providers({"AZURE_KEY_VAULT_URL": "https://v", "DATABRICKS_RUNTIME_VERSION": "15.4"})]
    assert names == ["Databricks secrets", "Azure Key Vault", "environment", "secrets.toml"]


def test_env_and_toml_through_default_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(tmp_path, '[sources.crm]\nhost = "toml-host"\ndatabase = "crm"\n')
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SOURCES__CRM__HOST", "env-host")
    secrets = resolve_source_secrets("crm", "postgresql")
    assert (secrets.get("host"), secrets.get("database")) == ("env-host", "crm")


def test_secret_values_are_registered_and_masked_in_repr() -> None:
    clear_secrets()
    password = "p@ss:w/rd#1"
    secrets = resolve_source_secrets("x", "postgresql", [EnvProvider({"SOURCES__X__PASSWORD": password, "SOURCES__X__HOST": "h"})])
    assert password not in repr(secrets) and password not in str(secrets)
    assert redact(f"failed with {password} and p%40ss%3Aw%2Frd%231") == "failed with *** and ***"


@pytest.mark.parametrize(
    "source_type, env, expected",
    [
        ("postgresql", {}, "missing host, database"),
        ("postgresql", {"SOURCES__S__HOST": "h"}, "missing database"),
        ("sqlite", {}, "missing path"),
        ("api", {}, "missing base_url"),
        ("oracle", {"SOURCES__S__HOST": "h", "SOURCES__S__USERNAME": "u"}, "missing service_name or sid or database"),
        ("api", {"SOURCES__S__BASE_URL": "http://x"}, None),
    ],
)
def test_missing_secrets_names_fields_never_values(source_type: str, env: dict[str, str], expected: str | None) -> None:
    problems = missing_secrets("s", source_type, [EnvProvider(env)])
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(expected)
        assert "SOURCES__S__" in problems[0]


def test_unreadable_vault_is_a_problem_without_secrets() -> None:
    class Broken(FakeSecretClient):
        def get_secret(self, name: str) -> SimpleNamespace:
            raise RuntimeError("vault https://v unreachable\nstack...")

    problems = missing_secrets("s", "postgresql", [KeyVaultProvider("https://v", client=Broken({}))])
    assert problems == ["could not read secrets: vault https://v unreachable"]


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, "[sources.erp\nhost = 'x'")
    with pytest.raises(ValueError, match="secrets.toml is not valid TOML"):
        TomlProvider(toml).get("erp", "host")
