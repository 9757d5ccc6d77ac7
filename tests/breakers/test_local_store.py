"""`LocalBreakerStore` against the store contract, plus what is specific to SQLite."""

from __future__ import annotations

import functools
import pickle
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from shared.breakers import BreakerState, BreakerStore, LocalBreakerStore

from .contract import BreakerStoreContract, _bump_failures


class TestLocalBreakerStore(BreakerStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Callable[[], BreakerStore]:
        return functools.partial(LocalBreakerStore, tmp_path / "state" / "breakers.sqlite")


def test_creates_missing_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "breakers.sqlite"
    LocalBreakerStore(path)
    assert path.is_file()


def test_keeps_one_row_per_source(tmp_path: Path) -> None:
    path = tmp_path / "breakers.sqlite"
    store = LocalBreakerStore(path)
    for _ in range(3):
        store.update("crm", _bump_failures)
    store.update("erp", _bump_failures)

    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT source_name, total_failures FROM breaker_state ORDER BY source_name"
        ).fetchall()
    assert rows == [("crm", 3), ("erp", 1)]


def test_can_be_pickled(tmp_path: Path) -> None:
    store = LocalBreakerStore(tmp_path / "breakers.sqlite")
    store.update("crm", _bump_failures)
    assert pickle.loads(pickle.dumps(store)).get("crm").total_failures == 1


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.timeout(30)
def test_update_waits_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "breakers.sqlite"
    store = LocalBreakerStore(path, busy_timeout_seconds=10)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 0.5, locked))
    holder.start()
    locked.wait(5)

    started = time.monotonic()
    store.update("crm", _bump_failures)
    waited = time.monotonic() - started
    holder.join()

    assert waited >= 0.3
    assert store.get("crm").total_failures == 1


@pytest.mark.timeout(30)
def test_update_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "breakers.sqlite"
    store = LocalBreakerStore(path, busy_timeout_seconds=0.1)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 1.5, locked))
    holder.start()
    locked.wait(5)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.update("crm", _bump_failures)
    finally:
        holder.join()
    assert store.get("crm") == BreakerState(source_name="crm")
