"""Peak RSS of a process tree: the children's memory is summed, not just the largest process's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.proctree import run_measured

HOLD = "import time; b = bytearray({mib} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep({sec})"


def test_one_process_peak_and_exit_code(tmp_path: Path) -> None:
    m = run_measured([sys.executable, "-c", HOLD.format(mib=80, sec=0.3) + "; raise SystemExit(3)"],
                     tmp_path, os.environ, tmp_path / "log")
    assert m.returncode == 3
    assert 80 <= m.peak_rss_mib < 200
    assert m.seconds >= 0.3


def test_children_running_together_are_summed(tmp_path: Path) -> None:
    child = f"{sys.executable} -c \"{HOLD.format(mib=80, sec=1.0)}\""
    m = run_measured(["/bin/sh", "-c", f"{child} & {child}; wait; echo done"], tmp_path, os.environ, tmp_path / "log")
    assert m.returncode == 0 and m.output.strip().endswith("done")
    assert m.peak_rss_mib >= 160  # both children at once; the largest alone holds ~90 MiB


def test_the_parents_memory_is_not_counted(tmp_path: Path) -> None:
    held = bytearray(250 * 2**20)
    held[::4096] = b"x" * len(held[::4096])  # resident in this process, which forks the child
    m = run_measured([sys.executable, "-c", "pass"], tmp_path, os.environ, tmp_path / "log")
    assert m.peak_rss_mib < 100, "the child's figure must not include its parent's 250 MiB"
    del held
