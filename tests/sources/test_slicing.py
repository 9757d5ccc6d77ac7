"""Key-range slicing (pure) and the slice count chosen from a table's size."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.sources.slicing import MAX_SLICES, KeyRange, slice_count, split_key_range


def covered(ranges: list[KeyRange], key: object) -> int:
    """How many slices a key falls into (must be exactly one)."""
    return sum(r.start <= key and (key <= r.end if r.closed else key < r.end) for r in ranges)


def test_integer_range_is_cut_into_contiguous_slices_covering_every_key() -> None:
    ranges = split_key_range(1, 1_000, 4)
    assert [(r.start, r.end, r.closed) for r in ranges] == [
        (1, 250, False), (250, 500, False), (500, 750, False), (750, 1_000, True)]
    assert all(covered(ranges, key) == 1 for key in range(1, 1_001))


@pytest.mark.parametrize("lo, hi, k, expected", [(5, 5, 4, 1), (1, 3, 8, 2), (-10, 10, 3, 3), (0, 10**15, 8, 8)])
def test_never_more_slices_than_keys(lo: int, hi: int, k: int, expected: int) -> None:
    ranges = split_key_range(lo, hi, k)
    assert len(ranges) == expected and ranges[0].start == lo and ranges[-1].end == hi and ranges[-1].closed
    assert all(covered(ranges, key) == 1 for key in (lo, hi, (lo + hi) // 2))


def test_timestamps_keep_their_zone_and_every_microsecond_is_covered() -> None:
    lo = dt.datetime(2024, 3, 1, 10, tzinfo=dt.timezone.utc)
    hi = lo + dt.timedelta(days=3, microseconds=7)
    ranges = split_key_range(lo, hi, 3)
    assert len(ranges) == 3 and all(r.start.tzinfo is dt.timezone.utc for r in ranges)
    assert [r.end - r.start for r in ranges[:2]] == [dt.timedelta(days=1, microseconds=2)] * 2
    for key in (lo, hi, ranges[1].start, ranges[1].start - dt.timedelta(microseconds=1)):
        assert covered(ranges, key) == 1


def test_dates_split_on_days() -> None:
    ranges = split_key_range(dt.date(2024, 1, 1), dt.date(2024, 1, 10), 3)
    assert [r.start for r in ranges] == [dt.date(2024, 1, 1), dt.date(2024, 1, 4), dt.date(2024, 1, 7)]
    assert all(covered(ranges, dt.date(2024, 1, d)) == 1 for d in range(1, 11))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_key_range(1, 2, 0)
    with pytest.raises(ValueError, match="empty key range"):
        split_key_range(2, 1, 2)


@pytest.mark.parametrize(
    "rows, chunk, cores, expected",
    [(None, 100, 4, 1), (150, 100, 4, 1), (200, 100, 4, 1), (450, 100, 4, 3), (10**9, 100, 64, MAX_SLICES), (10**6, 250_000, 2, 2)],
)
def test_slice_count_grows_with_size_up_to_cores(rows: int | None, chunk: int, cores: int, expected: int) -> None:
    assert slice_count(rows, chunk, cores) == expected
