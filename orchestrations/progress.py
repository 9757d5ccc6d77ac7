"""Run progress as the orchestration's custom status (kept small: custom status max is 16 KB).

A run that fans out in batch sub-orchestrations publishes structured batch progress under
`batches` (see `BatchBoard`), and each batch publishes its own number under `batch`, so a reader
(the CLI's progress bar, a dashboard) combines the parent's counts with the live counts of the
batches still running without parsing any label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from shared.contract import BatchesStatus, BatchNumber, BatchSummary, ProgressStatus

MAX_LISTED = 20
"""How many running items the status names; the count is always complete."""
MAX_BATCH_DETAIL = 400
"""Batches described one by one (state and job counts); beyond this only the totals are
published. 400 batches take about 5 KB, well inside the 16 KB custom status limit."""

RUNNING, DONE, FAILED = "R", "D", "F"
"""One character per batch in `batches.state`: running, done (its jobs are counted in the
parent's totals), or failed as an orchestration (its jobs are counted as failed)."""


@dataclass
class BatchBoard:
    """Per-batch progress of a run fanned out in sub-orchestrations."""

    total: int
    size: int
    state: list[str] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def start(self, number: int, jobs: int) -> None:
        """Batch `number` (1-based, in order) was scheduled with `jobs` jobs."""
        assert number == len(self.state) + 1, "batches start in order"
        self.state.append(RUNNING)
        self.jobs.append(jobs)
        for column in (self.done, self.failed, self.skipped):
            column.append(0)

    def end(self, number: int, summary: BatchSummary) -> None:
        """Batch `number` returned its summary."""
        k = number - 1
        self.state[k] = DONE
        self.done[k], self.failed[k], self.skipped[k] = summary["done"], summary["failed"], summary["skipped"]

    def crash(self, number: int) -> None:
        """Batch `number` failed as an orchestration: all its jobs count as failed."""
        k = number - 1
        self.state[k] = FAILED
        self.done[k] = self.failed[k] = self.jobs[k]

    def as_status(self) -> BatchesStatus:
        """`{"total", "size", "done", "running", "failed", "detail", ...per-batch columns}`.

        `done` counts finished batches (failed ones included), `failed` the batches that failed
        as orchestrations. With `detail` true, `state` holds one character per batch (`R`, `D`,
        `F`) and `jobs`/`jobs_done`/`jobs_failed`/`jobs_skipped` one number per batch, index
        `number - 1`; with more than `MAX_BATCH_DETAIL` batches they are left out.
        """
        status = BatchesStatus(
            total=self.total,
            size=self.size,
            done=sum(1 for s in self.state if s != RUNNING),
            running=self.state.count(RUNNING),
            failed=self.state.count(FAILED),
            detail=self.total <= MAX_BATCH_DETAIL,
        )
        if status["detail"]:
            status.update(state="".join(self.state), jobs=list(self.jobs), jobs_done=list(self.done),
                          jobs_failed=list(self.failed), jobs_skipped=list(self.skipped))
        return status


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
    batches: Optional[BatchBoard] = None
    """Set by a run that fans out in batches."""
    batch: Optional[BatchNumber] = None
    """Set in a batch sub-orchestration: `{"number", "of"}`."""

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

    def add(self, label: str, summary: BatchSummary) -> None:
        """A batch ended with the summary its sub-orchestration returned."""
        self.running.pop(label, None)
        self.done += summary["done"]
        self.failed += summary["failed"]
        self.skipped += summary["skipped"]
        self.rows += summary["rows"]

    def start_batch(self, number: int, of: int, size: int, label: str, jobs: int) -> None:
        """Batch `number` of `of` (at most `size` jobs each) was scheduled with `jobs` jobs."""
        if self.batches is None:
            self.batches = BatchBoard(total=of, size=size)
        self.batches.start(number, jobs)
        self.start(label)

    def end_batch(self, number: int, label: str, summary: BatchSummary) -> None:
        """Batch `number` returned `summary`."""
        assert self.batches is not None
        self.batches.end(number, summary)
        self.add(label, summary)

    def crash_batch(self, number: int, label: str, jobs: int) -> None:
        """Batch `number` failed as an orchestration: its `jobs` jobs count as failed."""
        assert self.batches is not None
        self.batches.crash(number)
        self.finish(label, "failed", count=jobs)

    def as_status(self, phase: str = "running") -> ProgressStatus:
        """The custom status document."""
        status = ProgressStatus(
            phase=phase,
            total=self.total,
            done=self.done,
            failed=self.failed,
            skipped=self.skipped,
            rows=self.rows,
            running=list(self.running)[:MAX_LISTED],
            running_count=len(self.running),
            retrying=list(self.retrying)[:MAX_LISTED],
        )
        if self.batches is not None:
            status["batches"] = self.batches.as_status()
        if self.batch is not None:
            status["batch"] = BatchNumber(number=self.batch["number"], of=self.batch["of"])
        return status

    def summary(self) -> BatchSummary:
        """What a batch sub-orchestration reports to its parent."""
        return BatchSummary(done=self.done, failed=self.failed, skipped=self.skipped, rows=self.rows)


def combined_counts(parent: dict[str, Any], batch_statuses: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Live totals of a run from its custom status and its batches' custom statuses.

    The parent's `done`/`failed`/`skipped` count the batches it has seen end; a batch it still
    lists as running (`batches.state` is `R` at its number) adds the live counts of its own
    status. Without batch detail (more than `MAX_BATCH_DETAIL` batches) only the parent's
    counts are used.

    Args:
        parent: The orchestration's custom status.
        batch_statuses: Custom statuses of batch sub-orchestrations, by instance id.

    Returns:
        `{"phase", "total", "done", "failed", "skipped", "running"}` (jobs; `total` may be None
        while planning).
    """
    board = parent.get("batches") or {}
    states = board.get("state", "") if board.get("detail") else ""
    running_numbers = {k + 1 for k, s in enumerate(states) if s == RUNNING}
    live = [s for s in batch_statuses.values()
            if isinstance(s, dict) and (s.get("batch") or {}).get("number") in running_numbers]
    counts = {key: parent.get(key, 0) + sum(s.get(key, 0) for s in live) for key in ("done", "failed", "skipped")}
    running = sum(s.get("running_count", 0) for s in live) if live else parent.get("running_count", 0)
    return {"phase": parent.get("phase", "running"), "total": parent.get("total"), **counts, "running": running}
