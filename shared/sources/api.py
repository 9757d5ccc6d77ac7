"""REST APIs through dlt's `rest_api_source` (pagination, auth and incremental from config)."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlsplit

from dlt.extract.resource import DltResource

from shared.sources.base import Source

DEFAULT_API_KEY_HEADER = "X-API-Key"
REQUEST_ATTEMPTS = 1
"""HTTP attempts per request inside one job attempt. dlt's client would retry 5 times (with
backoff) inside each of the orchestrator's attempts; the orchestrator's retry policy is the
one retry loop, so a failing API costs `max_attempts` requests, not 5x that."""


class ApiSource(Source):
    """One REST endpoint, written as one table named after the job's `table_name`."""

    source_type = "api"

    def base_url(self) -> str:
        """The API's base URL from the secrets."""
        return (self.secrets.get("base_url") or "").rstrip("/") + "/"

    def location(self) -> str:
        parts = urlsplit(self.base_url())
        # Only scheme and host: a base URL may carry a token in its query string.
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def estimate_rows(self) -> Optional[int]:
        return None

    def auth(self) -> Optional[dict[str, Any]]:
        """Bearer token or API key auth from the secrets (token wins when both are set)."""
        token = self.secrets.get("token")
        if token:
            return {"type": "bearer", "token": token}
        api_key = self.secrets.get("api_key")
        if api_key:
            return {
                "type": "api_key",
                "name": self.secrets.get("api_key_name") or DEFAULT_API_KEY_HEADER,
                "api_key": api_key,
                "location": self.secrets.get("api_key_location") or "header",
            }
        return None

    def endpoint(self) -> dict[str, Any]:
        """The `rest_api` endpoint config for this job."""
        job = self.job
        endpoint: dict[str, Any] = {"path": (job.api_endpoint or "").lstrip("/"), "params": dict(job.api_params)}
        if job.api_data_selector:
            endpoint["data_selector"] = job.api_data_selector
        if job.api_paginator and job.api_paginator != "auto":
            endpoint["paginator"] = job.api_paginator
        if job.is_incremental:
            incremental: dict[str, Any] = {"cursor_path": job.watermark_column}
            if job.last_watermark is not None:
                incremental["initial_value"] = job.last_watermark
            if job.api_incremental_param:
                incremental["start_param"] = job.api_incremental_param
            endpoint["incremental"] = incremental
        return endpoint

    def resource(self) -> DltResource:
        from dlt.sources.rest_api import rest_api_source

        client: dict[str, Any] = {"base_url": self.base_url(), "session": _session()}
        auth = self.auth()
        if auth:
            client["auth"] = auth
        resource_config: dict[str, Any] = {"name": self.job.table_name, "endpoint": self.endpoint()}
        if self.job.primary_key:
            resource_config["primary_key"] = list(self.job.primary_key)
        source = rest_api_source({"client": client, "resources": [resource_config]})
        return source.resources[self.job.table_name]


def _session() -> Any:
    """A requests session from dlt's client with its retries off (see `REQUEST_ATTEMPTS`).

    `raise_for_status=False`: dlt's REST client checks statuses itself (and wants to, for
    its response actions).
    """
    from dlt.sources.helpers.requests import Client

    return Client(request_max_attempts=REQUEST_ATTEMPTS, raise_for_status=False).session
