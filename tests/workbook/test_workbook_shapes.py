"""Offline shape checks of `last_watermark` and `primary_key`: no source is asked, the cell is named."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.workbook import PlanError, build_plan

INCREMENTAL = ["postgresql", "erp", "orders", "INCREMENTAL", "Y", None, "updated_at"]
ALLOWED_WATERMARK = "allowed: a date (2024-01-31), a date and time"


def problems_of(path: Any) -> list[str]:
    with pytest.raises(PlanError) as info:
        build_plan(path)
    return info.value.problems


@pytest.mark.parametrize("value", ["2024-13-45", "yesterday", "0; drop table big", "2024-02-30", "NaN", "1,000"])
def test_unparsable_last_watermark_names_the_cell(write_sheet: Any, value: str) -> None:
    rows = [[*INCREMENTAL[:2], f"t{i}", *INCREMENTAL[3:], "2024-01-01"] for i in range(4)]
    rows.append([*INCREMENTAL, value])  # row 6
    rows.append([*INCREMENTAL[:2], "t9", *INCREMENTAL[3:], value])  # row 7
    problems = problems_of(write_sheet(rows))
    assert [p.split(":")[0] for p in problems] == ["SourceConfig!H6 (last_watermark)", "SourceConfig!H7 (last_watermark)"]
    assert problems[1].startswith(f"SourceConfig!H7 (last_watermark): '{value}' is not a date, timestamp or number; "
                                  f"{ALLOWED_WATERMARK}")


@pytest.mark.parametrize(
    "value",
    ["2024-01-31", "2024-01-31T08:00:00", "2024-01-31 08:00", "2024-01-31T08:00:00Z", "2024-01-31T08:00:00.5+02:00",
     "1700000000", "-12.5", 17, 12.5, dt.datetime(2024, 1, 2, 3, 4), dt.date(2024, 1, 2)],
)
def test_dates_timestamps_and_numbers_pass(write_sheet: Any, value: Any) -> None:
    plan = build_plan(write_sheet([[*INCREMENTAL, value]]))
    assert plan.jobs[0].last_watermark is not None


def test_time_of_day_alone_is_not_a_watermark(write_sheet: Any) -> None:
    assert problems_of(write_sheet([[*INCREMENTAL, dt.time(8, 30)]])) == [
        f"SourceConfig!H2 (last_watermark): '08:30:00' is a time of day without a date; {ALLOWED_WATERMARK} "
        "(2024-01-31T08:00:00 or 2024-01-31 08:00, optionally with an offset such as Z or +02:00) or a number "
        "(1700000000, 12.5); typed as an Excel date or as text"
    ]


def test_long_watermark_is_quoted_bounded(write_sheet: Any) -> None:
    (problem,) = problems_of(write_sheet([[*INCREMENTAL, "x" * 90]]))
    assert "'" + "x" * 57 + "...' is not a date" in problem


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("id,,name", "'id,,name' has an empty name (part 2 of 3): two commas in a row, or a comma at the start or end"),
        ("id, ,name", "'id, ,name' has an empty name (part 2 of 3)"),
        (",id", "',id' has an empty name (part 1 of 2)"),
        ("id,", "'id,' has an empty name (part 2 of 2)"),
        ("id, name, ID", "'id, name, ID' names id twice (compared ignoring case)"),
        ("id, order id", "'order id' is not a valid SQL identifier"),
    ],
)
def test_primary_key_shape_names_the_cell(core_header: list[str], write_sheet: Any, value: str, message: str) -> None:
    row: list[Any] = ["postgresql", "erp", "orders", "FULL", "Y", *[None] * (len(core_header) - 5)]
    row[core_header.index("primary_key")] = value
    (problem,) = problems_of(write_sheet([row]))
    assert problem.startswith(f"SourceConfig!K2 (primary_key): {message}"), problem
