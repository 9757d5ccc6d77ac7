"""A bounded pool of daemon threads that run activity attempts.

The pool shares the runtime's lock so the dispatcher can tell, atomically, whether any
activity can still make progress on its own (virtual time may only jump when none can).
Daemon threads: a stuck activity must not keep the interpreter alive at exit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Job = TypeVar("Job")


class ActivityPool(Generic[Job]):
    """Run jobs on at most `size` threads, in submission order.

    Args:
        size: Maximum number of activities running at once.
        lock: The runtime lock; `submit` and `progressable` must be called with it held.
        run: Executes one job (called without the lock).
        on_thread_start: Called once in each new worker thread (binds the activity clock).
    """

    def __init__(self, size: int, lock: threading.RLock, run: Callable[[Job], None],
                 on_thread_start: Callable[[], None]) -> None:
        self.size = max(1, size)
        self._cond = threading.Condition(lock)
        self._run = run
        self._on_thread_start = on_thread_start
        self._queue: deque[Job] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False
        self.running = 0
        """Jobs started and not finished (including ones parked in a virtual sleep)."""

    def submit(self, job: Job) -> None:
        """Queue a job; a thread picks it up as soon as one is free."""
        self._queue.append(job)
        # Idle threads only leave `_idle` once they wake up, so compare with the whole queue:
        # several jobs submitted in a row must not all wait for the same idle thread.
        if len(self._queue) > self._idle and len(self._threads) < self.size:
            thread = threading.Thread(target=self._work, name=f"durable-activity-"
                                      f"{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._cond.notify()

    def job_finished(self) -> None:
        """Free a slot; the runtime calls this (lock held) when it posts a job's outcome."""
        self.running -= 1

    def progressable(self, parked: int) -> bool:
        """Whether some job is running (and not parked) or can start right away."""
        return self.running - parked > 0 or (bool(self._queue) and self.running < self.size)

    def close(self) -> None:
        """Let idle threads exit; jobs already running finish on their own."""
        self._closed = True
        self._queue.clear()
        self._cond.notify_all()

    def _work(self) -> None:
        self._on_thread_start()
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if self._closed:
                    return
                job = self._queue.popleft()
                self.running += 1
            # `run` reports the outcome and calls `job_finished` under the lock itself, so
            # the completion and the freed slot become visible to the dispatcher together.
            self._run(job)
