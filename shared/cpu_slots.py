"""CPU slots: the jobs of a process and their parallel read slices share the usable cores.

Each running job (or slice activity) holds one slot for its duration (`job_slot`); a read that
could use K parallel slices takes up to K-1 more (`extra_slots`), only those free at that moment,
and gives them back when the read ends. So jobs plus slices never exceed the budget: with two
slots, two jobs read one stream each, and a job running alone reads two.

- Only the job's own slot is waited for; extra slices never wait (fewer slices is fine: the
  slices of a read always cover its table exactly once, however many there are).
- A slot is given back on every exit (success, error, a killed or closed read); whatever a job
  still holds when its slot is released (a read that was never closed) is given back with it.
- A slot holder never waits for a slot, so waiting cannot deadlock: every holder runs to its end.
- Outside a job (a library call of `run_job`, a test) reads are not budgeted: no slot, all
  slices.

The budget is per process: `INGESTION_CPU_SLOTS`, else the usable cores (`os.sched_getaffinity`)
divided by `FUNCTIONS_WORKER_PROCESS_COUNT`; the command line's `--max-parallel N` sets it to N
(`configure`). The counters are changed under a plain `threading.Lock` (a C lock) with no Python
call in between and waiting uses a C queue, so the local runtime's simulated kill (an exception
raised at a Python call) can neither stop an update of the counters halfway nor leave a lock held.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from contextlib import contextmanager
from typing import ContextManager, Iterator, Optional

RECHECK_SECONDS = 1.0
"""A waiting job re-checks the budget at least this often (a wake-up is never lost for longer)."""

_lock = threading.Lock()
_budget: Optional[CpuSlots] = None
_configured: Optional[int] = None
_current: contextvars.ContextVar[Optional[JobSlots]] = contextvars.ContextVar("cpu_slots_job", default=None)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_size() -> int:
    """Slots when nothing is configured: `INGESTION_CPU_SLOTS`, else the usable cores shared
    among the Functions host's worker processes (`FUNCTIONS_WORKER_PROCESS_COUNT`, default 1)."""
    from shared.settings import settings

    values = settings()
    if values.cpu_slots:
        return values.cpu_slots
    try:
        workers = max(1, int(values.functions_worker_process_count or 1))
    except ValueError:
        workers = 1
    return max(1, usable_cores() // workers)


def configure(size: Optional[int]) -> None:
    """Fix this process's budget at `size` slots (`--max-parallel`); None goes back to the default."""
    global _configured
    with _lock:
        _configured = size


def cpu_slots() -> CpuSlots:
    """This process's budget, sized as configured now (a new size starts a new budget; jobs
    holding slots of the old one give them back there)."""
    global _budget
    size = _configured or default_size()
    with _lock:
        if _budget is None or _budget.size != size:
            _budget = CpuSlots(size)
        return _budget


class CpuSlots:
    """A counted budget of slots: blocking for a job's own slot, non-blocking for extras.

    Args:
        size: How many slots (at least 1).
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._mutex = threading.Lock()
        self._bell: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._in_use = 0
        self._waiting = 0
        self.high_water = 0
        """Most slots in use at once since this budget was made."""

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self._in_use

    def acquire(self) -> None:
        """Take one slot, waiting until one is free."""
        while True:
            with self._mutex:
                if self._in_use < self.size:
                    self._in_use += 1
                    self.high_water = max(self.high_water, self._in_use)
                    return
                self._waiting += 1
            try:
                self._bell.get(timeout=RECHECK_SECONDS)
            except queue.Empty:
                pass
            finally:
                with self._mutex:
                    self._waiting -= 1

    def try_acquire(self, wanted: int) -> int:
        """Take up to `wanted` slots of those free now, without waiting; return how many."""
        with self._mutex:
            granted = max(0, min(wanted, self.size - self._in_use))
            self._in_use += granted
            self.high_water = max(self.high_water, self._in_use)
            return granted

    def release(self, count: int = 1) -> None:
        """Give back `count` slots and wake as many waiting jobs."""
        with self._mutex:
            self._in_use -= count
            wake = min(count, self._waiting)
        for _ in range(wake):
            self._bell.put(None)  # C calls only from here: see the module docstring

    @contextmanager
    def job(self) -> Iterator[JobSlots]:
        """Hold one slot for the duration of a job (waiting for it if none is free); reads inside
        may add extras (`extra_slots`). Everything the job holds is given back on exit."""
        lease = JobSlots(self)
        token = _current.set(lease)
        try:
            self.acquire()
            lease.held = 1
            yield lease
        finally:
            _current.reset(token)
            # Inline, not `self.release(...)`: no Python call between the two counters.
            with lease.mutex, self._mutex:
                self._in_use -= lease.held
                wake, lease.held = min(lease.held, self._waiting), 0
            for _ in range(wake):
                self._bell.put(None)


class JobSlots:
    """The slots one job holds: its own and the extras of its current read."""

    def __init__(self, budget: CpuSlots) -> None:
        self.budget = budget
        self.mutex = threading.Lock()
        self.held = 0
        """Slots held now (0 before the job's slot was granted and after it was released)."""
        self.streams_wanted = 0
        """Parallel slices the job's largest read wanted (0: no read wanted more than one)."""
        self.streams_used = 0
        """Slices that read actually used."""

    def take(self, wanted: int) -> int:
        """Up to `wanted` extra slots, never waiting; how many were granted (0 once released)."""
        with self.mutex:
            if not self.held:
                return 0
            granted = self.budget.try_acquire(wanted)
            self.held += granted
            return granted

    def give_back(self, count: int) -> None:
        """Return `count` extras (no more than are held)."""
        budget = self.budget
        with self.mutex, budget._mutex:  # both counters in one step (see `CpuSlots.job`)
            count = max(0, min(count, self.held - 1))
            self.held -= count
            budget._in_use -= count
            wake = min(count, budget._waiting)
        for _ in range(wake):
            budget._bell.put(None)

    def note_read(self, wanted: int, used: int) -> None:
        """Record a read that wanted `wanted` slices and used `used` (the largest one is kept)."""
        if wanted > 1 and wanted >= self.streams_wanted:
            self.streams_wanted, self.streams_used = wanted, used

    def record(self) -> Optional[dict[str, int]]:
        """`{"wanted", "used"}` slices of the job's sliceable read, for its metrics; None when no
        read of the job wanted more than one slice."""
        if not self.streams_wanted:
            return None
        return {"wanted": self.streams_wanted, "used": self.streams_used}


def job_slot() -> ContextManager[JobSlots]:
    """`with job_slot() as lease:` one slot of this process's budget for a job (see `CpuSlots.job`)."""
    return cpu_slots().job()


@contextmanager
def extra_slots(wanted: int) -> Iterator[int]:
    """Up to `wanted` more slots for the parallel slices of the current job's read, never waiting;
    yields how many were granted and gives them back when the block ends. Outside a job every
    wanted slot is granted (nothing is budgeted there)."""
    lease = _current.get()
    if lease is None or wanted <= 0:
        yield max(0, wanted)
        return
    granted = lease.take(wanted)
    try:
        yield granted
    finally:
        lease.give_back(granted)


def note_read(wanted: int, used: int) -> None:
    """Record on the current job how many slices a read wanted and used (nothing outside a job)."""
    lease = _current.get()
    if lease is not None:
        lease.note_read(wanted, used)
