"""Trigger functions. Each turns its event into a start request and starts the orchestration.

Every starter uses one instance id per workbook (the singleton pattern): a run of a workbook
never overlaps the previous run of the same workbook, whose incremental jobs would otherwise
load the same rows twice. Requests are admitted by `starters.admission` (size limit, bounded
error messages, canonical workbook path in `CONFIG_CONTAINER`, existence check).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrations import ORCHESTRATOR
from shared.start_request import MAX_BODY_BYTES, RequestTooLarge, StartRequestError
from shared.storage import StorageUnreachableError
from shared.workbook_ref import short
from starters.admission import admit_async, instance_id_for

bp = df.Blueprint()
log = logging.getLogger(__name__)

ACTIVE = {df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending,
          df.OrchestrationRuntimeStatus.ContinuedAsNew}

__all__ = ["bp", "instance_id_for", "start_singleton", "status_summary"]


async def start_singleton(client: df.DurableOrchestrationClient, request: dict[str, Any], instance_id: str = "") -> tuple[str, bool]:
    """Start the orchestration for `request` unless that workbook's run is still going.

    Args:
        client: The durable client.
        request: An admitted request (canonical `config`).
        instance_id: Its instance id (default: derived from `config`).

    Returns:
        The instance id, and whether a new run was started.
    """
    instance_id = instance_id or instance_id_for(request["config"])
    status = await client.get_status(instance_id)
    if status is not None and status.runtime_status in ACTIVE:
        log.warning("ingestion %s is still %s; not starting another run", instance_id, status.runtime_status.value)
        return instance_id, False
    await client.start_new(ORCHESTRATOR, instance_id=instance_id, client_input=request)
    log.info("started ingestion %s for %s", instance_id, request["config"])
    return instance_id, True


def _json(body: dict[str, Any], status_code: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status_code, mimetype="application/json")


def _declared_length(req: func.HttpRequest) -> int:
    """The Content-Length the client declared (0 when absent or not a number)."""
    value = (req.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else 0


@bp.route(route="ingestions", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_ingestion_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/ingestions with an optional `{"config", "only", "dry_run"}` body (at most 64 KiB).

    202 + status URLs; 400 naming the bad field; 404 when the workbook does not exist; 409 while
    that workbook's run is still going; 413 for a larger body; 503 when storage is unreachable.
    """
    try:
        if _declared_length(req) > MAX_BODY_BYTES:
            raise RequestTooLarge(_declared_length(req))
        request, instance_id = await admit_async(req.get_body())
    except StartRequestError as exc:
        return _json(exc.to_dict(), exc.status)
    except StorageUnreachableError as exc:
        log.error("cannot check the workbook: %s", exc)
        return _json({"error": "storage unavailable", "message": short(str(exc), 300)}, 503)
    instance_id, started = await start_singleton(client, request, instance_id)
    if not started:
        return _json({"error": "already running", "instance_id": instance_id,
                      "status": f"/api/ingestions/{instance_id}"}, 409)
    return client.create_check_status_response(req, instance_id)


@bp.route(route="ingestions/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_ingestion_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/ingestions/{instance_id}: status, progress and, when done, the run summary."""
    instance_id = req.route_params.get("instance_id", "")
    status = await client.get_status(instance_id)
    if status is None or status.runtime_status is None:
        return _json({"error": "not found", "instance_id": short(instance_id, 100)}, 404)
    return _json(status_summary(status), 200)


def status_summary(status: df.DurableOrchestrationStatus) -> dict[str, Any]:
    """A readable view of an orchestration status."""
    body: dict[str, Any] = {
        "instance_id": status.instance_id,
        "status": status.runtime_status.value if status.runtime_status else None,
        "created": status.created_time,
        "last_updated": status.last_updated_time,
        "progress": status.custom_status,
    }
    if status.runtime_status == df.OrchestrationRuntimeStatus.Completed:
        body["result"] = status.output
    elif status.runtime_status == df.OrchestrationRuntimeStatus.Failed:
        body["error"] = status.output
    return body


@bp.timer_trigger(schedule="%INGESTION_SCHEDULE%", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def start_ingestion_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """On schedule: run the default workbook (`INGESTION_CONFIG`); a missing one is logged, not run."""
    if timer.past_due:
        log.warning("ingestion timer is past due")
    try:
        request, instance_id = await admit_async(None)
    except (StartRequestError, StorageUnreachableError) as exc:
        log.error("scheduled ingestion not started: %s", exc)
        return
    await start_singleton(client, request, instance_id)


@bp.blob_trigger(arg_name="blob", path="%CONFIG_CONTAINER%/{name}.xlsx", connection="AzureWebJobsStorage",
                 source=func.BlobSource.EVENT_GRID)
@bp.durable_client_input(client_name="client")
async def start_ingestion_blob(blob: func.InputStream, client: df.DurableOrchestrationClient) -> None:
    """A workbook dropped into the config container: run it (only its path travels, never its bytes).

    Event Grid source: the only blob trigger Flex Consumption supports, and instant on every plan;
    Azure needs an Event Grid subscription to the blob extension's webhook (see the README).
    """
    try:
        request, instance_id = await admit_async({"config": blob.name}, must_exist=False)
    except StartRequestError as exc:
        log.error("ignored blob %s: %s", short(blob.name or "", 120), exc)
        return
    await start_singleton(client, request, instance_id)


@bp.queue_trigger(arg_name="msg", queue_name="%INGESTION_QUEUE%", connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def start_ingestion_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """A message with the HTTP body's shape. A malformed, oversized or hostile message, or one
    naming a missing workbook, is logged (bounded) and dropped: retrying it could never succeed.
    Unreachable storage raises, so the message is retried (and ends in the poison queue)."""
    try:
        request, instance_id = await admit_async(msg.get_body())
    except StartRequestError as exc:
        log.error("ignored ingestion message %s: %s", short(str(msg.id), 64), exc)
        return
    except StorageUnreachableError as exc:
        raise RuntimeError(f"ingestion message {short(str(msg.id), 64)} not started: {exc}") from None
    except Exception as exc:  # hostile input must never crash the trigger into retries
        log.error("ignored ingestion message %s: %s", short(str(msg.id), 64), short(f"{type(exc).__name__}: {exc}", 300))
        return
    await start_singleton(client, request, instance_id)
