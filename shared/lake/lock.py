"""One writer per lake table, across processes and machines, with storage-level means.

- Local lake: `flock` on `<source>/_ingestion/locks/<table>.lock` in the lake folder. The kernel
  drops the lock when the holder dies (kill -9 included), so a crashed holder never blocks.
  (On network file systems `flock` is only as good as the mount's lock support.)
- Azure lake: a 60-second blob lease on the same path, renewed every 20 s by a background thread
  while the job runs. A crashed holder's lease expires within a minute. If renewal fails the lock
  is marked lost and the commit refuses to run (`assert_held`).

A second contender waits up to `INGESTION_LOCK_WAIT_SECONDS` (default 900), then fails with a
message naming the table and the holder.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from typing import Any, Optional

from shared.redaction import error_line


class LockTimeout(RuntimeError):
    """Another run held the table for longer than we may wait; nothing was loaded."""


class LockLost(RuntimeError):
    """The lease could not be renewed: another writer may own the table now; nothing was committed."""


def holder_text(holder: str) -> str:
    """Who holds a lock, for messages: the run, host and process."""
    return f"{holder} (host {socket.gethostname()}, pid {os.getpid()})"


def _wait_seconds() -> float:
    from shared.settings import settings

    return settings().lock_wait_seconds


class LocalTableLock:
    """`flock` on a lock file in the lake folder."""

    def __init__(self, path: str, table: str, holder: str) -> None:
        self.path, self.table, self.holder = path, table, holder
        self._fh: Any = None

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fh = open(self.path, "a+")
        deadline = time.monotonic() + _wait_seconds()
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    other = fh.read(300).strip() or "another run"
                    fh.close()
                    raise LockTimeout(f"table {self.table} is locked by {other}; gave up after {_wait_seconds():.0f} s")
                time.sleep(0.2)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(holder_text(self.holder))
            fh.flush()
        except BaseException:  # an error (or a kill) between taking the lock and handing it out
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
            raise
        self._fh = fh

    def assert_held(self) -> None:
        """flock cannot be lost while the process lives."""

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class BlobLeaseLock:
    """A renewed lease on a lock blob; expires when the holder stops renewing."""

    def __init__(self, container: Any, blob: str, table: str, holder: str) -> None:
        self.container, self.blob, self.table, self.holder = container, blob, table, holder
        from shared.settings import settings

        self.duration = settings().lock_lease_seconds
        self._lease: Any = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.lost: Optional[str] = None

    def acquire(self) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        client = self.container.get_blob_client(self.blob)
        try:
            client.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass  # exists (possibly leased: writing it would need the lease)
        deadline = time.monotonic() + _wait_seconds()
        while True:
            try:
                self._lease = client.acquire_lease(lease_duration=self.duration)
                break
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise
                if time.monotonic() >= deadline:
                    other = (client.get_blob_properties().metadata or {}).get("holder", "another run")
                    raise LockTimeout(f"table {self.table} is locked by {other}; gave up after {_wait_seconds():.0f} s") from None
                time.sleep(1.0)
        try:
            client.set_blob_metadata({"holder": holder_text(self.holder)[:200]}, lease=self._lease)
        except Exception:  # the holder name is for messages only
            pass
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.table}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        interval = max(self.duration / 3, 1.0)
        while not self._stop.wait(interval):
            try:
                self._lease.renew()
            except Exception as exc:  # expired, taken over, or storage down
                self.lost = error_line(exc, with_type=True)
                return

    def assert_held(self) -> None:
        if self.lost:
            raise LockLost(f"lost the lock of table {self.table}: {self.lost}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._lease is not None and not self.lost:
            try:
                self._lease.release()
            except Exception:  # it expires by itself
                pass
        self._lease = None
