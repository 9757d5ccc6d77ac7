"""Post a BlobCreated event to the blob extension's webhook, as Event Grid would.

`start_ingestion_blob` uses the Event Grid source: the host does not poll the container, it waits
for Event Grid to POST `Microsoft.Storage.BlobCreated` events to
`/runtime/webhooks/blobs?functionName=Host.Functions.<function>`. Azurite has no Event Grid, so
under `func start` the event is posted by hand:

    python -m shared.blob_event config/jobs.xlsx            # after uploading it to Azurite

The blob is looked up on the storage connection (`AzureWebJobsStorage`, else Azurite's defaults)
for the URL, ETag and size the event carries: the blob extension reads `data.url` (container and
blob name), `data.eTag` and `data.blobType` (azure-sdk-for-net,
`Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/src/Config/BlobsExtensionConfigProvider.cs`).
Headers follow Microsoft's "manually post the request" steps for Event Grid triggers:
`Content-Type: application/json` and `aeg-event-type: Notification`; the body is an array of
events in the Event Grid schema. Against a deployed app, pass `--host https://<app host>` and
`--code <blobs_extension system key>` (the key is never printed).

Exit codes: 0 the webhook accepted the event (2xx); 1 it answered otherwise or could not be
reached; 2 the blob does not exist or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any, Optional, Sequence
from urllib.parse import urlencode

from shared.storage import DEVELOPMENT_STORAGE, StorageAccount, StorageUnreachableError, quick_options, storage_account, storage_error

DEFAULT_HOST = "http://localhost:7071"
DEFAULT_FUNCTION = "start_ingestion_blob"
WEBHOOK_PATH = "/runtime/webhooks/blobs"


def webhook_url(host: str, function: str = DEFAULT_FUNCTION, code: Optional[str] = None) -> str:
    """The blob extension's webhook for `function` (with the system key `code` in Azure)."""
    query = {"functionName": f"Host.Functions.{function}"}
    if code:
        query["code"] = code
    return f"{host.rstrip('/')}{WEBHOOK_PATH}?{urlencode(query)}"


def blob_created_event(
    account_name: str, container: str, name: str, url: str, etag: str, size: int, content_type: str = "application/octet-stream"
) -> dict[str, Any]:
    """One `Microsoft.Storage.BlobCreated` event in the Event Grid schema."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "topic": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/"
                 f"Microsoft.Storage/storageAccounts/{account_name}",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": str(uuid.uuid4()),
        "eventTime": now,
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": etag.strip('"'),
            "contentType": content_type,
            "contentLength": size,
            "blobType": "BlockBlob",
            "url": url,
            "sequencer": "0" * 32,
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
    }


def event_for_blob(account: StorageAccount, container: str, name: str) -> dict[str, Any]:
    """The BlobCreated event of an existing blob (its real URL, ETag and size).

    Raises:
        LookupError: The blob does not exist.
        StorageUnreachableError: Storage cannot be reached.
    """
    from azure.core.exceptions import ResourceNotFoundError

    blob = account.blob_service(**quick_options()).get_blob_client(container, name)
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        raise LookupError(f"blob {container}/{name} not found on {account.blob_host}") from None
    except Exception as exc:
        raise storage_error(exc, account.blob_host, f"reading {container}/{name}") from None
    return blob_created_event(account.account_name, container, name, blob.url, props.etag, props.size,
                              props.content_settings.content_type or "application/octet-stream")


def post_events(url: str, events: list[dict[str, Any]], timeout: float = 10) -> int:
    """POST `events` to the webhook as Event Grid does; return the HTTP status.

    Raises:
        OSError: The webhook cannot be reached.
    """
    request = urllib.request.Request(
        url, data=json.dumps(events).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "aeg-event-type": "Notification"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m shared.blob_event", description=__doc__.split("\n\n")[0])
    parser.add_argument("blob", help="<container>/<name> of the uploaded workbook, e.g. config/jobs.xlsx")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"Functions host base URL (default {DEFAULT_HOST})")
    parser.add_argument("--function", default=DEFAULT_FUNCTION, help=f"blob-triggered function (default {DEFAULT_FUNCTION})")
    parser.add_argument("--code", default=None, help="the blobs_extension system key (deployed apps only)")
    args = parser.parse_args(argv)
    container, _, name = args.blob.strip("/").partition("/")
    if not container or not name:
        print(f"error: '{args.blob[:80]}' is not <container>/<name>", file=sys.stderr)
        return 2
    try:
        account = storage_account() or storage_account({"AzureWebJobsStorage": DEVELOPMENT_STORAGE})
        assert account is not None
        event = event_for_blob(account, container, name)
    except (LookupError, StorageUnreachableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = webhook_url(args.host, args.function, args.code)
    shown = webhook_url(args.host, args.function, "***" if args.code else None)
    try:
        status = post_events(url, [event])
    except OSError as exc:
        print(f"error: cannot reach {shown}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f"error: {shown} answered HTTP {status}", file=sys.stderr)
        return 1
    print(f"posted BlobCreated for {container}/{name} to {shown}: HTTP {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
