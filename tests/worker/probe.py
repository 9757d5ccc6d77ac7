"""Load and call the Functions app through the real Python worker library, as the host does.

Runs inside the worker venv (Python 3.13 + `azure-functions-runtime`), started by
`test_worker_loads_app.py`; it cannot run in the main venv, which has no worker library.

    probe.py validate APP_DIR   index the app, then validate function by function (the worker
                                stops at the first rejected function; this names every one);
                                prints one JSON report
    probe.py serve APP_DIR      a worker session: reads one JSON request per stdin line
                                ({"op": "init"} or {"op": "invoke", ...}), answers one JSON line
                                each, driving the worker's own init / metadata / load /
                                invocation handlers

Typed data travels as JSON: {"json": str} | {"string": str} | {"bytes": base64} |
{"http": {"method", "url", "headers", "params", "query", "body": <typed data>}} (requests) or
{"http": {"status_code", "headers", "body": <typed data>}} (responses).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import host_protos as protos  # beside this file: the stand-in for the host's protobuf classes

MAX_ERROR = 2000


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


def _enter_app(app_dir: str) -> str:
    """Make the app importable the way the host starts the worker: cwd and sys.path at its root."""
    app_dir = str(Path(app_dir).resolve())
    os.chdir(app_dir)
    sys.path.insert(0, app_dir)
    return app_dir


def validate(app_dir: str) -> dict[str, Any]:
    """Index the app with the worker's loader and validate every function on its own."""
    from azure_functions_runtime import functions, loader
    from azure_functions_runtime.bindings import meta

    app_dir = _enter_app(app_dir)
    meta.load_binding_registry()  # what worker_init_request does before indexing
    report: dict[str, Any] = {"functions": {}, "versions": _versions()}
    try:
        indexed = loader.index_function_app(os.path.join(app_dir, "function_app.py"))
    except Exception as exc:  # the import or the app's own indexing failed: nothing loads
        report["index_error"] = _error(exc)
        return report
    for fn in indexed:
        name = fn.get_function_name()
        entry: dict[str, Any] = {"error": None}
        try:
            # The per-function steps of the worker's process_indexed_function, one function at a
            # time with a fresh registry: binding validation, binding/retry protos, metadata.
            results, _ = loader.process_indexed_function(protos, functions.Registry(), [fn], app_dir)
            entry["bindings"] = [json.loads(b) for b in results[0].raw_bindings]
        except Exception as exc:
            entry["error"] = _error(exc)
            entry["bindings"] = [json.loads(b) for b in fn.get_raw_bindings()]
        report["functions"][name] = entry
    return report


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("azure-functions", "azure-functions-durable", "azure-functions-runtime")}


def typed_data(spec: dict[str, Any]) -> protos.TypedData:
    """The TypedData the host would send for `spec`."""
    (kind, value), = spec.items()
    if kind == "bytes":
        return protos.TypedData(bytes=base64.b64decode(value))
    if kind == "http":
        return protos.TypedData(http=protos.RpcHttp(
            method=value["method"], url=value["url"], headers=value.get("headers", {}),
            params=value.get("params", {}), query=value.get("query", {}),
            body=typed_data(value.get("body", {"bytes": ""}))))
    return protos.TypedData(**{kind: value})


def typed_data_spec(td: Any) -> dict[str, Any] | None:
    """`td` (a TypedData the worker returned) as JSON."""
    if td is None:
        return None
    kind = td.WhichOneof("data")
    if kind is None:
        return None
    value = getattr(td, kind)
    if kind in ("bytes", "stream"):
        return {kind: base64.b64encode(value).decode()}
    if kind == "http":
        return {"http": {"status_code": value.status_code, "headers": dict(value.headers),
                         "cookies": len(value.cookies or []), "body": typed_data_spec(value.body)}}
    return {kind: value}


class Session:
    """One worker process as the host drives it: init, metadata, load, then invocations."""

    def __init__(self, app_dir: str) -> None:
        self.app_dir = _enter_app(app_dir)
        self.loop = asyncio.new_event_loop()  # the worker keeps one loop for its lifetime
        asyncio.set_event_loop(self.loop)
        self.function_ids: dict[str, str] = {}

    def _request(self, **payload: Any) -> SimpleNamespace:
        return SimpleNamespace(request=SimpleNamespace(**payload),
                               properties={"host": "127.0.0.1", "protos": protos})

    def init(self) -> dict[str, Any]:
        import azure_functions_runtime as worker

        worker.start_threadpool_executor()
        init = self.loop.run_until_complete(worker.worker_init_request(self._request(
            worker_init_request=protos.WorkerInitRequest(function_app_directory=self.app_dir))))
        if init.result.status != protos.StatusResult.Success:
            return {"status": "Failure", "message": init.result.exception.message[:MAX_ERROR]}
        metadata = self.loop.run_until_complete(worker.functions_metadata_request(self._request()))
        for md in metadata.function_metadata_results or []:
            loaded = self.loop.run_until_complete(worker.function_load_request(self._request(
                function_load_request=SimpleNamespace(function_id=md.function_id))))
            if loaded.result.status != protos.StatusResult.Success:
                return {"status": "Failure", "message": f"load of {md.name} failed"}
            self.function_ids[md.name] = md.function_id
        return {"status": "Success", "functions": sorted(self.function_ids)}

    def invoke(self, function: str, input_data: dict[str, Any],
               trigger_metadata: dict[str, Any] | None = None, trace_parent: str = "") -> dict[str, Any]:
        import azure_functions_runtime as worker

        request = protos.InvocationRequest(
            invocation_id=str(uuid.uuid4()),
            function_id=self.function_ids[function],
            input_data=[protos.ParameterBinding(name=name, data=typed_data(spec))
                        for name, spec in input_data.items()],
            trigger_metadata={k: typed_data(v) for k, v in (trigger_metadata or {}).items()},
            # The host's trace context of the invocation (W3C traceparent), as the host sends it.
            trace_context=protos.RpcTraceContext(trace_parent=trace_parent, trace_state="", attributes={}),
        )
        response = self.loop.run_until_complete(worker.invocation_request(self._request(invocation_request=request)))
        ok = response.result.status == protos.StatusResult.Success
        return {
            "status": "Success" if ok else "Failure",
            "message": None if ok else response.result.exception.message[:MAX_ERROR],
            "return_value": typed_data_spec(response.return_value),
            "output_data": {b.name: typed_data_spec(b.data) for b in response.output_data},
        }


def serve(app_dir: str) -> None:
    """Answer JSON-line requests on the real stdout; the app's own prints go to stderr."""
    out = sys.stdout
    sys.stdout = sys.stderr
    session = Session(app_dir)
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        try:
            answer = session.init() if op == "init" else session.invoke(**request)
        except Exception as exc:  # a probe-side failure: report it rather than hang the test
            answer = {"status": "ProbeError", "message": _error(exc)}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("validate", "serve"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "validate":
        out, sys.stdout = sys.stdout, sys.stderr  # the app's own prints must not mix with the report
        report = validate(argv[2])
        out.write(json.dumps(report) + "\n")
        return 0
    serve(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
