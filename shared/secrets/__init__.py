"""Credentials per `source_name`, resolved from the first provider that has each field.

Priority, highest first (as the original framework did it):

1. Databricks secrets, only inside a Databricks runtime: scope `dlt-framework`, key `{source}-{field}`.
2. Azure Key Vault, when `AZURE_KEY_VAULT_URL` is set (`DefaultAzureCredential`); secret name
   `{source}-{field}` with `_` written as `-` (Key Vault names allow letters, digits and dashes).
3. Environment variables in dlt's convention: `SOURCES__<SOURCE_NAME>__<FIELD>`.
4. `.dlt/secrets.toml` in the project directory (`DLT_PROJECT_DIR` or the working directory):
   a `[sources.<source_name>]` table.

The providers are dlt config providers (`providers.py`), asked for exactly
`sources.<source_name>.<field>`: dlt's own resolution would also fall back to `sources.<field>` and
`<field>`, so a bare `HOST` variable could fill any source's host. The chain is built once per
process (`secret_chain()`: one Key Vault client with one `DefaultAzureCredential`), and the vaults'
answers are kept for the run (`use_run(key)` at the start of each step forgets them when a new run
begins); environment variables are read live and `secrets.toml` again when it changes.

Every value of a secret field (password, api_key, token) is registered with
`shared.redaction`, so it is masked in logs and errors from the moment it is resolved.

May import: dlt's configuration providers, the Azure SDKs and, of the library, `shared.settings`
and `shared.redaction`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Optional

from dlt.common.configuration.providers import ConfigProvider, VaultDocProvider

from shared.redaction import register_secret
from shared.secrets.providers import (DATABRICKS_SCOPE, DatabricksProvider, EnvProvider, KeyVaultProvider,
                                      TomlProvider, default_secrets_toml, lookup)

__all__ = [
    "API_FIELDS", "DATABRICKS_SCOPE", "DB_FIELDS", "SECRET_FIELDS", "DatabricksProvider", "EnvProvider",
    "KeyVaultProvider", "SecretChain", "SourceSecrets", "TomlProvider", "default_providers", "default_secrets_toml",
    "env_var_name", "fields_for", "missing_secrets", "required_fields", "reset_secret_chain",
    "resolve_source_secrets", "secret_chain", "use_run",
]

DB_FIELDS: tuple[str, ...] = ("host", "port", "database", "username", "password", "driver", "service_name", "sid", "path")
"""Fields a database source may have."""
API_FIELDS: tuple[str, ...] = ("base_url", "api_key", "token", "api_key_name", "api_key_location")
"""Fields a REST API source may have."""
SECRET_FIELDS: frozenset[str] = frozenset({"password", "api_key", "token"})
"""Fields whose values are masked everywhere."""


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


def env_var_name(source_name: str, field_name: str) -> str:
    """dlt-style environment variable for one field: `SOURCES__<NAME>__<FIELD>`."""
    return EnvProvider.get_key_name(field_name, "sources", source_name)


def default_providers(environ: Optional[Mapping[str, str]] = None) -> list[ConfigProvider]:
    """New providers for this environment, highest priority first (`secret_chain()` keeps one set)."""
    from shared.settings import settings

    config = settings(environ)
    return _providers(config.databricks_runtime_version, config.key_vault_url, config.dlt_project_dir, environ)


def _providers(databricks: Optional[str], vault_url: Optional[str], project_dir: Path,
               environ: Optional[Mapping[str, str]] = None) -> list[ConfigProvider]:
    providers: list[ConfigProvider] = []
    if databricks:
        providers.append(DatabricksProvider())
    if vault_url:
        providers.append(KeyVaultProvider(vault_url))
    providers.append(EnvProvider(environ))
    providers.append(TomlProvider(project_dir / ".dlt" / "secrets.toml"))
    return providers


class SecretChain:
    """The providers of this process, and the run their vault answers belong to."""

    def __init__(self, providers: Iterable[ConfigProvider]) -> None:
        self.providers = list(providers)
        self._run: Optional[str] = None
        self._lock = threading.Lock()

    def use_run(self, run: str) -> None:
        """Work for `run` begins: when it is another run than the last, vault answers are read afresh.

        Steps of two runs interleaving in one process only cost extra reads.
        """
        with self._lock:
            if run == self._run:
                return
            self._run = run
            for provider in self.providers:
                if isinstance(provider, VaultDocProvider):
                    provider.clear_lookup_cache()


def secret_chain() -> SecretChain:
    """The process's chain (a new one only when the vault, Databricks or project settings change)."""
    from shared.settings import settings

    config = settings()
    return _chain(config.databricks_runtime_version, config.key_vault_url, config.dlt_project_dir)


@lru_cache(maxsize=4)
def _chain(databricks: Optional[str], vault_url: Optional[str], project_dir: Path) -> SecretChain:
    return SecretChain(_providers(databricks, vault_url, project_dir))


def use_run(run: str) -> None:
    """Work for `run` begins in this process (see `SecretChain.use_run`)."""
    secret_chain().use_run(run)


def reset_secret_chain() -> None:
    """Drop the process's chain and its credential (tests)."""
    _chain.cache_clear()


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
    providers: Optional[Iterable[ConfigProvider]] = None,
) -> SourceSecrets:
    """Resolve every known field of a source, each from the highest-priority provider that has it.

    Args:
        source_name: The workbook's `source_name` (lower case).
        source_type: The workbook's `source_type`; decides which fields are looked up.
        providers: Providers to ask, highest priority first; defaults to the process's `secret_chain()`.

    Returns:
        The resolved values; secret values are registered for redaction.
    """
    chain = list(providers) if providers is not None else secret_chain().providers
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for field_name in fields_for(source_type):
        for provider in chain:
            value = lookup(provider, source_name, field_name)
            if value is not None:
                values[field_name] = value
                origins[field_name] = provider.name
                if field_name in SECRET_FIELDS:
                    register_secret(value)
                break
    return SourceSecrets(source_name, values, origins)


def missing_secrets(
    source_name: str, source_type: str, providers: Optional[Iterable[ConfigProvider]] = None
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
