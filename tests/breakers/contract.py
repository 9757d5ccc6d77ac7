"""Contract tests every `BreakerStore` must pass, run through a real `CircuitBreaker`.

To test a store, subclass `BreakerStoreContract` in a `test_*.py` module and provide a
`store_factory` fixture: a zero-argument callable that returns a new store instance on
the same backing storage each time it is called (a fresh, empty storage per test). If the
factory can be pickled, the contract also updates the store from several processes.

    class TestLocalBreakerStore(BreakerStoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path):
            return functools.partial(LocalBreakerStore, tmp_path / "breakers.sqlite")
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

from shared.breakers import (
    CLOSED,
    HALF_OPEN,
    MAX_ERROR_LENGTH,
    OPEN,
    BreakerSettings,
    BreakerState,
    BreakerStore,
    CircuitBreaker,
)

SETTINGS = BreakerSettings(failure_threshold=3, open_timeout_seconds=60.0, half_open_successes=2)
START = datetime(2025, 1, 15, 8, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _record_failures_in_process(
    store_factory: Callable[[], BreakerStore], source_name: str, count: int, barrier
) -> None:
    """Child-process body of the multiprocess test (module level so spawn can import it)."""
    breaker = CircuitBreaker(store_factory(), SETTINGS)
    barrier.wait(timeout=60)
    for i in range(count):
        breaker.record_failure(source_name, f"process {os.getpid()} failure {i}")


def _bump_failures(state: BreakerState) -> BreakerState:
    return replace(state, total_failures=state.total_failures + 1)


class BreakerStoreContract:
    """The behaviour every `BreakerStore` shares. Subclasses provide `store_factory`."""

    @pytest.fixture
    def store_factory(self) -> Callable[[], BreakerStore]:
        raise NotImplementedError("subclasses provide a `store_factory` fixture")

    @pytest.fixture
    def store(self, store_factory: Callable[[], BreakerStore]) -> BreakerStore:
        return store_factory()

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def breaker(self, store: BreakerStore, clock: FakeClock) -> CircuitBreaker:
        return CircuitBreaker(store, SETTINGS, clock)

    def fail(self, breaker: CircuitBreaker, source: str, times: int) -> BreakerState:
        state = None
        for i in range(times):
            state = breaker.record_failure(source, f"boom {i}")
        assert state is not None
        return state

    # -- the store itself ------------------------------------------------------------

    def test_unknown_source_is_closed(self, store: BreakerStore) -> None:
        assert store.get("never_seen") == BreakerState(source_name="never_seen")
        assert store.get("never_seen").state == CLOSED
        assert store.list() == [], "get must not create a row"

    def test_update_starts_unknown_source_from_fresh_state(self, store: BreakerStore) -> None:
        seen: list[BreakerState] = []

        def mutate(state: BreakerState) -> BreakerState:
            seen.append(state)
            return replace(state, total_successes=7)

        stored = store.update("crm", mutate)

        assert seen[-1] == BreakerState(source_name="crm")
        assert stored.total_successes == 7
        assert store.get("crm") == stored

    def test_update_rejects_a_state_for_another_source(self, store: BreakerStore) -> None:
        store.update("crm", _bump_failures)
        with pytest.raises(ValueError, match="erp"):
            store.update("crm", lambda s: BreakerState(source_name="erp"))
        assert store.get("crm").total_failures == 1
        assert [s.source_name for s in store.list()] == ["crm"]

    def test_failing_mutation_changes_nothing(self, store: BreakerStore) -> None:
        store.update("crm", _bump_failures)

        def explode(state: BreakerState) -> BreakerState:
            raise RuntimeError("mutation failed")

        with pytest.raises(RuntimeError):
            store.update("crm", explode)
        assert store.get("crm").total_failures == 1

    def test_list_returns_every_source_ordered_by_name(self, store: BreakerStore) -> None:
        for name in ("erp", "api_x", "crm"):
            store.update(name, _bump_failures)
        assert [s.source_name for s in store.list()] == ["api_x", "crm", "erp"]

    def test_reset_forgets_a_source(self, store: BreakerStore, breaker: CircuitBreaker) -> None:
        self.fail(breaker, "crm", 3)
        breaker.record_failure("erp", "down")

        store.reset("crm")
        store.reset("never_seen")  # unknown names are fine

        assert store.get("crm") == BreakerState(source_name="crm")
        assert [s.source_name for s in store.list()] == ["erp"]
        assert breaker.check("crm").allowed

    def test_state_is_json_serialisable(self, breaker: CircuitBreaker, store: BreakerStore) -> None:
        self.fail(breaker, "crm", 3)
        state = store.get("crm")
        assert BreakerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state

    def test_persists_across_store_instances(
        self, store_factory: Callable[[], BreakerStore], clock: FakeClock
    ) -> None:
        CircuitBreaker(store_factory(), SETTINGS, clock).record_failure("crm", "down")
        written = self.fail(CircuitBreaker(store_factory(), SETTINGS, clock), "crm", 2)

        reread = store_factory().get("crm")
        assert reread == written
        assert reread.state == OPEN
        assert reread.total_failures == 3

    def test_last_error_is_truncated(
        self, breaker: CircuitBreaker, store_factory: Callable[[], BreakerStore]
    ) -> None:
        error = "connection refused: " + "x" * 2000
        breaker.record_failure("crm", error)

        stored = store_factory().get("crm").last_error
        assert stored is not None
        assert len(stored) == MAX_ERROR_LENGTH
        assert stored == error[: MAX_ERROR_LENGTH - 3] + "..."  # the project's one cap (shared.redaction.clip)

    def test_sources_are_isolated(self, breaker: CircuitBreaker, store: BreakerStore) -> None:
        self.fail(breaker, "crm", 3)
        breaker.record_success("erp")

        assert breaker.check("crm").allowed is False
        assert breaker.check("erp").allowed is True
        erp = store.get("erp")
        assert (erp.state, erp.total_failures, erp.total_successes) == (CLOSED, 0, 1)

    # -- transitions -----------------------------------------------------------------

    def test_failures_below_threshold_keep_the_circuit_closed(self, breaker: CircuitBreaker) -> None:
        state = self.fail(breaker, "crm", 2)
        assert (state.state, state.consecutive_failures, state.opened_at) == (CLOSED, 2, None)
        assert state.last_error == "boom 1"
        assert breaker.check("crm").allowed

    def test_threshold_consecutive_failures_open_the_circuit(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        state = self.fail(breaker, "crm", 3)

        assert state.state == OPEN
        assert state.consecutive_failures == 3
        assert state.opened_at == clock.now.isoformat()
        decision = breaker.check("crm")
        assert (decision.allowed, decision.state) == (False, OPEN)
        assert "boom 2" in decision.reason

    def test_success_in_closed_resets_consecutive_failures(self, breaker: CircuitBreaker) -> None:
        self.fail(breaker, "crm", 2)
        after_success = breaker.record_success("crm")
        assert after_success.consecutive_failures == 0

        state = self.fail(breaker, "crm", 2)
        assert (state.state, state.consecutive_failures, state.total_failures) == (CLOSED, 2, 4)

    def test_open_circuit_refuses_until_the_timeout_then_half_opens(
        self, breaker: CircuitBreaker, store: BreakerStore, clock: FakeClock
    ) -> None:
        self.fail(breaker, "crm", 3)

        clock.advance(59.9)
        assert breaker.check("crm").allowed is False
        assert store.get("crm").state == OPEN

        clock.advance(0.1)
        decision = breaker.check("crm")
        assert (decision.allowed, decision.state) == (True, HALF_OPEN)
        assert store.get("crm").state == HALF_OPEN, "the transition is stored"
        assert breaker.check("crm").allowed, "half-open keeps allowing trials"

    def test_half_open_closes_after_the_required_successes(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        self.fail(breaker, "crm", 3)
        clock.advance(60)
        breaker.check("crm")

        first = breaker.record_success("crm")
        assert (first.state, first.half_open_successes) == (HALF_OPEN, 1)

        second = breaker.record_success("crm")
        assert (second.state, second.half_open_successes) == (CLOSED, 0)
        assert (second.consecutive_failures, second.opened_at) == (0, None)
        assert (second.total_failures, second.total_successes) == (3, 2)

    def test_failure_in_half_open_reopens_with_a_fresh_opened_at(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        self.fail(breaker, "crm", 3)
        clock.advance(60)
        breaker.check("crm")
        breaker.record_success("crm")

        clock.advance(5)
        state = breaker.record_failure("crm", "still down")

        assert state.state == OPEN
        assert state.opened_at == clock.now.isoformat()
        assert state.half_open_successes == 0
        clock.advance(59)
        assert breaker.check("crm").allowed is False, "the timeout restarts from the new opened_at"
        clock.advance(1)
        assert breaker.check("crm").state == HALF_OPEN

    def test_outcome_after_the_timeout_counts_as_a_trial_without_check(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        self.fail(breaker, "crm", 3)
        clock.advance(61)

        state = breaker.record_failure("crm", "down again")

        assert state.state == OPEN
        assert state.opened_at == clock.now.isoformat()

    def test_late_outcomes_in_open_do_not_move_the_timeout(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        opened = self.fail(breaker, "crm", 3).opened_at
        clock.advance(30)

        assert breaker.record_failure("crm", "late failure").opened_at == opened
        late_success = breaker.record_success("crm")
        assert (late_success.state, late_success.opened_at) == (OPEN, opened)
        assert late_success.total_successes == 1

        clock.advance(30)
        assert breaker.check("crm").allowed

    def test_check_of_a_closed_source_writes_nothing(
        self, breaker: CircuitBreaker, store: BreakerStore
    ) -> None:
        assert breaker.check("crm").allowed
        assert store.list() == []

    def test_check_many_decides_each_distinct_source(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        self.fail(breaker, "crm", 3)
        clock.advance(10)
        self.fail(breaker, "erp", 3)
        clock.advance(50)  # crm's timeout has passed, erp's has not

        decisions = breaker.check_many(["crm", "erp", "web", "crm"])

        assert list(decisions) == ["crm", "erp", "web"]
        assert {k: (d.allowed, d.state) for k, d in decisions.items()} == {
            "crm": (True, HALF_OPEN),
            "erp": (False, OPEN),
            "web": (True, CLOSED),
        }
        assert json.loads(json.dumps(decisions["erp"].to_dict()))["allowed"] is False

    # -- concurrency -----------------------------------------------------------------

    @pytest.mark.timeout(120)
    def test_concurrent_failures_from_threads_are_all_counted(
        self, store: BreakerStore, clock: FakeClock
    ) -> None:
        breaker = CircuitBreaker(store, SETTINGS, clock)
        workers = 20
        barrier = threading.Barrier(workers)
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                barrier.wait(timeout=60)
                breaker.record_failure("crm", f"thread {i}")
            except BaseException as exc:  # surfaced by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        state = store.get("crm")
        assert state.total_failures == workers
        assert state.consecutive_failures == workers
        assert state.state == OPEN

    @pytest.mark.timeout(120)
    def test_concurrent_updates_of_different_sources_do_not_interfere(
        self, store: BreakerStore
    ) -> None:
        per_source = 10
        sources = ["crm", "erp"]
        barrier = threading.Barrier(per_source * len(sources))

        def work(source: str) -> None:
            barrier.wait(timeout=60)
            store.update(source, _bump_failures)

        threads = [
            threading.Thread(target=work, args=(s,)) for s in sources for _ in range(per_source)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert {s.source_name: s.total_failures for s in store.list()} == {"crm": 10, "erp": 10}

    @pytest.mark.timeout(180)
    def test_concurrent_failures_from_processes_are_all_counted(
        self, store_factory: Callable[[], BreakerStore]
    ) -> None:
        try:
            pickle.dumps(store_factory)
        except Exception as exc:
            pytest.skip(f"store factory cannot be sent to other processes: {exc}")
        processes, per_process = 4, 10
        # spawn, not fork: children must open the storage themselves, like separate workers
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(processes)
        children = [
            ctx.Process(
                target=_record_failures_in_process,
                args=(store_factory, "crm", per_process, barrier),
            )
            for _ in range(processes)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=150)

        assert [c.exitcode for c in children] == [0] * processes
        state = store_factory().get("crm")
        assert state.total_failures == processes * per_process
        assert state.consecutive_failures == processes * per_process
