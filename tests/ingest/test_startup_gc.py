"""The CLI's start-up imports run without the cyclic garbage collector, which is on again for the command."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from ingest import cli

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_ingest_imports_without_collections() -> None:
    code = """
import atexit, gc, runpy, sys
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
at_enable, real_enable = [], gc.enable
gc.enable = lambda: at_enable.append(len(passes)) or real_enable()
sys.argv = ["ingest", "--help"]
# `python -m ingest` ends the process itself once the command is done (`cli.exit_now`), after the
# atexit handlers: read the state there.
atexit.register(lambda: print(at_enable[0], gc.isenabled(), gc.get_freeze_count() > 0))
runpy.run_module("ingest", run_name="__main__")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    passes, enabled, frozen = done.stdout.split()[-3:]
    # Collection passes before `main` turns the collector on: only while the `ingest` package
    # itself is imported (before `__main__` runs); with the collector on throughout, ~85.
    assert int(passes) < 20 and (enabled, frozen) == ("True", "True")


def test_the_run_imports_are_frozen_and_the_collector_is_back_on() -> None:
    assert gc.isenabled()
    with cli._imports_without_gc():
        assert not gc.isenabled()
        import shared.plan  # noqa: F401
    assert gc.isenabled() and gc.get_freeze_count() > 0
    gc.unfreeze()
