"""The process's CPU slot budget (`shared.cpu_slots`): a job waits for its own slot only, extra
slices take free slots only, everything is given back on every exit, and many threads never
exceed the budget nor deadlock. No timing: ordering is shown with events."""

from __future__ import annotations

import random
import threading
from typing import Iterator

import pytest

from shared import cpu_slots
from shared.cpu_slots import CpuSlots, extra_slots, note_read

JOIN_SECONDS = 60
"""Generous bound on a thread's end: reaching it means a deadlock, not slowness."""


@pytest.fixture(autouse=True)
def fresh_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No budget or `--max-parallel` left over from another test."""
    monkeypatch.setattr(cpu_slots, "_budget", None)
    monkeypatch.setattr(cpu_slots, "_configured", None)
    yield


def test_a_job_waits_for_its_slot_until_one_is_given_back() -> None:
    budget = CpuSlots(1)
    holding, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with budget.job():
            holding.set()
            release.wait(JOIN_SECONDS)

    def second() -> None:
        with budget.job():
            second_in.set()

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(JOIN_SECONDS)
    b = threading.Thread(target=second)
    b.start()
    assert not second_in.wait(0.2)  # still waiting: the only slot is held
    assert budget.in_use == 1
    release.set()
    assert second_in.wait(JOIN_SECONDS)
    a.join(JOIN_SECONDS), b.join(JOIN_SECONDS)
    assert (budget.in_use, budget.high_water) == (0, 1)


def test_extra_slices_take_only_free_slots_and_never_wait() -> None:
    budget = CpuSlots(3)
    with budget.job() as first:
        with extra_slots(7) as granted:
            assert granted == 2  # all that was free
            assert budget.in_use == 3
            with extra_slots(1) as none_left:
                assert none_left == 0
        assert budget.in_use == 1  # extras back when the read ends
        note_read(8, 3)
        assert first.record() == {"wanted": 8, "used": 3}
    assert budget.in_use == 0 and budget.high_water == 3


def test_everything_is_given_back_when_the_job_fails() -> None:
    budget = CpuSlots(4)

    def read() -> Iterator[int]:
        with extra_slots(3) as granted:
            yield granted
            yield granted  # never reached: the generator is left open, as a failed read may be

    with pytest.raises(RuntimeError):
        with budget.job():
            reader = read()
            assert next(reader) == 3
            assert budget.in_use == 4
            raise RuntimeError("the job failed mid-read")
    assert budget.in_use == 0
    reader.close()  # closing later gives back nothing twice
    assert budget.in_use == 0


class Killed(BaseException):
    """Like the local runtime's simulated kill: not an `Exception`."""


def test_a_killed_job_gives_its_slots_back() -> None:
    budget = CpuSlots(2)
    with pytest.raises(Killed):
        with budget.job(), extra_slots(1):
            raise Killed()
    assert budget.in_use == 0


def test_reads_outside_a_job_are_not_budgeted() -> None:
    with extra_slots(5) as granted:
        assert granted == 5
    note_read(6, 6)  # no job: nothing to record, no error


def test_many_threads_never_exceed_the_budget_and_all_finish() -> None:
    budget = CpuSlots(3)
    seen: list[int] = []
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            try:
                with budget.job():
                    with extra_slots(rng.randint(0, 4)) as granted:
                        seen.append(budget.in_use)
                        assert granted <= 2
                    if rng.random() < 0.2:
                        raise ValueError("a failing job")
            except ValueError:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_SECONDS)
    assert not [t for t in threads if t.is_alive()], "deadlock: threads still waiting"
    assert errors == []
    assert max(seen) <= 3 and budget.high_water <= 3
    assert budget.in_use == 0


def test_the_size_comes_from_the_setting_the_worker_processes_or_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_slots, "usable_cores", lambda: 8)
    monkeypatch.delenv("INGESTION_CPU_SLOTS", raising=False)
    monkeypatch.delenv("FUNCTIONS_WORKER_PROCESS_COUNT", raising=False)
    assert cpu_slots.cpu_slots().size == 8
    monkeypatch.setenv("FUNCTIONS_WORKER_PROCESS_COUNT", "3")
    assert cpu_slots.cpu_slots().size == 2  # the cores are shared by the host's worker processes
    monkeypatch.setenv("INGESTION_CPU_SLOTS", "5")
    assert cpu_slots.cpu_slots().size == 5
    cpu_slots.configure(1)  # python -m ingest run --max-parallel 1
    assert cpu_slots.cpu_slots().size == 1
    cpu_slots.configure(None)
    assert cpu_slots.cpu_slots().size == 5


def test_an_unusable_setting_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import SettingsError

    monkeypatch.setenv("INGESTION_CPU_SLOTS", "0")
    with pytest.raises(SettingsError, match="INGESTION_CPU_SLOTS: '0' is not a whole number >= 1"):
        cpu_slots.cpu_slots()
