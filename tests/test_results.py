"""`record_attempt`: the per-attempt times and outcomes the run report's timeline draws."""

from __future__ import annotations

import datetime as dt

from shared.results import FAILED, MAX_ATTEMPT_ERROR, SKIPPED_CIRCUIT_OPEN, SUCCESS, JobResult, record_attempt


def result(status: str, started: str | None = None, finished: str | None = None, error: str | None = None) -> JobResult:
    job = JobResult(job_id="erp.orders", source_type="postgresql", source_name="erp", table_name="orders",
                    load_type="FULL", status=status, error=error)
    if started:
        job.extra.update(started_at=started, finished_at=finished)
    return job


def test_attempts_accumulate_with_their_own_times_and_outcomes() -> None:
    first = result(FAILED, "2026-01-05T02:00:00+00:00", "2026-01-05T02:00:01+00:00", "x" * 500)
    record_attempt(first, 1)
    second = result(SUCCESS, "2026-01-05T02:00:03+00:00", "2026-01-05T02:00:05+00:00")
    record_attempt(second, 2, first.extra["attempts"])
    assert second.extra["attempts"] == [
        {"attempt": 1, "started_at": "2026-01-05T02:00:00+00:00", "finished_at": "2026-01-05T02:00:01+00:00",
         "status": FAILED, "error": "x" * MAX_ATTEMPT_ERROR},
        {"attempt": 2, "started_at": "2026-01-05T02:00:03+00:00", "finished_at": "2026-01-05T02:00:05+00:00",
         "status": SUCCESS, "error": None},
    ]


def test_a_redelivered_attempt_replaces_its_earlier_delivery() -> None:
    first = result(FAILED, "2026-01-05T02:00:00+00:00", "2026-01-05T02:00:01+00:00", "reset")
    record_attempt(first, 1)
    second = result(FAILED, "2026-01-05T02:00:03+00:00", "2026-01-05T02:00:04+00:00", "reset")
    record_attempt(second, 2, first.extra["attempts"])
    again = result(SUCCESS, "2026-01-05T02:00:09+00:00", "2026-01-05T02:00:10+00:00")
    record_attempt(again, 2, second.extra["attempts"])  # attempt 2 delivered again: its stored result is attempt 2's
    assert [(a["attempt"], a["status"], a["started_at"][-14:-6]) for a in again.extra["attempts"]] == [
        (1, FAILED, "02:00:00"), (2, SUCCESS, "02:00:09")]


def test_an_attempt_that_loaded_nothing_is_stamped_now() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    refused = result(FAILED, error="lake /data on host vm1: not attempted")  # no times of its own
    record_attempt(refused, 1)
    entry = refused.extra["attempts"][0]
    assert entry["started_at"] == entry["finished_at"] and dt.datetime.fromisoformat(entry["started_at"]) >= before

    earlier = result(FAILED, "2026-01-05T02:00:00+00:00", "2026-01-05T02:00:01+00:00", "reset")
    record_attempt(earlier, 1)
    record_attempt(earlier, 2, earlier.extra["attempts"], ran=False)  # the circuit opened between attempts
    first, second = earlier.extra["attempts"]
    assert first["started_at"] == "2026-01-05T02:00:00+00:00"
    assert second["status"] == SKIPPED_CIRCUIT_OPEN and dt.datetime.fromisoformat(second["started_at"]) >= before
