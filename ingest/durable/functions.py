"""Find the orchestrators and activities registered on a `DFApp` and call them like the host.

The Functions worker indexes an app once (`app.get_functions()` raises on a second call:
it keeps the names it has seen), so the index is cached per app object and shared by every
runtime built on it. Use `index_app` rather than calling `get_functions()` yourself.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import azure.durable_functions as df
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

_OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"

ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
DURABLE_CLIENT = "durableClient"


@dataclass(frozen=True)
class OrchestratorFunction:
    """An orchestrator as the extension sees it.

    Attributes:
        name: Name used by `start_new` / `call_sub_orchestrator`.
        handle: The SDK's `Orchestrator.create(fn)` handle: context JSON in, state JSON out.
        generator: The user's generator function (for error messages only).
    """

    name: str
    handle: Callable[[str], str]
    generator: Optional[Callable[..., Any]] = None


@dataclass(frozen=True)
class ActivityFunction:
    """An activity as the host calls it: one keyword argument named like its trigger binding.

    Attributes:
        name: Name used by `call_activity`.
        parameter: The `input_name` of `@app.activity_trigger`.
        fn: The user's function, unwrapped (sync or async).
    """

    name: str
    parameter: str
    fn: Callable[..., Any]

    def invoke(self, input_json: Optional[str]) -> str:
        """Run the activity on a JSON input and return its JSON output.

        Input and output go through the same converter the Python worker uses
        (`ActivityTriggerConverter`), so a value that is not JSON-serialisable fails here the
        way it fails in Azure.

        Raises:
            Exception: Whatever the activity raised, or ValueError for a non-JSON output.
        """
        value = None
        if input_json is not None:
            value = ActivityTriggerConverter.decode(meta.Datum(type="json", value=input_json),
                                                    trigger_metadata=None)
        result = self.fn(**{self.parameter: value})
        if inspect.isawaitable(result):
            # The worker awaits async activities; each runs on its own loop in this thread.
            result = asyncio.run(_await(result))
        return ActivityTriggerConverter.encode(result, expected_type=None).value


async def _await(awaitable: Any) -> Any:
    return await awaitable


@dataclass(frozen=True)
class ClientFunction:
    """A function with a `durable_client_input` binding (typically an HTTP starter).

    Attributes:
        name: Function name.
        parameter: Name of the client parameter.
        fn: The user's code as written (the SDK keeps it as `.client_function`), to be
            called with a `LocalDurableClient` for `parameter`.
    """

    name: str
    parameter: str
    fn: Callable[..., Any]


@dataclass
class FunctionIndex:
    """Orchestrators and activities of one app, by name.

    Attributes:
        orchestrators: Name to orchestrator.
        activities: Name to activity.
        clients: Name to durable-client function (HTTP starters).
    """

    orchestrators: dict[str, OrchestratorFunction] = field(default_factory=dict)
    activities: dict[str, ActivityFunction] = field(default_factory=dict)
    clients: dict[str, ClientFunction] = field(default_factory=dict)

    def orchestrator(self, name: str) -> OrchestratorFunction:
        """Look up an orchestrator; the KeyError names the ones that exist."""
        try:
            return self.orchestrators[name]
        except KeyError:
            raise KeyError(f"orchestrator function '{name}' is not registered on the app "
                           f"(known: {', '.join(sorted(self.orchestrators)) or 'none'})") from None


_CACHE: weakref.WeakKeyDictionary[Any, FunctionIndex] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def index_app(app: Any) -> FunctionIndex:
    """Index a `df.DFApp` (or a `df.Blueprint`) once and return the cached result.

    Args:
        app: The app whose decorators registered the functions. A bare Blueprint is
            registered on a private DFApp first.

    Returns:
        The orchestrators and activities found.
    """
    with _CACHE_LOCK:
        cached = _CACHE.get(app)
        if cached is not None:
            return cached
        target = app
        if not hasattr(app, "get_functions"):
            target = df.DFApp()
            target.register_functions(app)
        try:
            functions = target.get_functions()
        except ValueError:
            # Someone else indexed this app already (a second get_functions() call fails on
            # the names it remembers); building the functions again has no such check.
            functions = [builder.build(target.auth_level)
                         for builder in target._function_builders]
        index = _build_index(functions)
        _CACHE[app] = index
        return index


def _build_index(functions: list[Any]) -> FunctionIndex:
    index = FunctionIndex()
    for function in functions:
        function_name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        for binding in bindings:
            kind = binding.get("type")
            if kind == ORCHESTRATION_TRIGGER:
                handle = function.get_user_function()
                orchestrator = OrchestratorFunction(function_name, handle,
                                                    getattr(handle, "orchestrator_function", None))
                _register(index.orchestrators, orchestrator, function_name,
                          binding.get("orchestration"))
            elif kind == ACTIVITY_TRIGGER:
                activity = ActivityFunction(function_name, binding["name"],
                                            function.get_user_function())
                _register(index.activities, activity, function_name, binding.get("activity"))
            elif kind == DURABLE_CLIENT:
                wrapper = function.get_user_function()
                index.clients[function_name] = ClientFunction(
                    function_name, binding["name"], getattr(wrapper, "client_function", wrapper))
    return index


def _register(table: dict[str, Any], entry: Any, function_name: str,
              binding_name: Optional[str]) -> None:
    # The binding may rename the function (activity=/orchestration=); callers that pass the
    # decorated object use the function name, so both resolve.
    for name in {function_name, binding_name or function_name}:
        table.setdefault(name, entry)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """Turn an exception into Durable's (Reason, Details).

    Reason is the message (or the type name when the message is empty); Details is the
    type plus where it was raised, kept to one line so orchestrators can log it.
    """
    reason = str(exc) or type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    details = type(exc).__name__
    if frames:
        frame = frames[-1]
        details += f" at {_short_path(frame.filename)}:{frame.lineno} in {frame.name}"
    return reason, details


def _short_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # other drive on Windows
        return os.path.basename(path)
    return os.path.basename(path) if relative.startswith("..") else relative


def orchestrator_failure(failure: Exception) -> tuple[str, Optional[dict[str, Any]]]:
    r"""Extract the orchestrator's own error message from the SDK's out-of-proc exception.

    The SDK raises `Exception(f"{exc}\n\n$OutOfProcData$:{state_json}")`; the state JSON
    (whose strings escape newlines, so the label cannot occur inside it) carries the error and
    the custom status.
    """
    text = str(failure)
    if _OUT_OF_PROC_LABEL not in text:
        return text or type(failure).__name__, None
    head, _, tail = text.rpartition(_OUT_OF_PROC_LABEL)
    try:
        state = json.loads(tail)
    except ValueError:
        return head, None
    return state.get("error") or head, state
