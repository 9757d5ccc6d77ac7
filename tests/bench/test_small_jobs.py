"""bench.small_jobs: its targets are judged as issue 12 states them, and a small real run through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import small_jobs
from bench.small_jobs import EngineRuns, judge


def test_targets_fixed_cost_per_job_and_500_postgresql_jobs() -> None:
    fast = EngineRuns(500, totals=[30.0], fixed=[0.8])  # (30 - 0.8) / 500 = 0.058 s per job
    lines, missed = judge({"postgresql": fast})
    assert missed == 0 and len(lines) == 4
    slow = EngineRuns(500, totals=[128.0], fixed=[2.0])
    lines, missed = judge({"postgresql": slow, "sqlite": EngineRuns(50, totals=[12.0], fixed=[2.0])})
    assert missed == 3 + 2
    assert any("MISSED" in line and "500 small PostgreSQL jobs" in line and "128.00" in line for line in lines)
    assert not any("500 small" in line for line in judge({"postgresql": EngineRuns(50, [5.0], [1.0])})[0])


def test_per_job_cost_is_the_run_beyond_the_fixed_cost() -> None:
    runs = EngineRuns(10, totals=[5.0, 4.0, 9.0], fixed=[1.0, 3.0, 2.0])
    assert (runs.total, runs.fixed_cost) == (5.0, 2.0)
    assert runs.per_job == pytest.approx(0.3)


@pytest.mark.slow
def test_a_small_sqlite_run_is_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(small_jobs.tempfile, "gettempdir", lambda: str(tmp_path))
    assert small_jobs.main(["--jobs", "2", "--engine", "sqlite"]) == 0
    out = capsys.readouterr().out
    assert "2 one-table jobs of 100 rows" in out
    assert "sqlite: fixed cost per run" in out and "sqlite: cost per job" in out
