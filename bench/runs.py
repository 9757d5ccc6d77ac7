"""Timed runs of one tool or variant: wall times and peak RSS, with their medians."""

from __future__ import annotations

import compileall
import statistics
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("shared", "ingest", "orchestrations", "activities", "starters", "bench")
"""The project's own packages (what `compile_checkout` compiles)."""


def compile_checkout(code: Path) -> None:
    """Compile a checkout's own modules to bytecode before its runs are timed.

    Installed packages come compiled (pip does it), and Python caches the project's own modules
    after their first import, unless `PYTHONDONTWRITEBYTECODE` is set, as it is on this machine
    kind: then every run would compile ~16,000 lines again (~0.35 s of CPU on a 2-core box), a
    cost no user with a normal set-up pays more than once. Only stale or missing files compile.
    `scripts/setup` runs it on the checkout it sets up.
    """
    for package in PACKAGES:
        if (code / package).is_dir():
            compileall.compile_dir(str(code / package), quiet=1)
    if (code / "function_app.py").is_file():
        compileall.compile_file(str(code / "function_app.py"), quiet=1)


@dataclass
class Runs:
    """Every verified run of one tool (or variant) on one table or workbook."""

    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    """User + system CPU of each run's process tree."""
    server_cpu_seconds: list[float] = field(default_factory=list)
    """CPU of the (local) database server during each run; empty when it could not be read."""

    @property
    def median_seconds(self) -> float:
        """Median wall time, seconds."""
        return statistics.median(self.seconds)

    @property
    def rows_per_second(self) -> float:
        """Rows per second of the median run."""
        return self.rows / self.median_seconds

    @property
    def median_rss(self) -> float:
        """Median peak RSS (of the process tree where the caller measured that), MiB."""
        return statistics.median(self.peak_rss_mib)
