"""Trigger functions. Each turns its event into a start request and starts the orchestration.

Every starter uses one instance id per workbook (the singleton pattern): a run of a workbook
never overlaps the previous run of the same workbook, whose incremental jobs would otherwise
load the same rows twice.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrations import ORCHESTRATOR
from shared.start_request import StartRequestError, parse_start_request

bp = df.Blueprint()
log = logging.getLogger(__name__)

ACTIVE = {df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending,
          df.OrchestrationRuntimeStatus.ContinuedAsNew}


def instance_id_for(config: str) -> str:
    """The fixed instance id of a workbook (instance ids may not contain `/`, `\\`, `#` or `?`)."""
    stem = re.sub(r"\.xlsx$", "", config, flags=re.IGNORECASE)
    return "ingestion-" + re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-")[:90]


async def start_singleton(client: df.DurableOrchestrationClient, request: dict[str, Any]) -> tuple[str, bool]:
    """Start the orchestration for `request` unless that workbook's run is still going.

    Returns:
        The instance id, and whether a new run was started.
    """
    instance_id = instance_id_for(request["config"])
    status = await client.get_status(instance_id)
    if status is not None and status.runtime_status in ACTIVE:
        log.warning("ingestion %s is still %s; not starting another run", instance_id, status.runtime_status.value)
        return instance_id, False
    await client.start_new(ORCHESTRATOR, instance_id=instance_id, client_input=request)
    log.info("started ingestion %s for %s", instance_id, request["config"])
    return instance_id, True


def _json(body: dict[str, Any], status_code: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status_code, mimetype="application/json")


@bp.route(route="ingestions", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_ingestion_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """POST /api/ingestions with an optional `{"config", "only", "dry_run"}` body: 202 + status URLs."""
    try:
        request = parse_start_request(req.get_body())
    except StartRequestError as exc:
        return _json(exc.to_dict(), 400)
    instance_id, started = await start_singleton(client, request)
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
        return _json({"error": "not found", "instance_id": instance_id}, 404)
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
    """On schedule: run the default workbook (`INGESTION_CONFIG`)."""
    if timer.past_due:
        log.warning("ingestion timer is past due")
    await start_singleton(client, parse_start_request(None))


@bp.blob_trigger(arg_name="blob", path="%CONFIG_CONTAINER%/{name}.xlsx", connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def start_ingestion_blob(blob: func.InputStream, client: df.DurableOrchestrationClient) -> None:
    """A workbook dropped into the config container: run it (only its path travels, never its bytes)."""
    await start_singleton(client, parse_start_request({"config": blob.name}))


@bp.queue_trigger(arg_name="msg", queue_name="%INGESTION_QUEUE%", connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def start_ingestion_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    """A message with the HTTP body's shape. A malformed message is logged and dropped: retrying
    it could never succeed."""
    try:
        request = parse_start_request(msg.get_body())
    except StartRequestError as exc:
        log.error("ignored malformed ingestion message %s: %s", msg.id, exc)
        return
    await start_singleton(client, request)

