"""Run progress as the orchestration's custom status (kept small: custom status max is 16 KB)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 20
"""How many running items the status names; the count is always complete."""


@dataclass
class Progress:
    """Counters of one orchestration; `as_status()` is what `GET /api/ingestions/{id}` shows."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    rows: int = 0
    running: dict[str, None] = field(default_factory=dict)
    """Jobs (or batches) under way, in start order (a dict as an ordered set)."""
    retrying: dict[str, None] = field(default_factory=dict)
    """Jobs waiting for their next attempt."""

    def start(self, label: str) -> None:
        """A job or batch began (or began another attempt)."""
        self.retrying.pop(label, None)
        self.running[label] = None

    def wait_retry(self, label: str) -> None:
        """A job failed an attempt and waits for the next one."""
        self.running.pop(label, None)
        self.retrying[label] = None

    def finish(self, label: str, status: str, rows: int = 0, count: int = 1) -> None:
        """`count` jobs ended with `status` (`success`, `failed` or a `skipped_*` status)."""
        self.running.pop(label, None)
        self.done += count
        self.rows += rows
        if status == "failed":
            self.failed += count
        elif status.startswith("skipped"):
            self.skipped += count

    def add(self, label: str, summary: dict[str, Any]) -> None:
        """A batch ended with the summary its sub-orchestration returned."""
        self.running.pop(label, None)
        self.done += summary["done"]
        self.failed += summary["failed"]
        self.skipped += summary["skipped"]
        self.rows += summary["rows"]

    def as_status(self, phase: str = "running") -> dict[str, Any]:
        """The custom status document."""
        return {
            "phase": phase,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "rows": self.rows,
            "running": list(self.running)[:MAX_LISTED],
            "running_count": len(self.running),
            "retrying": list(self.retrying)[:MAX_LISTED],
        }

    def summary(self) -> dict[str, Any]:
        """What a batch sub-orchestration reports to its parent."""
        return {"done": self.done, "failed": self.failed, "skipped": self.skipped, "rows": self.rows}
