"""The service's Azure Storage account: one connection, read the way the Functions host reads it.

Connection name `INGESTION_STORAGE` if set, else `AzureWebJobsStorage` (the host's own account):

- a connection string (account key, SAS, or `UseDevelopmentStorage=true` for Azurite), or
- identity-based: `<NAME>__accountName` (or `<NAME>__blobServiceUri` / `__queueServiceUri` /
  `__tableServiceUri`), authenticated with `DefaultAzureCredential` (managed identity, or a
  service principal through `AZURE_CLIENT_ID` / `AZURE_TENANT_ID` / `AZURE_CLIENT_SECRET`;
  `<NAME>__clientId` picks a user-assigned identity).

The account holds workbooks (blob), run snapshots, metrics and audit (blob), breaker states
(table) and failure events (queue). The lake is dlt's business (`DESTINATION__FILESYSTEM__*`),
but when the lake is on this same account and dlt has no credentials of its own, they are
derived from this connection (see `lake_credentials`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from shared.redaction import register_secret

CONNECTION_SETTINGS = ("INGESTION_STORAGE", "AzureWebJobsStorage")
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
"""What `UseDevelopmentStorage=true` means: Azurite on its default ports, with the emulator's
published development key (public, not a secret)."""
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 60, "retry_total": 3}
"""SDK options: a wrong host must fail in seconds, not after minutes of default retries."""
RETRY_BACKOFF = {"initial_backoff": 0.5, "increment_base": 1.5, "random_jitter_range": 0.5}
"""Waits between the retries of a blob or queue call: 2 s, 2.75 s, 3.9 s (+-0.5 s). The SDK's
default (15 s + 3**n, +-3 s) makes one call to a dead endpoint take ~90 s even with
`retry_total` 3; with these a run store, metrics or queue call gives up in ~9 s."""
BLOB_SCHEMES = ("az", "abfs", "abfss", "azure")
"""URL schemes that name a blob (fsspec/adlfs spellings)."""
QUICK_CONNECT_TIMEOUT = 3
"""Seconds to open a connection for a quick call (workbook fetch, existence check)."""


def quick_options() -> dict[str, Any]:
    """Blob client options for one quick call: a 3 s connect timeout and one retry after ~1 s.

    The SDK default (retry_total 3, backoff 15 s + 3**n) takes ~90 s to give up on a closed
    port; this fails in about two seconds (under 10 s for a silently dropped connection).
    """
    from azure.storage.blob import ExponentialRetry

    return {"connection_timeout": QUICK_CONNECT_TIMEOUT, "read_timeout": 30,
            "retry_policy": ExponentialRetry(initial_backoff=0, increment_base=1, retry_total=1, random_jitter_range=0.5)}


class StorageUnreachableError(RuntimeError):
    """The storage account could not be reached, or refused the credentials (one line, no secrets)."""


def storage_error(exc: BaseException, host: str, what: str) -> StorageUnreachableError:
    """A one-line `StorageUnreachableError` for an SDK exception, naming the endpoint `host`."""
    from shared.redaction import error_line

    return StorageUnreachableError(error_line(exc, f"storage {host} is not reachable or refused access ({what}): "))


def parse_connection_string(value: str) -> dict[str, str]:
    """`Key=Value;...` pairs of a storage connection string (keys as written)."""
    if value.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
        value = DEVELOPMENT_STORAGE
    parts = {}
    for item in value.split(";"):
        if "=" in item:
            key, _, val = item.partition("=")
            parts[key.strip()] = val.strip()
    return parts


@dataclass(frozen=True)
class StorageAccount:
    """Endpoints and authentication of the service's storage account."""

    setting: str
    """Which connection setting it came from (for messages)."""
    account_name: str
    blob_url: str
    queue_url: str
    table_url: str
    connection_string: Optional[str] = None
    """Set for key/SAS/Azurite connections; None for identity-based ones."""
    account_key: Optional[str] = None
    client_id: Optional[str] = None

    def __repr__(self) -> str:
        return f"StorageAccount({self.setting}: {self.blob_url})"

    @property
    def blob_host(self) -> str:
        """`host[:port]` of the blob endpoint, for messages."""
        return urlsplit(self.blob_url).netloc

    def credential(self) -> Any:
        """DefaultAzureCredential for identity-based connections; None otherwise."""
        if self.connection_string:
            return None
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self.client_id) if self.client_id else DefaultAzureCredential()

    def blob_service(self, **options: Any) -> Any:
        """A `BlobServiceClient` with short timeouts."""
        from azure.storage.blob import BlobServiceClient

        from azure.storage.blob import ExponentialRetry

        opts = {**CLIENT_OPTIONS, "retry_policy": ExponentialRetry(retry_total=CLIENT_OPTIONS["retry_total"], **RETRY_BACKOFF),
                **options}
        if self.connection_string:
            return BlobServiceClient.from_connection_string(self.connection_string, **opts)
        return BlobServiceClient(self.blob_url, credential=self.credential(), **opts)

    def queue_service(self, **options: Any) -> Any:
        """A `QueueServiceClient` whose messages are Base64, as Functions queue triggers expect."""
        from azure.storage.queue import BinaryBase64DecodePolicy, ExponentialRetry, QueueServiceClient, TextBase64EncodePolicy

        opts = {**CLIENT_OPTIONS, "retry_policy": ExponentialRetry(retry_total=CLIENT_OPTIONS["retry_total"], **RETRY_BACKOFF),
                "message_encode_policy": TextBase64EncodePolicy(),
                "message_decode_policy": BinaryBase64DecodePolicy(), **options}
        if self.connection_string:
            return QueueServiceClient.from_connection_string(self.connection_string, **opts)
        return QueueServiceClient(self.queue_url, credential=self.credential(), **opts)

    def table_service(self) -> Any:
        """A `TableServiceClient`."""
        from azure.data.tables import TableServiceClient

        if self.connection_string:
            return TableServiceClient.from_connection_string(self.connection_string)
        return TableServiceClient(self.table_url, credential=self.credential())


def storage_account(environ: Mapping[str, str] = os.environ) -> Optional[StorageAccount]:
    """The configured storage account, or None when the service runs on local files only."""
    for setting in CONNECTION_SETTINGS:
        value = environ.get(setting, "").strip()
        if value:
            return _from_connection_string(setting, value)
        name = environ.get(f"{setting}__accountName", "").strip()
        blob = environ.get(f"{setting}__blobServiceUri", "").strip()
        if name or blob:
            return _from_identity(setting, name, environ)
    return None


def _from_connection_string(setting: str, value: str) -> StorageAccount:
    parts = parse_connection_string(value)
    if value.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
        value = DEVELOPMENT_STORAGE
    name = parts.get("AccountName", "")
    protocol = parts.get("DefaultEndpointsProtocol", "https")
    suffix = parts.get("EndpointSuffix", "core.windows.net")

    def endpoint(kind: str) -> str:
        explicit = parts.get(f"{kind.capitalize()}Endpoint")
        return (explicit or f"{protocol}://{name}.{kind}.{suffix}").rstrip("/")

    if not name and "BlobEndpoint" in parts:  # SAS connection strings may omit the name
        name = urlsplit(parts["BlobEndpoint"]).netloc.split(".")[0]
    if not name:
        raise ValueError(f"{setting}: the connection string has no AccountName and no BlobEndpoint")
    for secret_key in ("AccountKey", "SharedAccessSignature"):
        register_secret(parts.get(secret_key))
    return StorageAccount(
        setting=setting, account_name=name, blob_url=endpoint("blob"), queue_url=endpoint("queue"),
        table_url=endpoint("table"), connection_string=value, account_key=parts.get("AccountKey"),
    )


def _from_identity(setting: str, name: str, environ: Mapping[str, str]) -> StorageAccount:
    def uri(kind: str) -> str:
        explicit = environ.get(f"{setting}__{kind}ServiceUri", "").strip()
        return (explicit or f"https://{name}.{kind}.core.windows.net").rstrip("/")

    blob = uri("blob")
    return StorageAccount(
        setting=setting, account_name=name or urlsplit(blob).netloc.split(".")[0], blob_url=blob,
        queue_url=uri("queue"), table_url=uri("table"), client_id=environ.get(f"{setting}__clientId") or None,
    )


def split_blob_path(path: str) -> tuple[str, str]:
    """`az://container/a/b.xlsx`, `abfss://container@host/a/b.xlsx` or `container/a/b.xlsx` ->
    (container, blob name)."""
    parts = urlsplit(path)
    if parts.scheme in BLOB_SCHEMES:
        container = parts.netloc.split("@")[0]
        name = parts.path.lstrip("/")
    else:
        container, _, name = path.lstrip("/").partition("/")
    if not container or not name:
        raise ValueError(f"'{path}' is not a blob path; expected <container>/<name> or az://<container>/<name>")
    return container, name


def lake_credentials(bucket_url: str, account: Optional[StorageAccount], environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """dlt filesystem arguments for an Azure lake on the service's own account.

    Returns `{}` (dlt's own settings apply) unless the lake is `az://`/`abfss://`, dlt has no
    `DESTINATION__FILESYSTEM__CREDENTIALS__*` of its own, and the storage connection carries an
    account key. Then the key goes to dlt's credentials and the connection string to adlfs
    (`kwargs`), which also carries custom endpoints such as Azurite's.
    """
    if urlsplit(bucket_url).scheme not in BLOB_SCHEMES or account is None:
        return {}
    if any(k.startswith("DESTINATION__FILESYSTEM__CREDENTIALS__") and v for k, v in environ.items()):
        return {}
    host = urlsplit(bucket_url).netloc.partition("@")[2]
    if host and not host.startswith(f"{account.account_name}."):
        return {}  # another account: dlt's own settings must say how to reach it
    if not account.account_key:
        return {"credentials": {"azure_storage_account_name": account.account_name}}
    return {
        "credentials": {"azure_storage_account_name": account.account_name,
                        "azure_storage_account_key": account.account_key},
        "kwargs": {"connection_string": account.connection_string},
    }
