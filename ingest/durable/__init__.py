"""Local Durable Functions runtime: run the app's orchestrators without the Functions host.

Orchestrators and activities are written once, on a `df.DFApp`, for Azure. Locally the CLI,
the demo and the tests hand that app to `LocalDurableRuntime`, which replays the
orchestrators through the SDK's own handler (history JSON in, actions JSON out) the way the
Durable extension does, runs activities on a thread pool and fires timers in real or
virtual time. Orchestrator code cannot tell the two runtimes apart.

    from function_app import app
    from ingest.durable import LocalDurableClient, LocalDurableRuntime

    runtime = LocalDurableRuntime(app, max_parallel=4,
                                  on_status=lambda iid, status: print(iid, status))
    result = runtime.run("ingest_orchestrator", {"jobs": [...]})
    if not result.succeeded:
        raise SystemExit(result.error)

    # An HTTP starter runs unchanged against the SDK's client class, wired to the runtime:
    starter = runtime.functions.clients["http_start"]
    response = await starter.fn(request, **{starter.parameter: LocalDurableClient(runtime)})

It models what the app uses: activities, sub-orchestrations, durable timers, `task_any` /
`task_all`, `*_with_retry`, custom status and termination (`runtime.terminate`). External
events, continue-as-new and durable HTTP fail the orchestration as unsupported; the client
double serves `start_new` and `get_status` only.

`faults=Faults(...)` models Durable's at-least-once delivery (seeded redeliveries, kills and
concurrent duplicates of activities; see `faults.py`).

Tests use `virtual_time=True` (timers fire as soon as nothing else can progress) and
`activity_sleep` to give activities a duration in that clock.

May import: the Durable SDK, the OpenTelemetry API and `shared.redaction`; it is handed the app, it
does not import it.
"""

from .client import LocalDurableClient
from .clock import activity_sleep
from .faults import KILL, MODES, REDELIVER, TWICE, ActivityKilled, FaultRule, Faults
from .functions import index_app
from .models import COMPLETED, FAILED, RUNNING, TERMINATED, OrchestrationResult
from .runtime import LocalDurableRuntime

__all__ = [
    "COMPLETED",
    "FAILED",
    "RUNNING",
    "TERMINATED",
    "KILL",
    "MODES",
    "REDELIVER",
    "TWICE",
    "ActivityKilled",
    "FaultRule",
    "Faults",
    "LocalDurableClient",
    "LocalDurableRuntime",
    "OrchestrationResult",
    "activity_sleep",
    "index_app",
]
