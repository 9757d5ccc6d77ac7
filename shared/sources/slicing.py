"""Split a key range into slices that can be read in parallel (pure functions, no I/O).

`split_key_range(lo, hi, k)` is meant for two callers: the fast SQL path, which reads the slices
of one job in parallel threads, and an orchestrator that wants to spread a very large table over
several activities (one slice each, all with the same load semantics).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Generic, Optional, TypeVar

from shared.cpu_slots import usable_cores

Key = TypeVar("Key", int, dt.datetime, dt.date)

SLICEABLE_TYPES = (int, dt.datetime, dt.date)
"""Python types of the keys `split_key_range` can cut."""
MAX_SLICES = 8
"""Upper bound on parallel slices of one job: each one is a database connection and a scan."""


@dataclass(frozen=True)
class KeyRange(Generic[Key]):
    """Keys `start <= key < end`; the last slice of a split includes `end` (`closed`)."""

    start: Key
    end: Key
    closed: bool = False


def split_key_range(lo: Key, hi: Key, k: int) -> list[KeyRange[Key]]:
    """Cut `[lo, hi]` into at most `k` contiguous, non-overlapping slices of about equal width.

    Every key between `lo` and `hi` falls into exactly one slice. Integers give integer bounds;
    dates and timestamps are split on their microsecond (date: day) offset from `lo`, and keep
    their time zone. Fewer than `k` slices come back when the range is narrower than `k` keys.

    Args:
        lo: Smallest key (e.g. `min(id)` of the rows to read).
        hi: Largest key.
        k: Wanted number of slices (at least 1).

    Returns:
        The slices in key order; the last one is closed so that it includes `hi`.

    Raises:
        ValueError: `k < 1` or `hi < lo`.
    """
    if k < 1:
        raise ValueError(f"slice count must be at least 1, got {k}")
    if hi < lo:
        raise ValueError(f"empty key range: {lo!r} > {hi!r}")
    width = _offset(hi, lo)
    k = max(1, min(k, width))  # no empty slices: at most one per key step
    bounds = [lo] + [_advance(lo, width * i // k) for i in range(1, k)] + [hi]
    return [KeyRange(bounds[i], bounds[i + 1], closed=i == k - 1) for i in range(k)]


def slice_count(estimated_rows: Optional[int], chunk_size: int, cores: Optional[int] = None) -> int:
    """How many parallel slices a table of about `estimated_rows` rows is worth.

    One per usable core (the process's CPU affinity), but never slices smaller than two chunks (a slice that fits in a batch or
    two only adds a connection and a scan), and never more than `MAX_SLICES`.
    """
    if not estimated_rows or estimated_rows < 2 * chunk_size:
        return 1
    cores = cores or usable_cores()
    return max(1, min(cores, MAX_SLICES, math.ceil(estimated_rows / (2 * chunk_size))))


def _offset(hi: Any, lo: Any) -> int:
    """`hi - lo` in the key's smallest step (1, one microsecond, one day)."""
    delta = hi - lo
    if isinstance(delta, dt.timedelta):
        if isinstance(lo, dt.datetime):
            return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return delta.days
    return int(delta)


def _advance(lo: Any, steps: int) -> Any:
    """`lo` plus `steps` of the key's smallest step."""
    if isinstance(lo, dt.datetime):
        return lo + dt.timedelta(microseconds=steps)
    if isinstance(lo, dt.date):
        return lo + dt.timedelta(days=steps)
    return lo + steps
