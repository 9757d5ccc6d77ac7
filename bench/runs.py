"""Timed runs of one tool or variant: wall times and peak RSS, with their medians."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Runs:
    """Every verified run of one tool (or variant) on one table or workbook."""

    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)

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
