"""Wall time and peak resident memory of a command's whole process tree (Linux).

A thread samples the process and all its descendants every 20 ms (from
`/proc/<pid>/task/*/children` and `/proc/<pid>/status`): the peak is the larger of the highest
summed `VmRSS` seen and the highest single `VmHWM` seen (a process's own high-water mark since
its exec, so a peak between two samples still counts). The kernel's `ru_maxrss` is not used:
after fork+exec it starts from the parent's memory, so the bench's own DuckDB would show up in
every tool's figure. psutil is not needed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class Measured:
    """One finished command."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str
    """stdout and stderr together (the tail is shown when the command fails)."""
    cpu_seconds: float = 0.0
    """User + system CPU of the command and the descendants it waited for."""
    server_cpu_seconds: Optional[float] = None
    """CPU the database server spent meanwhile (`server_pid`), all of its work included."""


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids.extend(int(k) for k in text.split())
    except OSError:
        pass
    return kids


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


def _tree_memory(pid: int) -> tuple[int, int]:
    """(summed VmRSS, largest VmHWM) over the process tree, KiB."""
    total, largest, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        rss, hwm = _memory_kib(current)
        total, largest = total + rss, max(largest, hwm)
        todo.extend(_children(current))
    return total, largest


def process_cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU of a process and of the children it has reaped (a PostgreSQL postmaster
    reaps its backends), from `/proc/<pid>/stat`; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


SERVER_COMMANDS = {"postgresql": ("postgres", "postmaster"), "mariadb": ("mariadbd", "mysqld")}


def local_server_pid(engine: str, host: str) -> Optional[int]:
    """The pid of the database server on this machine (PostgreSQL: the postmaster, the parent
    of its backends); None for another host or when none is found."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    names = SERVER_COMMANDS.get(engine, ())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            parent = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]
            parent_comm = Path(f"/proc/{parent}/comm").read_text().strip() if parent != "0" else ""
        except OSError:
            continue
        if comm in names and parent_comm not in names:
            found.append(int(entry))
    return found[0] if len(found) == 1 else None


def run_measured(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path,
                 server_pid: Optional[int] = None) -> Measured:
    """Run `cmd` to completion; its output goes to `log`. With `server_pid`, also the CPU that
    process (a database server) spent meanwhile."""
    server_before = process_cpu_seconds(server_pid) if server_pid else None
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, *_tree_memory(proc.pid))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    server_after = process_cpu_seconds(server_pid) if server_pid else None
    server = server_after - server_before if server_before is not None and server_after is not None else None
    return Measured(seconds, peak / 1024, proc.returncode, log.read_text(errors="replace"),
                    usage.ru_utime + usage.ru_stime, server)
