"""Bounded calls of dlt (adlfs) to an Azure lake: a dead endpoint fails a job in seconds, not minutes.

dlt reaches an `az://` / `abfss://` lake through adlfs, whose Blob client keeps the SDK's
defaults: 3 retries 15 s + 3**n apart and a 300 s connect timeout, so one call to a closed port
takes ~90 s and a load of a few files 271-860 s (measured). adlfs has no setting for the retry
policy, so the Azure protocols are registered with fsspec as a subclass that, once adlfs has
built its client, gives that client's retry policy and transport the bounds below. dlt finds
the class through fsspec's registry (`fsspec.get_filesystem_class`), so every lake client dlt
makes in this process is bounded.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.storage import BLOB_SCHEMES, CLIENT_OPTIONS, RETRY_BACKOFF

log = logging.getLogger(__name__)

RETRIES = 2
"""Retries of one lake call after the first try (connect, read and 5xx alike)."""
FIRST_BACKOFF_SECONDS = RETRY_BACKOFF["initial_backoff"]
BACKOFF_BASE = RETRY_BACKOFF["increment_base"]
"""Retry waits, the service's storage calls' (the SDK's formula, `first + base**n`): 2 s, then 2.75 s."""
CONNECT_TIMEOUT_SECONDS = CLIENT_OPTIONS["connection_timeout"]
READ_TIMEOUT_SECONDS = CLIENT_OPTIONS["read_timeout"]
"""The service's storage timeouts: a socket read may wait 60 s (a large block upload to a slow
account needs room)."""
AZURE_PROTOCOLS = (*BLOB_SCHEMES, "adl")
"""Every protocol adlfs serves (ours plus Data Lake Gen1's `adl`): all get the bounded client."""
_installed = False


def bound_client(service_client: Any) -> None:
    """Give an (async) Blob service client short timeouts and few, quick retries, in place."""
    config = getattr(service_client, "_config", None)
    policy = getattr(config, "retry_policy", None)
    if policy is not None and hasattr(policy, "total_retries"):
        policy.total_retries = RETRIES
        policy.connect_retries = RETRIES
        policy.read_retries = RETRIES
        policy.status_retries = RETRIES
        if hasattr(policy, "initial_backoff"):
            policy.initial_backoff = FIRST_BACKOFF_SECONDS
            policy.increment_base = BACKOFF_BASE
    else:
        log.warning("lake client: unknown retry policy %r; Azure lake calls keep the SDK's retries", policy)
    connection = getattr(getattr(config, "transport", None), "connection_config", None)
    if connection is not None:
        connection.timeout = CONNECT_TIMEOUT_SECONDS
        connection.read_timeout = READ_TIMEOUT_SECONDS


def install() -> None:
    """Register the bounded Azure file system for the Azure protocols (once per process)."""
    global _installed
    if _installed:
        return
    try:
        from adlfs import AzureBlobFileSystem
    except ImportError:  # no Azure lake possible without adlfs: nothing to bound
        return
    import fsspec

    class BoundedAzureBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc, valid-type]
        """adlfs with bounded retries and timeouts (see the module doc)."""

        def do_connect(self) -> None:
            super().do_connect()
            bound_client(self.service_client)

    for protocol in AZURE_PROTOCOLS:
        fsspec.register_implementation(protocol, BoundedAzureBlobFileSystem, clobber=True)
    _installed = True
