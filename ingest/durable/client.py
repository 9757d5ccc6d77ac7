"""A durable-client double: the SDK's own `DurableOrchestrationClient`, wired to the runtime.

The real client talks HTTP to the Durable extension's management API (`rpcBaseUrl`). This
double is the SDK client class itself with its HTTP callables replaced by
`LocalManagementApi`, which answers the two routes the starters use (start an instance, read
its status) from a `LocalDurableRuntime`. So `start_new`, `get_status` and
`create_check_status_response` run the SDK's real code, and an HTTP starter written against
the real client runs unchanged:

    client = LocalDurableClient(runtime)
    response = await http_start.client_function(req, client)   # the starter's user code
"""

from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlparse

import azure.durable_functions as df

from .history import format_timestamp
from .models import COMPLETED, FAILED, TERMINATED, OrchestrationResult
from .runtime import LocalDurableRuntime

LOCAL_ORIGIN = "http://localhost:7071"
"""What `func start` serves; URLs in check-status responses take the request's origin."""

RPC_BASE_URL = "http://127.0.0.1:17071/durabletask/"
"""The extension's local management endpoint, as the client binding announces it."""

_PLACEHOLDER = "INSTANCEID"

# Durable's status API answers 200 for finished instances, 202 while running, 500 for failed.
_STATUS_CODES = {COMPLETED: 200, TERMINATED: 200, FAILED: 500}


def client_binding(origin: str = LOCAL_ORIGIN, task_hub: str = "LocalTaskHub",
                   connection: str = "Storage") -> dict[str, Any]:
    """The JSON the extension passes to a `durable_client_input` binding.

    Args:
        origin: Scheme and host of the Functions host.
        task_hub: Task hub name shown in the URLs.
        connection: Storage connection setting name shown in the URLs.

    Returns:
        Binding payload with the management URL templates.
    """
    webhooks = f"{origin}/runtime/webhooks/durabletask"
    query = f"taskHub={task_hub}&connection={connection}"
    instance = f"{webhooks}/instances/{_PLACEHOLDER}"
    return {
        "taskHubName": task_hub,
        "creationUrls": {
            "createNewInstancePostUri":
                f"{webhooks}/orchestrators/{{functionName}}[/{{instanceId}}]?{query}",
            "createAndWaitOnNewInstancePostUri":
                f"{webhooks}/orchestrators/{{functionName}}[/{{instanceId}}]"
                f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}",
        },
        "managementUrls": {
            "id": _PLACEHOLDER,
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
        },
        "baseUrl": webhooks,
        "requiredQueryStringParameters": query,
        "rpcBaseUrl": RPC_BASE_URL,
    }


class LocalDurableClient(df.DurableOrchestrationClient):
    """`DurableOrchestrationClient` backed by a `LocalDurableRuntime` instead of HTTP.

    Supported: `start_new`, `get_status` (and what the SDK builds on them:
    `create_check_status_response`, `create_http_management_payload`). Other management calls
    (terminate, raise_event, purge...) get HTTP 501 and the SDK raises.

    Args:
        runtime: The runtime that runs the orchestrations.
        origin: Host origin for management URLs when no request is given.
    """

    def __init__(self, runtime: LocalDurableRuntime, origin: str = LOCAL_ORIGIN) -> None:
        super().__init__(json.dumps(client_binding(origin)))
        self.runtime = runtime
        api = LocalManagementApi(runtime, client_binding(origin)["managementUrls"])
        # The SDK keeps its transport in these attributes; they are the seam to the host.
        self._post_async_request = api.post
        self._get_async_request = api.get
        self._delete_async_request = api.delete


class LocalManagementApi:
    """The part of the extension's management HTTP API that the starters use.

    Each method returns `[status_code, body]` like `azure.durable_functions`'s
    `http_utils` helpers.
    """

    def __init__(self, runtime: LocalDurableRuntime, management_urls: dict[str, str]) -> None:
        self._runtime = runtime
        self._management_urls = management_urls

    async def post(self, url: str, data: Any = None, trace_parent: Optional[str] = None,
                   trace_state: Optional[str] = None,
                   function_invocation_id: Optional[str] = None) -> list[Any]:
        """POST route: start an orchestration."""
        parts, _ = self._route(url)
        if parts[:1] == ["orchestrators"] and len(parts) in (2, 3):
            return self._start(parts[1], parts[2] if len(parts) == 3 else None, data, trace_parent, trace_state)
        return [501, {"Message": f"not supported by the local durable runtime: POST {url}"}]

    async def get(self, url: str, function_invocation_id: Optional[str] = None) -> list[Any]:
        """GET route: status of one instance."""
        parts, query = self._route(url)
        show_history = query.get("showHistory", [""])[0].lower() == "true"
        if parts[:1] == ["instances"] and len(parts) == 2:
            status = self._runtime.get_status(parts[1], show_history=show_history)
            if status is None:
                return [404, ""]  # the SDK turns this into a falsy DurableOrchestrationStatus
            return [_STATUS_CODES.get(status.runtime_status, 202),
                    self._status_body(status, show_history)]
        return [501, {"Message": f"not supported by the local durable runtime: GET {url}"}]

    async def delete(self, url: str, function_invocation_id: Optional[str] = None) -> list[Any]:
        """No DELETE route (purge) is supported."""
        return [501, {"Message": f"not supported by the local durable runtime: DELETE {url}"}]

    # --- routes -----------------------------------------------------------------------------

    @staticmethod
    def _route(url: str) -> tuple[list[str], dict[str, list[str]]]:
        parsed = urlparse(url)
        path = parsed.path
        marker = "/durabletask/"
        if marker in path:
            path = path.split(marker, 1)[1]
        return [unquote(p) for p in path.split("/") if p], parse_qs(parsed.query)

    def _start(self, name: str, instance_id: Optional[str], data: Any, trace_parent: Optional[str] = None,
               trace_state: Optional[str] = None) -> list[Any]:
        # The SDK posts the input already serialised with df_dumps (or None), and the caller's
        # trace context as `traceparent` / `tracestate` headers.
        try:
            input_value = None if data is None else json.loads(data)
            instance_id = self._runtime.start(name, input_value, instance_id, trace_parent=trace_parent,
                                              trace_state=trace_state)
        except KeyError as exc:
            return [400, {"ExceptionMessage": str(exc.args[0])}]
        except ValueError as exc:
            return [409, {"Message": str(exc)}]
        links = {key: value.replace(self._management_urls["id"], instance_id)
                 for key, value in self._management_urls.items()}
        return [202, links]

    @staticmethod
    def _status_body(status: OrchestrationResult, show_history: bool) -> dict[str, Any]:
        output = status.output
        if status.runtime_status == FAILED:
            # What the extension reports for an orchestrator exception.
            output = f"Orchestrator function '{status.name}' failed: {status.error}"
        body = {
            "name": status.name,
            "instanceId": status.instance_id,
            "runtimeStatus": status.runtime_status,
            "input": status.input,
            "customStatus": status.custom_status,
            "output": output,
            "createdTime": format_timestamp(status.created_time),
            "lastUpdatedTime": format_timestamp(status.last_updated_time),
        }
        if show_history:
            # The extension's key; the SDK keeps it as the `historyEvents` attribute.
            body["historyEvents"] = status.history
        return body
