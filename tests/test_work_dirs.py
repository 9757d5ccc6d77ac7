"""Work folders of killed runs are removed by the next run; folders of live runs and other hosts stay.

Real processes: each owner is a Python process started here and SIGKILLed, not a faked pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from shared import work_dirs
from tests.conftest import ROOT

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from shared.work_dirs import work_dir
    with work_dir(Path(sys.argv[1]), "ingest__erp__orders_ab12") as path:
        (path / "pipeline").mkdir()
        (path / "pipeline" / "state.json").write_text("{}")
        print(path, flush=True)
        time.sleep(600)
""")


def hold(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real process inside `work_dir(parent)`; returns it and its folder."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(parent)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_killed_runs_folder_is_removed_by_the_next_run(tmp_path: Path) -> None:
    proc, folder = hold(tmp_path)
    kill(proc)
    assert folder.is_dir()
    with work_dirs.work_dir(tmp_path, "ingest__erp__orders_ab12") as mine:
        assert not folder.exists()
        assert mine.is_dir()
    assert not mine.exists() and list(tmp_path.iterdir()) == []


def test_a_folder_killed_half_way_through_its_own_removal_is_still_removed(tmp_path: Path) -> None:
    """The kill can land while the run deletes its folder: whatever is left still names its owner."""
    proc, folder = hold(tmp_path)
    kill(proc)
    (folder / "pipeline" / "state.json").unlink()  # what a partial rmtree leaves
    assert work_dirs.remove_stale(tmp_path) == [folder] and not folder.exists()


def test_a_live_runs_folder_stays(tmp_path: Path) -> None:
    proc, folder = hold(tmp_path)
    try:
        with work_dirs.work_dir(tmp_path, "ingest__erp__other_cd34"):
            assert folder.is_dir() and (folder / "pipeline" / "state.json").exists()
        assert work_dirs.remove_stale(tmp_path) == []
    finally:
        kill(proc)
    assert work_dirs.remove_stale(tmp_path) == [folder]


def test_a_reused_pid_does_not_keep_a_dead_runs_folder(tmp_path: Path) -> None:
    """Same pid, other start time: the process that made the folder is gone."""
    pid, ticks, host = work_dirs.owner_token().split(".")
    stale = tmp_path / f"ingest__erp__t_1-{pid}.{int(ticks) - 1}.{host}-abc123"
    stale.mkdir()
    assert work_dirs.remove_stale(tmp_path) == [stale]


def test_folders_of_other_hosts_and_other_names_stay(tmp_path: Path) -> None:
    """A work root on shared storage: another host's pids mean nothing here."""
    other_host = tmp_path / "ingest__erp__t_1-1.1.00000000-abc123"
    other_host.mkdir()
    unrelated = [tmp_path / "notes", tmp_path / f"ingest__erp__t_1-{2**22 + 7}-abc"]
    for path in unrelated:
        path.mkdir()
    if work_dirs.owner_token().endswith(".00000000"):  # pragma: no cover - a host hashing to zeros
        return
    assert work_dirs.remove_stale(tmp_path) == []
    assert other_host.is_dir() and all(p.is_dir() for p in unrelated)


def test_the_folder_name_is_made_in_one_step(tmp_path: Path) -> None:
    """No window where a folder exists without its owner: the owner is in the name mkdir makes."""
    with work_dirs.work_dir(tmp_path, "ingest__erp__t_1") as path:
        assert path.name.startswith(f"ingest__erp__t_1-{work_dirs.owner_token()}-")
        assert list(path.iterdir()) == []
    assert not path.exists()
