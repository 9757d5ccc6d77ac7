"""The local host loads the Durable SDK without aiohttp; the SDK's HTTP helpers still work when called."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_local_host_starts_without_aiohttp() -> None:
    # What `python -m ingest run` imports before its first activity: the CLI, the app, the runtime.
    code = ("import sys, ingest.cli, function_app, orchestrations, ingest.durable; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'yarl', 'multidict')))")
    assert _python(code) == "[]"


def test_the_sdk_helpers_load_the_real_module_when_called() -> None:
    code = """
import asyncio, sys
import ingest
from ingest import sdk_http
import azure.durable_functions
client = sys.modules['azure.durable_functions.models.DurableOrchestrationClient']
assert sdk_http.deferred() and "aiohttp" not in sys.modules
try:
    asyncio.run(client.get_async_request("http://127.0.0.1:9/runtime"))
except Exception as exc:
    print(type(exc).__module__.split(".")[0], end=" ")
real = sys.modules[sdk_http.MODULE]
print(not sdk_http.deferred(), "aiohttp" in sys.modules, real.get_async_request is not client.get_async_request)
"""
    # The call went through aiohttp (a connection error from it), and the real module replaced the stand-in.
    assert _python(code) == "aiohttp True True True"
