"""`POST /api/breakers/{source}/reset`: close a source's circuit breaker (function-key auth).

Same reset as `python -m ingest breakers reset` (shared/breakers/admin.py): through the
store's ETag-safe `update` in Table Storage, or the SQLite store locally.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

import azure.functions as func

from shared.workbook_ref import short
from starters.functions import bp

log = logging.getLogger(__name__)


def _json(body: dict[str, Any], status_code: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status_code, mimetype="application/json")


@bp.route(route="breakers/{source}/reset", methods=["POST"])
def reset_breaker_http(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/breakers/{source}/reset (no body): 200 with the new state; 400 for a malformed
    source name; 404 when no breaker of that name is stored; 409 when concurrent changes won every
    retry; 503 when the breaker store is unreachable. Bodies are small (errors cut to 300
    characters, the last error to 500, names to 100)."""
    from shared.breakers import TableStoreConflictError, TableStoreError, TableStoreUnavailableError
    from shared.breakers.admin import BreakerNameError, check_name, reset, state_view, store_from_env

    source = req.route_params.get("source", "")
    try:
        name = check_name(source, allow_lake=False)
    except BreakerNameError as exc:
        return _json({"error": "invalid source name", "message": short(str(exc), 300)}, 400)
    try:
        state = reset(store_from_env(), name)
    except TableStoreConflictError as exc:
        return _json({"error": "conflict", "source": name, "message": short(str(exc), 300)}, 409)
    except TableStoreUnavailableError as exc:
        log.error("breaker reset of %s failed: %s", name, exc)
        return _json({"error": "storage unavailable", "message": short(str(exc), 300)}, 503)
    except (TableStoreError, sqlite3.Error) as exc:
        log.error("breaker reset of %s failed: %s", name, exc)
        return _json({"error": "breaker store failed", "message": short(str(exc), 300)}, 503)
    if state is None:
        return _json({"error": "not found", "source": short(name, 100)}, 404)
    log.warning("circuit breaker of %s reset over HTTP", name)
    return _json({"source": name, "state": state_view(state, error_chars=500)}, 200)
