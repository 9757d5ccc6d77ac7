"""The Durable SDK's HTTP helpers, loaded on their first call instead of at start-up.

`azure.durable_functions` imports its management-API client, and that client's HTTP helpers
(`azure.durable_functions.models.utils.http_utils`) import aiohttp, which builds its SSL
contexts (reading the CA bundle) as it is imported: 0.1-0.3 s of every `python -m ingest run`
on a 2-core box, before anything runs. The local host never sends those requests:
`LocalDurableClient` replaces the client's HTTP callables with the in-process runtime.

`defer()`, called before the SDK is imported, puts a stand-in module under that name. Its three
helpers load the SDK's real module on their first call and run its function; any other
attribute loads it too. So the SDK's code is unchanged and only loaded later, if ever. In
Azure the Functions worker imports the SDK as it is (`ingest` is not deployed).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

MODULE = "azure.durable_functions.models.utils.http_utils"
HELPERS = ("get_async_request", "post_async_request", "delete_async_request")
"""What the SDK's client imports from the module (`DurableOrchestrationClient.py`)."""

_lock = threading.RLock()


class _StandIn(types.ModuleType):
    """Stands in for the SDK's `http_utils` until something needs it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(load(), name)


def _forward(name: str) -> Any:
    async def helper(*args: Any, **kwargs: Any) -> Any:
        return await getattr(load(), name)(*args, **kwargs)

    helper.__name__ = helper.__qualname__ = name
    return helper


def defer() -> None:
    """Put the stand-in in place, unless the SDK's module is loaded already (or cannot be found)."""
    with _lock:
        if MODULE in sys.modules:
            return
        path = _module_path()
        if path is None:
            return
        stand_in = _StandIn(MODULE, __doc__)
        stand_in.__file__ = str(path)
        for name in HELPERS:
            setattr(stand_in, name, _forward(name))
        sys.modules[MODULE] = stand_in


def load() -> types.ModuleType:
    """The SDK's real module (loaded now if the stand-in is in its place)."""
    with _lock:
        module = sys.modules.get(MODULE)
        if module is not None and not isinstance(module, _StandIn):
            return module
        spec = importlib.util.spec_from_file_location(MODULE, module.__file__ if module else _module_path())
        assert spec is not None and spec.loader is not None
        real = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = real
        try:
            spec.loader.exec_module(real)
        except BaseException:
            if module is not None:
                sys.modules[MODULE] = module
            else:
                sys.modules.pop(MODULE, None)
            raise
        parent = sys.modules.get(MODULE.rpartition(".")[0])
        if parent is not None:
            setattr(parent, "http_utils", real)
        return real


def deferred() -> bool:
    """Whether the stand-in is in place (the SDK's module not loaded)."""
    return isinstance(sys.modules.get(MODULE), _StandIn)


def _module_path() -> Path | None:
    """Where the SDK's module is, found without importing the SDK (only the `azure` namespace)."""
    spec = importlib.util.find_spec("azure.durable_functions")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "utils" / "http_utils.py"
    return path if path.is_file() else None
