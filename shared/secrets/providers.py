"""dlt config providers that hold source credentials, each answering `sources.<source>.<field>`.

Every provider is a dlt `ConfigProvider`: `get_value(field, hint, None, "sources", source)`.

- `DatabricksProvider` and `KeyVaultProvider` follow dlt's `VaultDocProvider` (as its Google and
  AWS providers do): `_look_vault` reads one key, the answers are kept in the provider's document,
  and each key is read at most once until `clear_lookup_cache()` (once per run: see
  `SecretChain.use_run`). They differ from dlt's vaults in two ways, on purpose: a key is our
  `<source>-<field>` name (Key Vault: `_` written as `-`), and only that exact key is read: no
  `dlt_secrets_toml` document, no `sources` fragments, and every value is stored as the string it
  is (a password that happens to parse as TOML or JSON stays a password).
- `EnvProvider` reads `SOURCES__<SOURCE>__<FIELD>` from a mapping (the process environment by
  default), live; unlike dlt's `EnvironProvider` it does not read `/run/secrets` files.
- `TomlProvider` reads `[sources.<source>]` of `.dlt/secrets.toml`, again when the file changes.

Databricks and Key Vault cannot run here: their tests use fakes of `dbutils` and of the SDK's
`SecretClient` / `DefaultAzureCredential`.
"""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path
from typing import Any, Mapping, Optional, Set, Tuple, Type

from dlt.common.configuration.providers import ConfigProvider, VaultDocProvider
from dlt.common.configuration.providers.doc import BaseDocProvider

SOURCES = "sources"
"""dlt's section of source configuration: a field's path is `sources.<source_name>.<field>`."""
DATABRICKS_SCOPE = "dlt-framework"


def default_secrets_toml() -> Path:
    """`.dlt/secrets.toml` under `DLT_PROJECT_DIR` or the working directory."""
    from shared.settings import settings

    return settings().dlt_project_dir / ".dlt" / "secrets.toml"


def lookup(provider: ConfigProvider, source_name: str, field_name: str) -> Optional[str]:
    """One field of one source from one provider, or None; a blank value counts as absent."""
    value, _ = provider.get_value(field_name, str, None, SOURCES, source_name)  # type: ignore[arg-type]
    return None if value is None or value == "" else str(value)


class _SourceFields:
    """`get(source, field)`: the lookup by our names, for callers outside the resolver."""

    def get(self, source_name: str, field_name: str) -> Optional[str]:
        """The value, or None when this provider does not have it."""
        return lookup(self, source_name, field_name)  # type: ignore[arg-type]


class _SecretSections:
    """A provider of secrets (not only config) organised in sections (`sources.<name>.<field>`)."""

    @property
    def supports_secrets(self) -> bool:
        return True

    @property
    def supports_sections(self) -> bool:
        return True


class _SourceVault(_SourceFields, VaultDocProvider):
    """A vault of single values named after `<source>-<field>`, read once per key per run."""

    def __init__(self) -> None:
        super().__init__(only_secrets=False, only_toml_fragments=False, list_secrets=False)
        self._lock = threading.Lock()

    @staticmethod
    def get_key_name(key: str, *sections: str) -> str:
        """`<source>-<field>`: the last section is the source name (`sources`, `<source>`)."""
        parts = [s for s in sections if s]
        return f"{parts[-1]}-{key}" if parts else key

    def get_value(
        self, key: str, hint: Type[Any], pipeline_name: Optional[str], *sections: str
    ) -> Tuple[Optional[Any], str]:
        if len(sections) != 2 or sections[0] != SOURCES:
            return None, key  # not a source field: nothing in this vault, and no call to it
        full_key = self.get_key_name(key, *sections)
        with self._lock:  # activities run in threads: one read per key, not one per thread
            self._update_from_vault(full_key, key, hint, None, sections)
        value, _ = BaseDocProvider.get_value(self, key, hint, None, *sections)
        return value, full_key

    def set_fragment(self, key: Optional[str], value_or_fragment: str, pipeline_name: str, *sections: str) -> None:
        # dlt would parse a value as a TOML/JSON fragment; ours are single strings.
        self.set_value(key or "", value_or_fragment, None, *sections)

    def clear_lookup_cache(self) -> None:
        """Forget what was read (a new run reads rotated or removed secrets afresh)."""
        with self._lock:
            super().clear_lookup_cache()
            self._config_doc = {}

    def _list_vault(self) -> Set[str]:
        raise NotImplementedError("listing is off: it needs more rights than reading a secret")

    @property
    def reads(self) -> int:
        """Keys read from the vault since the last `clear_lookup_cache()`."""
        return len(self._vault_lookups)


class KeyVaultProvider(_SourceVault):
    """Azure Key Vault secrets `<source>-<field>` with `_` written as `-` (Key Vault names allow
    letters, digits and dashes), through one `DefaultAzureCredential` per provider."""

    def __init__(self, vault_url: str, client: Any = None, credential: Any = None) -> None:
        """
        Args:
            vault_url: `AZURE_KEY_VAULT_URL`.
            client: A `SecretClient` (tests); built on first use otherwise.
            credential: The credential of that client; a `DefaultAzureCredential` by default.
        """
        self.vault_url = vault_url
        self._client = client
        self._credential = credential
        super().__init__()

    @staticmethod
    def get_key_name(key: str, *sections: str) -> str:
        return _SourceVault.get_key_name(key, *sections).replace("_", "-")

    @property
    def name(self) -> str:
        return "Azure Key Vault"

    @property
    def locations(self) -> list[str]:
        return [self.vault_url]

    def _get_client(self) -> Any:
        # Called under the provider's lock: one client and one credential per provider.
        if self._client is None:
            from azure.identity import DefaultAzureCredential
            from azure.keyvault.secrets import SecretClient

            self._credential = self._credential or DefaultAzureCredential()
            self._client = SecretClient(vault_url=self.vault_url, credential=self._credential)
        return self._client

    def _look_vault(self, full_key: str, hint: type) -> Optional[str]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._get_client().get_secret(full_key).value or None
        except ResourceNotFoundError:
            return None


class DatabricksProvider(_SourceVault):
    """Databricks secret scope `dlt-framework`, keys `<source>-<field>` (only inside Databricks)."""

    def __init__(self, dbutils: Any = None, scope: str = DATABRICKS_SCOPE) -> None:
        """
        Args:
            dbutils: Databricks `dbutils` (tests); taken from the Spark session otherwise.
            scope: The secret scope.
        """
        self._dbutils = dbutils
        self.scope = scope
        super().__init__()

    @property
    def name(self) -> str:
        return "Databricks secrets"

    @property
    def locations(self) -> list[str]:
        return [f"scope {self.scope}"]

    def _get_dbutils(self) -> Any:
        if self._dbutils is None:
            from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]
            from pyspark.sql import SparkSession  # type: ignore[import-not-found]

            self._dbutils = DBUtils(SparkSession.builder.getOrCreate())
        return self._dbutils

    def _look_vault(self, full_key: str, hint: type) -> Optional[str]:
        try:
            return self._get_dbutils().secrets.get(scope=self.scope, key=full_key) or None
        except Exception as exc:  # dbutils raises a generic error for a missing key
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                return None
            raise


class EnvProvider(_SourceFields, _SecretSections, ConfigProvider):
    """`SOURCES__<SOURCE_NAME>__<FIELD>` environment variables (dlt's convention), read live."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        self._environ = os.environ if environ is None else environ

    @staticmethod
    def get_key_name(key: str, *sections: str) -> str:
        return "__".join([*(s for s in sections if s), key]).upper()

    def get_value(
        self, key: str, hint: Type[Any], pipeline_name: Optional[str], *sections: str
    ) -> Tuple[Optional[Any], str]:
        name = self.get_key_name(key, *sections)
        return self._environ.get(name), name

    @property
    def name(self) -> str:
        return "environment"


class TomlProvider(_SourceFields, _SecretSections, BaseDocProvider):
    """`[sources.<source_name>]` in `.dlt/secrets.toml`, read again when the file changes."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or default_secrets_toml()
        self._stamp: Optional[tuple[int, int]] = None
        super().__init__({})

    def get_value(
        self, key: str, hint: Type[Any], pipeline_name: Optional[str], *sections: str
    ) -> Tuple[Optional[Any], str]:
        self._load()
        return super().get_value(key, hint, pipeline_name, *sections)

    def _load(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._config_doc, self._stamp = {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, "rb") as fh:
                self._config_doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            # The parser's message quotes no values, only positions.
            raise ValueError(f"{self.path} is not valid TOML: {exc}") from None
        self._stamp = stamp

    @property
    def name(self) -> str:
        return "secrets.toml"

    @property
    def locations(self) -> list[str]:
        return [str(self.path)]
