"""Wall time and peak resident memory of a command's whole process tree (Linux).

A thread samples the summed RSS of the process and all its descendants every 20 ms (from
`/proc/<pid>/task/*/children` and `/proc/<pid>/statm`); at exit the kernel's own peak of the
largest single process (`ru_maxrss` from `wait4`, which covers reaped descendants too) is
taken as well, and the larger of the two is the peak. psutil is not needed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

_PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class Measured:
    """One finished command."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str
    """stdout and stderr together (the tail is shown when the command fails)."""


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids.extend(int(k) for k in text.split())
    except OSError:
        pass
    return kids


def _tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(current))
    return total


def run_measured(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> Measured:
    """Run `cmd` to completion; its output goes to `log`."""
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    peak = max(peak, usage.ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
    return Measured(seconds, peak / 2**20, proc.returncode, log.read_text(errors="replace"))
