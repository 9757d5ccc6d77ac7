"""Per-run temporary work folders (dlt's pipelines directory), and removing those of killed runs.

A folder's name says which process made it: `<prefix>-<pid>.<start ticks>.<host hash>-<random>`.
The name is made in one `mkdir`, so a run killed at any instant (while creating the folder, while
dlt writes into it, or half-way through deleting it) leaves a folder whose owner can still be
read, and the next run on this host removes it once that process is gone. An owner written into a
file inside the folder could be missing or empty after such a kill, and its folder would stay
forever.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

log = logging.getLogger(__name__)

_OWNED = re.compile(r"^(?P<prefix>.+)-(?P<pid>\d+)\.(?P<start>\d+|x)\.(?P<host>[0-9a-f]{8})-[^-]+$")


@lru_cache(maxsize=1)
def _host_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _start_ticks(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot ("x" where /proc has none); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "x"


def owner_token(pid: Optional[int] = None) -> str:
    """`<pid>.<start ticks>.<host hash>` of a process (this one by default)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_start_ticks(pid) or 'x'}.{_host_hash()}"


@contextmanager
def work_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder under `parent` for this run, removed afterwards.

    Folders left by runs on this host that no longer exist are removed first.

    Args:
        parent: The work root (created if missing).
        prefix: The start of the folder's name (the job's pipeline name).
    """
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{owner_token()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(parent: Path) -> list[Path]:
    """Delete the folders under `parent` made by processes of this host that are gone.

    Returns:
        The folders removed.
    """
    removed = []
    for folder in parent.iterdir() if parent.is_dir() else ():
        match = _OWNED.match(folder.name)
        if not match or match["host"] != _host_hash() or not folder.is_dir():
            continue
        ticks = _start_ticks(int(match["pid"]))
        if ticks is None or (match["start"] != "x" and ticks != match["start"]):
            log.info("removing work folder %s of a run that is gone", folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
