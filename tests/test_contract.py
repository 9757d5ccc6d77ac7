"""The orchestration's contract (shared/contract.py): a strict run-time check of a payload
against its TypedDict (used here and by tests/orchestrations/test_contract_run.py), the
constructors, and the refusals the CLI reads back from an orchestration's error."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from shared import contract
from shared.contract import (NO_MATCH, BatchOutput, JobAnswer, JobOutcome, Refusal, SliceOutcome, crashed_outcome,
                             read_refusal, split_answer)
from shared.workbook.models import PlanError

DETAILS = " \n RuntimeError at activities/__init__.py:41 in wrapper"
"""What the Durable SDK appends to an activity's message in the orchestration's error."""


def problems(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Where `value` breaks type `tp` (TypedDicts strictly: no unknown key, no missing required key)."""
    if tp is Any:
        return []
    origin, args = get_origin(tp), get_args(tp)
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} is not an object"]
        hints = get_type_hints(tp)
        found = [f"{path}: unknown key {k!r}" for k in value if k not in hints]
        found += [f"{path}: missing key {k!r}" for k in sorted(tp.__required_keys__) if k not in value]
        for key, item in value.items():
            if key in hints:
                found += problems(item, hints[key], f"{path}.{key}")
        return found
    if origin in (Union, types.UnionType):
        each = [problems(value, arg, path) for arg in args]
        return [] if any(not p for p in each) else [f"{path}: {value!r} fits none of {tp}: {each}"]
    if origin is Literal:
        return [] if any(value == a and type(value) is type(a) for a in args) else [f"{path}: {value!r} not in {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} is not a list"]
        return [p for k, item in enumerate(value) for p in problems(item, args[0], f"{path}[{k}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} is not an object"]
        found = [f"{path}: key {k!r} is not a string" for k in value if not isinstance(k, str)]
        return found + [p for k, item in value.items() for p in problems(item, args[1], f"{path}.{k}")]
    if tp is type(None):
        return [] if value is None else [f"{path}: {value!r} is not null"]
    if tp is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{path}: {value!r} is not a number"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: {value!r} is not an integer"]
    return [] if type(value) is tp else [f"{path}: {value!r} is not {tp.__name__}"]


def assert_conforms(value: Any, tp: Any) -> None:
    found = problems(value, tp)
    assert not found, "\n".join(found)


def test_the_check_catches_unknown_missing_and_mistyped_fields() -> None:
    good = crashed_outcome(3, 2, "boom", retryable=True)
    assert_conforms(good, JobOutcome)
    assert problems({**good, "src": "shop"}, JobOutcome) == ["$: unknown key 'src'"]
    assert problems({k: v for k, v in good.items() if k != "retryable"}, JobOutcome) == ["$: missing key 'retryable'"]
    assert problems({**good, "status": "split"}, JobOutcome)  # a split is not an outcome
    assert problems({**good, "rows": True}, JobOutcome)
    assert problems({**good, "error": 3}, JobOutcome)
    assert problems(BatchOutput(done=1, failed=0, skipped=0, rows=1, crashed=[{"i": 0}]), BatchOutput)


def test_a_split_answer_is_its_own_type_and_keeps_its_history_shape() -> None:
    ranges = [{"column": "id", "start": None, "end": 10, "closed": False, "nulls": True}]
    answer = split_answer(4, 1, ranges)  # type: ignore[list-item]
    assert answer == {"i": 4, "status": "split", "slices": ranges, "attempt": 1, "rows": 0, "retryable": False,
                      "error": None}
    assert_conforms(answer, JobAnswer)
    assert problems(answer, JobOutcome) and contract.is_split(answer)
    assert not contract.is_split(crashed_outcome(4, 1, "x", retryable=False))
    assert_conforms({**crashed_outcome(4, 1, "x", retryable=False), "slice": 2}, SliceOutcome)


def test_a_crashed_outcome_keeps_its_history_shape() -> None:
    assert list(crashed_outcome(1, 3, "e", retryable=True).items()) == [
        ("i", 1), ("status", "failed"), ("rows", 0), ("attempt", 3), ("retryable", True), ("error", "e"),
        ("crashed", True)]


def test_workbook_problems_are_read_back_one_per_line() -> None:
    error = PlanError(["SourceConfig!A2 (source_type): 'x' is not one of postgresql", "SourceConfig!D3 (load_type): no"],
                      "/tmp/w.xlsx")
    assert read_refusal(str(error) + DETAILS) == Refusal("workbook", [
        "SourceConfig!A2 (source_type): 'x' is not one of postgresql", "SourceConfig!D3 (load_type): no"])
    assert read_refusal(str(PlanError(["blob missing"])) + DETAILS) == Refusal("workbook", ["blob missing"])


def test_no_matching_job_lake_and_storage_refusals_are_read_back() -> None:
    only = ["nope"]
    assert read_refusal(str(PlanError([f"{NO_MATCH}{only}"], "w.xlsx")) + DETAILS) == \
        Refusal("no_match", [f"{NO_MATCH}['nope']"])
    assert read_refusal("PreflightError: lake folder /x is not writable: denied" + DETAILS) == \
        Refusal("lake", ["lake folder /x is not writable: denied"])
    assert read_refusal("StorageUnreachableError: storage 127.0.0.1:1 is not reachable" + DETAILS) == \
        Refusal("storage", ["storage 127.0.0.1:1 is not reachable"])


@pytest.mark.parametrize("error", [None, "", "ValueError: boom" + DETAILS, "Orchestrator function failed: 2 problem(s)",
                                   "ingestion-jobs:batch:1' belongs to an instance that is still running"])
def test_other_failures_are_not_refusals(error: Any) -> None:
    assert read_refusal(error) is None
