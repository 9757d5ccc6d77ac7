"""The acceptance targets of issue 12, in one place, and how a bench run is judged against them.

Each target reads one figure from the run's results; a target whose figure the run did not
measure (the tool, engine or table was left out, or the bench does not measure it yet) is
printed as not measured and never fails `--check`. The speed and memory targets are stated for
scale factor 1: at a smaller one, fixed costs weigh more and the figures are lower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from bench.runs import Runs

SPEED_TABLE = "lineitem"
"""The table the speed and memory targets are about (whole run, alone in its workbook)."""


@dataclass
class Results:
    """What one bench run measured."""

    compared: list[str] = field(default_factory=list)
    """The tables of the speed comparison."""
    runs: dict[str, dict[str, Runs]] = field(default_factory=dict)
    """engine -> tool -> runs."""
    tables_ok: dict[str, int] = field(default_factory=dict)
    """engine -> tables that verified (of 8)."""
    queries_equal: dict[str, int] = field(default_factory=dict)
    """engine -> TPC-H answers equal to DuckDB's (of 22)."""
    fixed_cost: dict[str, float] = field(default_factory=dict)
    """engine -> median seconds of a one-row run outside its job (whole run minus the job's duration)."""
    concurrency: Optional[float] = None
    """The 12-job workbook's span / (sum of its jobs' solo times / cores) (`--concurrency`)."""

    def ratio(self, engine: str, tool: str, other: str, rss: bool = False) -> Optional[float]:
        """tool/other in rows per second (or in peak RSS), when both ran on lineitem alone."""
        runs = self.runs.get(engine, {})
        if self.compared != [SPEED_TABLE] or tool not in runs or other not in runs:
            return None
        if rss:
            return runs[tool].median_rss / runs[other].median_rss
        return runs[tool].rows_per_second / runs[other].rows_per_second


@dataclass(frozen=True)
class Target:
    """One acceptance target: a figure, a bound, and which way is good."""

    text: str
    bound: float
    at_least: bool
    figure: Callable[[Results], Optional[float]]
    """The measured figure, or None when this run did not measure it."""
    fmt: str = "{:.2f}"
    measured_by: str = ""
    """Another bench that measures this target (printed when this one does not)."""

    def met(self, value: float) -> bool:
        """Whether `value` meets the bound."""
        return value >= self.bound if self.at_least else value <= self.bound


def _never(_: Results) -> Optional[float]:
    return None


TARGETS: tuple[Target, ...] = (
    Target("PostgreSQL lineitem whole-run: ours / bare reference (rows/s)", 0.95, True,
           lambda r: r.ratio("postgresql", "ours", "reference")),
    Target("PostgreSQL lineitem whole-run: ours / ingestr (rows/s)", 1.1, True,
           lambda r: r.ratio("postgresql", "ours", "ingestr")),
    Target("PostgreSQL lineitem peak RSS: ours / ingestr", 0.5, False,
           lambda r: r.ratio("postgresql", "ours", "ingestr", rss=True)),
    Target("MariaDB lineitem whole-run: ours / bare reference (rows/s)", 0.9, True,
           lambda r: r.ratio("mariadb", "ours", "reference")),
    Target("PostgreSQL: TPC-H tables verified (rows, checksums, types)", 8, True,
           lambda r: r.tables_ok.get("postgresql"), "{:.0f}/8"),
    Target("MariaDB: TPC-H tables verified (rows, checksums, types)", 8, True,
           lambda r: r.tables_ok.get("mariadb"), "{:.0f}/8"),
    Target("PostgreSQL: TPC-H query answers equal to DuckDB's", 22, True,
           lambda r: r.queries_equal.get("postgresql"), "{:.0f}/22"),
    Target("MariaDB: TPC-H query answers equal to DuckDB's", 22, True,
           lambda r: r.queries_equal.get("mariadb"), "{:.0f}/22"),
    Target("PostgreSQL: fixed cost per run, seconds (whole run minus the job, one-row table)", 1.0, False,
           lambda r: r.fixed_cost.get("postgresql")),
    Target("500 small PostgreSQL jobs (100 rows each), seconds", 40.0, False, _never,
           measured_by="python -m bench.small_jobs --engine postgresql --check"),
    Target("12-job TPC-H workbook / (sum of solo times / cores)", 1.15, False, lambda r: r.concurrency,
           measured_by="python -m bench.tpch --concurrency --check"),
)


def judge(results: Results, sf: float) -> tuple[list[str], int]:
    """The printed lines of the targets table and how many measured targets were missed."""
    lines = [f"Acceptance targets (issue 12; speed and memory are stated for SF 1, measured here at SF {sf:g})"]
    missed = 0
    for target in TARGETS:
        bound = ("≥ " if target.at_least else "≤ ") + target.fmt.format(target.bound).split("/")[0]
        value = target.figure(results)
        if value is None:
            status, shown = "NOT MEASURED", (f"measured by `{target.measured_by}`" if target.measured_by
                                             else "not measured in this run")
        else:
            ok = target.met(value)
            missed += not ok
            status, shown = ("ok" if ok else "MISSED"), target.fmt.format(value)
        lines.append(f"  [{status:^12}] {target.text}: {shown} (target {bound})")
    return lines, missed
