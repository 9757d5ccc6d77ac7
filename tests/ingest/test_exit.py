"""`python -m ingest` ends the process without the interpreter's teardown, and nothing is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_exit_now_waits_for_threads_runs_atexit_flushes_and_keeps_the_code(tmp_path: Path) -> None:
    log = tmp_path / "handler.log"
    code = f"""
import atexit, logging, sys, threading, time
from ingest.cli import exit_now

class Torn:
    def __del__(self):
        print("torn down")  # printed by the interpreter's teardown (sys.exit), not by exit_now

torn = Torn()
handler = logging.FileHandler({str(log)!r})
logging.getLogger("t").addHandler(handler)
logging.getLogger("t").warning("buffered until the handler is closed")
atexit.register(lambda: print("atexit ran"))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
sys.stdout.write("no newline, still buffered")
sys.stderr.write("to stderr")
exit_now(3)
"""
    done = _python(code)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["no newline, still bufferedthread done", "atexit ran"]
    assert done.stderr == "to stderr"
    assert log.read_text() == "buffered until the handler is closed\n"  # logging's atexit closed it


def test_exit_now_stops_idle_executor_workers_as_the_interpreter_does() -> None:
    code = """
from concurrent.futures import ThreadPoolExecutor
from ingest.cli import exit_now
pool = ThreadPoolExecutor(2)  # never shut down: its idle workers wait for work
print(pool.submit(lambda: 6 * 7).result())
exit_now(0)
"""
    done = _python(code)  # would wait forever if only the threads were joined
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr


def test_exit_now_exits_the_ordinary_way_for_a_message_or_none() -> None:
    done = _python("from ingest.cli import exit_now\nexit_now('a message')")
    assert (done.returncode, done.stderr.strip()) == (1, "a message")
    assert _python("from ingest.cli import exit_now\nexit_now(None)").returncode == 0


def test_python_m_ingest_exits_through_exit_now_with_the_command_code(tmp_path: Path) -> None:
    code = """
import atexit, runpy, sys
from ingest import cli
calls = []
real = cli.exit_now
cli.exit_now = lambda code: (calls.append(code), real(code))
atexit.register(lambda: print("exit_now", calls))
sys.argv = ["ingest", "validate", sys.argv[1]]
runpy.run_module("ingest", run_name="__main__")
"""
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.xlsx")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "exit_now [2]"
