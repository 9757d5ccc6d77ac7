"""`GET /api/ingestions/{instance_id}/report`: the run's HTML report (function-key auth).

The same page as `python -m ingest report` (shared/report/), rendered from the run's metrics in
the metrics store (blobs `metadata/metrics_*.json` in `INGESTION_CONTAINER`, or the local metrics
folder without a storage account) with the trend of the runs before it. A starter's instance id
is one per workbook, so the newest run of that id is reported.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from shared.storage import StorageUnreachableError
from shared.workbook_ref import short
from starters.functions import bp

log = logging.getLogger(__name__)

HTML_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def _json(body: dict[str, Any], status_code: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status_code, mimetype="application/json")


@bp.route(route="ingestions/{instance_id}/report", methods=["GET"])
def get_ingestion_report(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/ingestions/{instance_id}/report: 200 text/html; 404 when no metrics of that run
    are stored (unknown, or still running); 503 when storage is unreachable."""
    from shared.report import render_report
    from shared.report.store import by_run_id, store_from_env

    instance_id = req.route_params.get("instance_id", "")
    try:
        found = by_run_id(store_from_env(), instance_id)
    except StorageUnreachableError as exc:
        log.error("cannot read the metrics of %s: %s", short(instance_id, 100), exc)
        return _json({"error": "storage unavailable", "message": short(str(exc), 300)}, 503)
    if found is None:
        return _json({"error": "not found", "instance_id": short(instance_id, 100)}, 404)
    page = render_report(found.metrics, found.trend)
    return func.HttpResponse(page, status_code=200, mimetype="text/html", charset="utf-8", headers=HTML_HEADERS)
