"""Destination pre-flight: before any job runs, prove the lake is reachable and writable.

Fast by design: a wrong host must fail in seconds with a message naming it, not after the
minutes of retries the storage SDKs (and adlfs) default to. Missing Azure containers are
created when the credentials allow it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from shared.lake.layout import bucket_url, container_and_prefix, is_azure, is_local, local_folder
from shared.redaction import clip, first_line, redact
from shared.storage import lake_credentials, parse_connection_string, storage_account

PROBE_NAME = "_ingestion_preflight"
PREFLIGHT_OPTIONS: dict[str, Any] = {"connection_timeout": 4, "read_timeout": 8, "retry_total": 0}


class PreflightError(RuntimeError):
    """The lake cannot be reached or written; nothing was loaded."""


def check_lake(url: Optional[str] = None, environ: Mapping[str, str] = os.environ) -> str:
    """Write and delete a probe in the lake root.

    Args:
        url: The lake root; `DESTINATION__FILESYSTEM__BUCKET_URL` or `./lake` when omitted.
        environ: Settings to read.

    Returns:
        The lake root that was checked.

    Raises:
        PreflightError: With the host (or folder) and the reason.
    """
    root = bucket_url(url)
    if is_local(root):
        _check_folder(Path(local_folder(root)))
    elif is_azure(root):
        _check_azure(root, environ)
    # Other fsspec protocols (s3://, gs://) are left to dlt's own error handling.
    return root


def _check_folder(folder: Path) -> None:
    probe = folder / f"{PROBE_NAME}_{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
    except OSError as exc:
        raise PreflightError(f"lake folder {folder} is not writable: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):  # also the empty file a full disk leaves behind
            probe.unlink(missing_ok=True)


def lake_service(root: str, environ: Mapping[str, str] = os.environ,
                 options: Optional[Mapping[str, Any]] = None) -> tuple[Any, str]:
    """A blob service client for an Azure lake's account, and its host for messages.

    Args:
        root: The lake root (`az://<container>/...` or `abfss://<container>@<host>/...`).
        environ: Settings to read.
        options: Blob SDK client options (default: the pre-flight's short timeouts, no retries).
    """
    options = dict(PREFLIGHT_OPTIONS if options is None else options)
    from azure.storage.blob import BlobServiceClient

    derived = lake_credentials(root, storage_account(environ), environ)
    kwargs = json.loads(environ.get("DESTINATION__FILESYSTEM__KWARGS") or "{}")
    conn = (derived.get("kwargs") or {}).get("connection_string") or kwargs.get("connection_string")
    if conn:
        parts = parse_connection_string(conn)
        host = urlsplit(parts.get("BlobEndpoint", "")).netloc or f"{parts.get('AccountName')}.blob.core.windows.net"
        return BlobServiceClient.from_connection_string(conn, **options), host
    prefix = "DESTINATION__FILESYSTEM__CREDENTIALS__"
    creds = derived.get("credentials") or {}
    name = creds.get("azure_storage_account_name") or environ.get(prefix + "AZURE_STORAGE_ACCOUNT_NAME")
    name = name or urlsplit(root).netloc.partition("@")[2].split(".")[0]
    if not name:
        raise PreflightError(f"lake {root}: no storage account name (set {prefix}AZURE_STORAGE_ACCOUNT_NAME)")
    host = environ.get(prefix + "AZURE_ACCOUNT_HOST") or f"{name}.blob.core.windows.net"
    credential: Any = (creds.get("azure_storage_account_key") or environ.get(prefix + "AZURE_STORAGE_ACCOUNT_KEY")
                       or environ.get(prefix + "AZURE_STORAGE_SAS_TOKEN"))
    if not credential:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return BlobServiceClient(f"https://{host}", credential=credential, **options), host


def _check_azure(root: str, environ: Mapping[str, str]) -> None:
    from azure.core.exceptions import ResourceExistsError

    container, folder = container_and_prefix(root)
    host = "?"
    try:
        service, host = lake_service(root, environ)
        client = service.get_container_client(container)
        try:
            client.create_container()
        except ResourceExistsError:
            pass
        probe = f"{folder}/{PROBE_NAME}_{uuid.uuid4().hex}".lstrip("/")
        try:
            client.upload_blob(probe, b"ok")
        finally:
            _delete_quietly(client, probe)  # also after a failed or timed-out upload
    except PreflightError:
        raise
    except Exception as exc:
        reason = first_line(exc, type(exc).__name__)
        raise PreflightError(clip(redact(f"lake {root} on {host} is not reachable or not writable: {reason}"))) from None


def _delete_quietly(client: Any, blob: str) -> None:
    """Remove a probe blob if it exists; a second error must not hide the first."""
    try:
        client.delete_blob(blob)
    except Exception:  # not found (the upload failed) or storage down: the first error is reported
        pass
