"""Clocks for the local runtime: real UTC time, or a virtual clock that tests can fast-forward.

The virtual clock only moves when the runtime has nothing else to do: then it jumps to the
next timer (or the next `activity_sleep` wake-up). Work that runs for real (an activity's
code, an orchestrator episode) therefore takes no virtual time, which makes races between
timers and activities deterministic in tests.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Optional, Protocol

_local = threading.local()


def utc_now() -> datetime:
    """Current UTC time as an aware datetime."""
    return datetime.now(timezone.utc)


class Clock(Protocol):
    """What the runtime needs from a clock."""

    virtual: bool

    def now(self) -> datetime:
        """Current time (aware UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling activity thread for `seconds` of this clock's time."""
        ...


class RealClock:
    """Wall-clock time: timers really wait until their FireAt."""

    virtual = False

    def now(self) -> datetime:
        """Current UTC time."""
        return utc_now()

    def sleep(self, seconds: float) -> None:
        """Plain `time.sleep`."""
        time.sleep(max(0.0, seconds))


class _Sleeper:
    __slots__ = ("wake_at", "woken")

    def __init__(self, wake_at: datetime) -> None:
        self.wake_at = wake_at
        self.woken = False


class VirtualClock:
    """Simulated time that the dispatcher advances when nothing else can progress.

    All methods except `sleep` must be called with `lock` held.

    Args:
        lock: The runtime's lock (shared so that parking and advancing are atomic with the
            dispatcher's view of the world).
        on_park: Called (with `lock` held) when an activity thread parks in `sleep`, so the
            dispatcher re-checks whether it may advance time.
        start: Initial time; defaults to the real UTC now.
    """

    virtual = True

    def __init__(self, lock: threading.Lock | threading.RLock, on_park: Callable[[], None],
                 start: Optional[datetime] = None) -> None:
        self._lock = lock
        self._cond = threading.Condition(lock)
        self._on_park = on_park
        self._now = start or utc_now()
        self._sleepers: list[tuple[datetime, int, _Sleeper]] = []
        self._seq = itertools.count()
        self.parked = 0
        """Activity threads currently blocked in `sleep` (they cannot progress on their own)."""

    def now(self) -> datetime:
        """Current virtual time."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Park the calling thread until virtual time has advanced by `seconds`."""
        with self._cond:
            sleeper = _Sleeper(self._now + timedelta(seconds=max(0.0, seconds)))
            heapq.heappush(self._sleepers, (sleeper.wake_at, next(self._seq), sleeper))
            self.parked += 1
            self._on_park()
            while not sleeper.woken:
                self._cond.wait()

    def next_wake(self) -> Optional[datetime]:
        """Earliest wake-up time of a parked thread, if any."""
        return self._sleepers[0][0] if self._sleepers else None

    def advance_to(self, moment: datetime) -> None:
        """Move time forward (never backward) and release the sleepers that are now due.

        The parked count drops here rather than in the woken thread, so the dispatcher never
        sees a released thread as still parked and jumps time again before it has run.
        """
        if moment > self._now:
            self._now = moment
        released = False
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, sleeper = heapq.heappop(self._sleepers)
            sleeper.woken = True
            self.parked -= 1
            released = True
        if released:
            self._cond.notify_all()


def bind_activity_clock(clock: Optional[Clock]) -> None:
    """Make `clock` the one `activity_sleep` uses on the current thread (None to unbind)."""
    _local.clock = clock


def activity_sleep(seconds: float) -> None:
    """Sleep inside an activity in the clock of the runtime that runs it.

    Under a `virtual_time=True` runtime this parks the activity until virtual time has moved
    by `seconds` (so tests can give activities a duration that races timers
    deterministically); anywhere else it is `time.sleep`.
    """
    clock: Optional[Clock] = getattr(_local, "clock", None)
    if clock is None:
        time.sleep(max(0.0, seconds))
    else:
        clock.sleep(seconds)
