"""The durable-client double: the SDK's own client class answering from the local runtime."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from ingest.durable import LocalDurableClient

TIMEOUT = 30
LINK_KEYS = {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
             "purgeHistoryDeleteUri"}


def http_request(url: str, body: Any = None,
                 route_params: Optional[dict[str, str]] = None) -> func.HttpRequest:
    data = b"" if body is None else json.dumps(body).encode()
    return func.HttpRequest(method="POST", url=url, body=data, route_params=route_params or {},
                            headers={"Content-Type": "application/json"})


def test_start_new_and_completed_status(make_runtime):
    runtime = make_runtime()
    client = LocalDurableClient(runtime)

    async def scenario():
        instance_id = await client.start_new("fan_out_fan_in", None, [1, 2, 3])
        runtime.wait(instance_id, TIMEOUT)
        return instance_id, await client.get_status(instance_id, show_history=True)

    instance_id, status = asyncio.run(scenario())
    assert isinstance(status, DurableOrchestrationStatus) and status
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert status.instance_id == instance_id and status.name == "fan_out_fan_in"
    assert status.output == 12 and status.input_ == [1, 2, 3]
    assert status.custom_status == {"done": 3}
    assert status.created_time <= status.last_updated_time
    # The extension sends history as "historyEvents"; the SDK keeps it under that name.
    assert status.history is None
    assert status.historyEvents[1]["Name"] == "fan_out_fan_in"


def test_status_of_running_failed_and_unknown_instances(make_runtime):
    runtime = make_runtime()
    client = LocalDurableClient(runtime)

    async def scenario():
        waiting = await client.start_new("timer_probe", "fixed-id", 3600)
        running = await client.get_status(waiting)
        failed_id = await client.start_new("failing_orchestrator")
        runtime.wait(failed_id, TIMEOUT)
        failed = await client.get_status(failed_id)
        unknown = await client.get_status("no-such-instance")
        runtime.terminate(waiting, "test over")  # what an operator does through the extension
        terminated = await client.get_status(waiting)
        return waiting, running, failed, unknown, terminated

    waiting, running, failed, unknown, terminated = asyncio.run(scenario())
    assert waiting == "fixed-id"
    assert running.runtime_status in (df.OrchestrationRuntimeStatus.Pending,
                                      df.OrchestrationRuntimeStatus.Running)
    assert failed.runtime_status == df.OrchestrationRuntimeStatus.Failed
    assert failed.output == ("Orchestrator function 'failing_orchestrator' failed: "
                             "orchestrator exploded")
    assert failed.custom_status == "about to fail"
    assert not unknown  # the SDK's "no such instance" status is falsy
    assert terminated.runtime_status == df.OrchestrationRuntimeStatus.Terminated
    assert terminated.output == "test over"


def test_check_status_response_uses_the_request_origin(make_runtime):
    client = LocalDurableClient(make_runtime())
    request = http_request("https://ingest.example.net/api/orchestrators/fan_out_fan_in", [1])
    response = client.create_check_status_response(request, "abc123")
    assert response.status_code == 202
    body = json.loads(response.get_body())
    assert LINK_KEYS <= body.keys() and body["id"] == "abc123"
    assert response.headers["Location"] == body["statusQueryGetUri"]
    assert body["statusQueryGetUri"].startswith(
        "https://ingest.example.net/runtime/webhooks/durabletask/instances/abc123?")
    assert "/instances/abc123/terminate?reason={text}" in body["terminatePostUri"]
    assert "/instances/abc123/raiseEvent/{eventName}" in body["sendEventPostUri"]


def test_http_starter_runs_unchanged(make_runtime):
    runtime = make_runtime()
    client = LocalDurableClient(runtime)
    starter = runtime.functions.clients["http_start"]
    request = http_request("http://localhost:7071/api/orchestrators/fan_out_fan_in", [5, 6],
                           route_params={"name": "fan_out_fan_in"})
    response = asyncio.run(starter.fn(request, **{starter.parameter: client}))
    assert response.status_code == 202
    instance_id = json.loads(response.get_body())["id"]
    assert runtime.wait(instance_id, TIMEOUT).output == 22


@pytest.mark.parametrize("call", [
    lambda client, iid: client.terminate(iid, "stop"),
    lambda client, iid: client.raise_event(iid, "go", {"ok": True}),
    lambda client, iid: client.purge_instance_history(iid),
    lambda client, iid: client.get_status_all(),
], ids=["terminate", "raise_event", "purge", "get_status_all"])
def test_management_calls_the_app_never_makes_are_refused(make_runtime, call):
    """Only starting and reading a status are served; anything else raises instead of
    reaching for the network or pretending to work."""
    runtime = make_runtime()
    client = LocalDurableClient(runtime)
    instance_id = runtime.start("timer_probe", 3600)
    with pytest.raises(Exception, match="501|not supported"):
        asyncio.run(call(client, instance_id))
    assert runtime.get_status(instance_id, show_history=False).runtime_status in ("Pending",
                                                                               "Running")
    runtime.terminate(instance_id)


def test_start_new_unknown_orchestrator_raises(make_runtime):
    client = LocalDurableClient(make_runtime())
    with pytest.raises(Exception, match="not registered"):
        asyncio.run(client.start_new("does_not_exist"))
