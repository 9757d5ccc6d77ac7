"""Credentials per `source_name`, resolved from the first provider that has each field.

Priority, highest first (as the original framework did it):

1. Databricks secrets, only inside a Databricks runtime: scope `dlt-framework`, key `{source}-{field}`.
2. Azure Key Vault, when `AZURE_KEY_VAULT_URL` is set (`DefaultAzureCredential`); secret name
   `{source}-{field}` with `_` written as `-` (Key Vault names allow letters, digits and dashes).
3. Environment variables in dlt's convention: `SOURCES__<SOURCE_NAME>__<FIELD>`.
4. `.dlt/secrets.toml` in the project directory (`DLT_PROJECT_DIR` or the working directory):
   a `[sources.<source_name>]` table.

Every value of a secret field (password, api_key, token) is registered with
`shared.redaction`, so it is masked in logs and errors from the moment it is resolved.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol

from shared.redaction import register_secret

DB_FIELDS: tuple[str, ...] = ("host", "port", "database", "username", "password", "driver", "service_name", "sid", "path")
"""Fields a database source may have."""
API_FIELDS: tuple[str, ...] = ("base_url", "api_key", "token", "api_key_name", "api_key_location")
"""Fields a REST API source may have."""
SECRET_FIELDS: frozenset[str] = frozenset({"password", "api_key", "token"})
"""Fields whose values are masked everywhere."""

DATABRICKS_SCOPE = "dlt-framework"


def fields_for(source_type: str) -> tuple[str, ...]:
    """Fields looked up for a source of this type."""
    return API_FIELDS if source_type == "api" else DB_FIELDS


REQUIRED_FIELDS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "postgresql": (("host",), ("database",)),
    "mysql": (("host",), ("database",), ("username",)),
    "oracle": (("host",), ("username",), ("service_name", "sid", "database")),
    "mssql": (("host",), ("database",), ("username",)),
    "azure_sql": (("host",), ("database",), ("username",)),
    "sqlite": (("path",),),
    "api": (("base_url",),),
}
"""Required fields of each source type; each entry is a group of alternatives (one must be set)."""


def required_fields(source_type: str) -> list[tuple[str, ...]]:
    """Required fields; each entry is a group of alternatives (one of them must be set)."""
    try:
        return list(REQUIRED_FIELDS[source_type])
    except KeyError:
        raise ValueError(f"no secrets fields for source_type '{source_type}' (add it to REQUIRED_FIELDS)") from None


class SecretProvider(Protocol):
    """Something that may hold a field of a source's credentials."""

    name: str

    def get(self, source_name: str, field_name: str) -> Optional[str]:
        """The value, or None when this provider does not have it."""


class EnvProvider:
    """`SOURCES__<SOURCE_NAME>__<FIELD>` environment variables (dlt's convention)."""

    name = "environment"

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(self, source_name: str, field_name: str) -> Optional[str]:
        return self._environ.get(env_var_name(source_name, field_name)) or None


class TomlProvider:
    """`[sources.<source_name>]` in `.dlt/secrets.toml`."""

    name = "secrets.toml"

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or default_secrets_toml()
        self._data: Optional[dict[str, Any]] = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            try:
                with open(self.path, "rb") as fh:
                    self._data = tomllib.load(fh)
            except FileNotFoundError:
                self._data = {}
            except tomllib.TOMLDecodeError as exc:
                # The parser's message quotes no values, only positions.
                raise ValueError(f"{self.path} is not valid TOML: {exc}") from None
        return self._data

    def get(self, source_name: str, field_name: str) -> Optional[str]:
        section = self._load().get("sources", {}).get(source_name, {})
        value = section.get(field_name) if isinstance(section, dict) else None
        return None if value is None or value == "" else str(value)


class KeyVaultProvider:
    """Azure Key Vault secrets named `{source}-{field}` (underscores become dashes)."""

    name = "Azure Key Vault"

    def __init__(self, vault_url: str, client: Any = None) -> None:
        self.vault_url = vault_url
        self._client = client
        self._cache: dict[str, Optional[str]] = {}

    def _get_client(self) -> Any:
        if self._client is None:
            from azure.identity import DefaultAzureCredential
            from azure.keyvault.secrets import SecretClient

            self._client = SecretClient(vault_url=self.vault_url, credential=DefaultAzureCredential())
        return self._client

    @staticmethod
    def secret_name(source_name: str, field_name: str) -> str:
        """Key Vault secret name for a field."""
        return f"{source_name}-{field_name}".replace("_", "-")

    def get(self, source_name: str, field_name: str) -> Optional[str]:
        from azure.core.exceptions import ResourceNotFoundError

        name = self.secret_name(source_name, field_name)
        if name not in self._cache:
            try:
                self._cache[name] = self._get_client().get_secret(name).value or None
            except ResourceNotFoundError:
                self._cache[name] = None
        return self._cache[name]


class DatabricksProvider:
    """Databricks secret scope `dlt-framework`, keys `{source}-{field}`."""

    name = "Databricks secrets"

    def __init__(self, dbutils: Any = None, scope: str = DATABRICKS_SCOPE) -> None:
        self._dbutils = dbutils
        self.scope = scope

    def _get_dbutils(self) -> Any:
        if self._dbutils is None:
            from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]
            from pyspark.sql import SparkSession  # type: ignore[import-not-found]

            self._dbutils = DBUtils(SparkSession.builder.getOrCreate())
        return self._dbutils

    def get(self, source_name: str, field_name: str) -> Optional[str]:
        try:
            return self._get_dbutils().secrets.get(scope=self.scope, key=f"{source_name}-{field_name}") or None
        except Exception as exc:  # dbutils raises a generic error for a missing key
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                return None
            raise


def env_var_name(source_name: str, field_name: str) -> str:
    """dlt-style environment variable for one field: `SOURCES__<NAME>__<FIELD>`."""
    return f"SOURCES__{source_name.upper()}__{field_name.upper()}"


def default_secrets_toml() -> Path:
    """`.dlt/secrets.toml` under `DLT_PROJECT_DIR` or the working directory."""
    return Path(os.environ.get("DLT_PROJECT_DIR") or os.getcwd()) / ".dlt" / "secrets.toml"


def default_providers(environ: Optional[Mapping[str, str]] = None) -> list[SecretProvider]:
    """Providers active in this environment, highest priority first."""
    env = os.environ if environ is None else environ
    providers: list[SecretProvider] = []
    if env.get("DATABRICKS_RUNTIME_VERSION"):
        providers.append(DatabricksProvider())
    if env.get("AZURE_KEY_VAULT_URL"):
        providers.append(KeyVaultProvider(env["AZURE_KEY_VAULT_URL"]))
    providers.append(EnvProvider(env))
    providers.append(TomlProvider())
    return providers


@dataclass(frozen=True)
class SourceSecrets:
    """Resolved credentials of one source. Its repr never shows secret values."""

    source_name: str
    values: Mapping[str, str] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)
    """Which provider each field came from (for diagnostics; holds no values)."""

    def get(self, field_name: str, default: Optional[str] = None) -> Optional[str]:
        """A field's value or `default`."""
        return self.values.get(field_name, default)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_FIELDS else v) for k, v in self.values.items()}
        return f"SourceSecrets({self.source_name!r}, {shown!r})"

    __str__ = __repr__


def resolve_source_secrets(
    source_name: str,
    source_type: str = "postgresql",
    providers: Optional[Iterable[SecretProvider]] = None,
) -> SourceSecrets:
    """Resolve every known field of a source, each from the highest-priority provider that has it.

    Args:
        source_name: The workbook's `source_name` (lower case).
        source_type: The workbook's `source_type`; decides which fields are looked up.
        providers: Providers to ask, highest priority first; defaults to `default_providers()`.

    Returns:
        The resolved values; secret values are registered for redaction.
    """
    chain = list(providers) if providers is not None else default_providers()
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for field_name in fields_for(source_type):
        for provider in chain:
            value = provider.get(source_name, field_name)
            if value is not None:
                values[field_name] = value
                origins[field_name] = provider.name
                if field_name in SECRET_FIELDS:
                    register_secret(value)
                break
    return SourceSecrets(source_name, values, origins)


def missing_secrets(
    source_name: str, source_type: str, providers: Optional[Iterable[SecretProvider]] = None
) -> list[str]:
    """Problems that stop a source from connecting, for plan validation (empty when fine).

    The message names what is missing and where it may be set, never any value.
    """
    try:
        secrets = resolve_source_secrets(source_name, source_type, providers)
    except Exception as exc:  # an unreachable vault must surface as a plan problem
        from shared.redaction import error_line

        return [error_line(exc, "could not read secrets: ")]
    missing = [
        " or ".join(group) for group in required_fields(source_type) if not any(secrets.get(f) for f in group)
    ]
    if not missing:
        return []
    example = env_var_name(source_name, missing[0].split(" or ")[0])
    return [
        f"missing {', '.join(missing)} (set {example} and the like, or [sources.{source_name}] "
        f"in .dlt/secrets.toml)"
    ]
