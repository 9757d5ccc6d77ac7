"""The commit protocol: attempt-scoped staging, a journal, and an idempotent roll-forward.

See docs/lake-protocol.md for the protocol and what a reader may rely on. In short, per table:

1. Every attempt loads (with dlt) into its own staging dataset `_staging/<source>/<table>/<attempt>/`,
   which no reader of `<source>/<table>/` ever sees.
2. Commit, under the table lock: write a journal `<source>/_ingestion/commits/<table>/<id>.json`
   (one atomic write) naming the staged files, the target day, the mode and dlt's state and
   completed-load files; then `apply` it: make the day's data visible in one step per table and
   day, copy the state and the `_dlt_loads` marker into `<source>/`, record the commit, delete
   the staging folder and last the journal.
3. Every job starts (under the lock) with `recover`: journals left by a crashed commit are rolled
   forward before the cursor is read, and staging folders no journal names are deleted.

`apply` is idempotent: each step checks what is already done, so running it again after a crash
at any point (or twice) ends in the same lake.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from shared.lake.layout import BOOKKEEPING, STAGING, data_files, date_folder, day_folders
from shared.lake.lock import BlobLeaseLock, LocalTableLock
from shared.lake.store import StoreError, dumps, open_store
from shared.redaction import redact

log = logging.getLogger(__name__)

REPLACE, APPEND = "replace", "append"
"""FULL loads replace the day's snapshot; INCREMENTAL loads append to it."""
STATE_FILES_KEPT = 10
"""Committed dlt state files kept per pipeline (the newest is the cursor)."""
UNSAFE_PUBLISH_ENV = "INGESTION_UNSAFE_PUBLISH"
"""Test-only switch (undocumented on purpose): publish file by file, without the atomic day swap
or journal ordering, to prove the crash tests detect a broken publish."""


def unsafe_publish() -> bool:
    return os.environ.get(UNSAFE_PUBLISH_ENV) == "1"


class CommitError(StoreError):
    """A journal cannot be rolled forward (its staged files are gone); the table needs a look."""


class TableLake:
    """One lake table (and its nested child tables) of one source: staging, lock, commit, recovery."""

    def __init__(self, source: str, table: str, url: Optional[str] = None, store: Any = None) -> None:
        self.source, self.table = source, table
        self.store = store or open_store(url)
        self._lock: Any = None

    # -- paths (relative to the lake root) -------------------------------------------------
    def day_dir(self, table: str, day: str) -> str:
        return f"{self.source}/{table}/{day}"

    @property
    def staging_dir(self) -> str:
        return f"{STAGING}/{self.source}/{self.table}"

    @property
    def staging_url(self) -> str:
        """dlt bucket URL under which each attempt is one dataset (`<staging_url>/<attempt>/...`)."""
        return f"{self.store.url.rstrip('/')}/{self.staging_dir}"

    @property
    def journal_dir(self) -> str:
        return f"{self.source}/{BOOKKEEPING}/commits/{self.table}"

    @property
    def record_path(self) -> str:
        return f"{self.source}/{BOOKKEEPING}/tables/{self.table}.json"

    def manifest_path(self, table: str, day: str) -> str:
        return f"{self.source}/{BOOKKEEPING}/manifests/{table}/{day.replace('/', '-')}.json"

    def schema_path(self, table: str) -> str:
        """The schema-drift signature of a table's last load (`shared.lake.drift`)."""
        return f"{self.source}/{BOOKKEEPING}/schemas/{table}.json"

    def has_data(self, table: str, except_day: Optional[str] = None) -> bool:
        """Whether the lake table `table` has a data file in a day folder (other than `except_day`)."""
        return any(day != except_day and data_files(self.store, folder)
                   for day, folder in day_folders(self.store, f"{self.source}/{table}"))

    # -- lock --------------------------------------------------------------------------------
    @contextmanager
    def locked(self, holder: str) -> Iterator[None]:
        """Hold the table's lake-level lock (see `shared.lake.lock`)."""
        path = f"{self.source}/{BOOKKEEPING}/locks/{self.table}.lock"
        if self.store.local:
            lock: Any = LocalTableLock(self.store.abs(path), self.table, holder)
        else:
            lock = BlobLeaseLock(self.store.container, self.store.name(path), self.table, holder)
        lock.acquire()
        self._lock = lock
        try:
            yield
        finally:
            self._lock = None
            lock.release()

    # -- attempts ----------------------------------------------------------------------------
    @staticmethod
    def attempt_name(split_id: Optional[str] = None, slice_no: Optional[int] = None) -> str:
        """A new staging dataset name: `a<epoch>_<random>` for a job, `s<split>_<slice>_<epoch>_<random>`
        for one slice of a split table. Lower-case letters, digits and `_` only (a dlt dataset name)."""
        stamp, rand = int(time.time()), uuid.uuid4().hex[:8]
        if split_id is None:
            return f"a{stamp}_{rand}"
        return f"s{split_id}_{slice_no}_{stamp}_{rand}"

    def seed_state(self, attempt: str, pipeline: str) -> bool:
        """Copy the pipeline's committed dlt state (and its schema) into an attempt's staging
        dataset, so `pipeline.sync_destination()` there restores the committed cursor.

        Returns:
            False when the pipeline has no committed state yet (a first run).
        """
        state_dir = f"{self.source}/_dlt_pipeline_state"
        mine = [n for n in self.store.ls(state_dir) if n.startswith(f"{pipeline}__") and n.endswith(".jsonl")]
        if not mine:
            return False
        newest = max(mine, key=_load_id_of)
        target = f"{self.staging_dir}/{attempt}"
        data = self.store.read(f"{state_dir}/{newest}")
        if data is None:
            return False
        self.store.write(f"{target}/_dlt_pipeline_state/{newest}", _retarget_state(data, attempt))
        schema_hash = newest[:-len(".jsonl")].rsplit("__", 2)[-1]
        for name in self.store.ls(f"{self.source}/_dlt_version"):
            if name.endswith(f"__{schema_hash}.jsonl"):  # (the schema name is dlt's normalized pipeline name)
                self.store.copy(f"{self.source}/_dlt_version/{name}", f"{target}/_dlt_version/{name}")
                break
        if self.store.exists(f"{self.source}/init"):
            self.store.copy(f"{self.source}/init", f"{target}/init")
        # With its schema already stored dlt does not create its tables' folders again.
        self.store.makedirs(f"{target}/_dlt_loads")
        return True

    def staged_files(self, attempt: str) -> list[dict[str, str]]:
        """Data files an attempt staged, of every table it loaded (the job's table and nested
        child tables): `{"t": table, "src": lake path, "name": file name, "day": "YYYY/MM/DD"}`."""
        files = []
        tables = [t for t in self.store.ls(f"{self.staging_dir}/{attempt}") if not t.startswith(("_dlt", ".", "init"))]
        for table in tables:
            for day, folder in day_folders(self.store, f"{self.staging_dir}/{attempt}/{table}"):
                for name in data_files(self.store, folder):
                    files.append({"t": table, "src": f"{folder}/{name}", "name": name, "day": day})
        return files

    def discard_attempt(self, attempt: str) -> None:
        """Remove a failed attempt's staging (best effort: the next job of the table removes leftovers)."""
        try:
            self.store.rm_tree(f"{self.staging_dir}/{attempt}")
        except Exception as exc:  # keep the original error
            log.error("could not remove staging of failed attempt %s: %s", attempt, redact(exc))

    def dlt_files(self, attempt: str, load_id: str, pipeline: str) -> list[dict[str, str]]:
        """dlt's records of a completed load in an attempt: state file, `_dlt_loads` marker, schema
        (only a schema version the lake does not have yet) and `init`, each with its target."""
        base = f"{self.staging_dir}/{attempt}"
        meta = []
        for folder in ("_dlt_pipeline_state", "_dlt_loads"):
            for name in self.store.ls(f"{base}/{folder}"):
                if f"__{load_id}" in name:
                    meta.append({"src": f"{base}/{folder}/{name}", "dst": f"{self.source}/{folder}/{name}"})
        known = {n.rsplit("__", 1)[-1] for n in self.store.ls(f"{self.source}/_dlt_version")}
        for name in self.store.ls(f"{base}/_dlt_version"):
            if name.rsplit("__", 1)[-1] not in known:
                meta.append({"src": f"{base}/_dlt_version/{name}", "dst": f"{self.source}/_dlt_version/{name}"})
        if self.store.exists(f"{base}/init"):
            meta.append({"src": f"{base}/init", "dst": f"{self.source}/init", "if_missing": "1"})
        return meta

    # -- commit ------------------------------------------------------------------------------
    def commit_attempt(
        self, attempt: str, *, load_id: str, mode: str, day: str, files: list[dict[str, str]], pipeline: str,
        token: Optional[str], rows: int,
    ) -> list[str]:
        """Commit one job attempt's load (its data files and dlt's records of it). Call under `locked`.

        Returns:
            The published files (full paths).
        """
        return self.commit(
            commit_id=load_id, mode=mode, day=day, files=files, meta=self.dlt_files(attempt, load_id, pipeline),
            cleanup=[f"{self.staging_dir}/{attempt}"], pipeline=pipeline, token=token, rows=rows, load_id=load_id,
        )

    def publish_split(self, staged: list[str], split: str, *, token: Optional[str], rows: int) -> list[str]:
        """Publish the accepted attempt of every slice of a split table as one snapshot (replacing
        the day's previous one); the split's other attempts are deleted, never published. Call
        under `locked`.

        Args:
            staged: Each slice's accepted staging dataset.
            split: The split's id (its slices' attempt names start with `s<split>_`).
            token: Idempotency key for the commit record.
            rows: Rows of all slices, for the commit record.

        Returns:
            The published files (full paths).
        """
        if unsafe_publish():  # test-only: the old publish took every staged slice there was
            staged = [n for n in self.store.ls(self.staging_dir) if n.startswith("s")]
        files = []
        for attempt in staged:
            if not self.store.exists(f"{self.staging_dir}/{attempt}"):
                raise CommitError(f"{self.source}.{self.table}: staged slice {attempt} is gone; nothing published")
            files.extend(self.staged_files(attempt))
        day = max((f["day"] for f in files), default=date_folder(datetime.now(timezone.utc)))
        ours = [f"{self.staging_dir}/{n}" for n in self.store.ls(self.staging_dir)
                if n.startswith(f"s{split}_") or n in staged]
        return self.commit(
            commit_id=f"split_{split}", mode=REPLACE, day=day, files=files, meta=[], cleanup=ours,
            pipeline=None, token=token, rows=rows, load_id=None,
        )

    def commit(
        self, *, commit_id: str, mode: str, day: str, files: list[dict[str, str]], meta: list[dict[str, str]],
        cleanup: list[str], pipeline: Optional[str], token: Optional[str], rows: int, load_id: Optional[str],
    ) -> list[str]:
        """Journal, then roll forward. Call under `locked`. Returns the published files (full paths)."""
        if self._lock is not None:
            self._lock.assert_held()
        journal = {
            "v": 1, "id": commit_id, "source": self.source, "table": self.table, "mode": mode, "day": day,
            "files": files, "meta": meta, "cleanup": cleanup, "pipeline": pipeline, "token": token,
            "rows": rows, "load_id": load_id, "written_at": time.time(),
        }
        if unsafe_publish():
            return self._apply_unsafe(journal)
        self.store.write(f"{self.journal_dir}/{commit_id}.json", dumps(journal))
        return self.apply(journal)

    def apply(self, journal: dict[str, Any]) -> list[str]:
        """Make a journal's load visible; idempotent (safe to run again after a crash anywhere)."""
        day = journal["day"]
        by_table: dict[str, list[dict[str, str]]] = {}
        for entry in journal["files"]:
            by_table.setdefault(entry["t"], []).append(entry)
        published = []
        for table, entries in sorted(by_table.items()):
            names = self._publish_day(table, day, entries, journal["mode"], journal["id"])
            published.extend(self.store.full(f"{self.day_dir(table, day)}/{n}") for n in names)
        for item in journal["meta"]:
            if self.store.exists(item["dst"]):
                continue
            try:
                self.store.copy(item["src"], item["dst"])
            except FileNotFoundError:
                raise CommitError(f"commit {journal['id']} of {self.source}.{self.table}: {item['src']} is gone") from None
        if journal.get("pipeline") and any("_dlt_pipeline_state/" in m["dst"] for m in journal["meta"]):
            self._prune_states(journal["pipeline"])
        record = {k: journal[k] for k in ("id", "token", "rows", "load_id", "mode", "day")}
        record["files"] = sorted(published)
        record["committed_at"] = time.time()
        self.store.write(self.record_path, dumps(record))
        for folder in journal["cleanup"]:
            self.store.rm_tree(folder)
        self.store.rm(f"{self.journal_dir}/{journal['id']}.json")
        return sorted(published)

    def _publish_day(self, table: str, day: str, entries: list[dict[str, str]], mode: str, commit_id: str) -> list[str]:
        """Make one table's day folder show the new snapshot (REPLACE) or the old files plus the new
        ones (APPEND) in one step. Returns the file names of this load."""
        folder = self.day_dir(table, day)
        names = [e["name"] for e in entries]
        present = set(self.store.ls(folder))
        if not self.store.local:
            return self._publish_day_flat(table, day, entries, mode, present)
        swap = f"{self.staging_dir}/x{commit_id.replace('.', '_')}_{table}"
        if set(names) <= present:
            self.store.rm_tree(swap)  # done before a crash; `swap` may hold the old snapshot
            return names
        missing = [e for e in entries if e["name"] not in present]
        if mode == APPEND and present and len(missing) == 1 and not self.store.exists(swap):
            self._move_staged(missing[0], f"{folder}/{missing[0]['name']}")  # one file: one rename
            return names
        self.store.makedirs(swap)
        built = set(self.store.ls(swap))
        for entry in entries:
            if entry["name"] not in built:
                self._move_staged(entry, f"{swap}/{entry['name']}")
        if mode == APPEND:
            for name in present - built:
                self.store.link(f"{folder}/{name}", f"{swap}/{name}")
        if not present and not self.store.exists(folder):
            self.store.rename_dir(swap, folder)
        elif not self.store.exchange(swap, folder):
            # Portable fallback (no renameat2): a moment without the day folder, never a mixed one.
            old = f"{swap}_old"
            self.store.rename_dir(folder, old)
            self.store.rename_dir(swap, folder)
            self.store.rm_tree(old)
        self.store.rm_tree(swap)  # now the previous snapshot
        return names

    def _publish_day_flat(self, table: str, day: str, entries: list[dict[str, str]], mode: str,
                          present: set[str]) -> list[str]:
        """Flat blob namespace: copy each staged blob in (each appears whole), write the day's
        manifest naming exactly the committed files, then delete the older snapshot's blobs."""
        folder = self.day_dir(table, day)
        names = [e["name"] for e in entries]
        for entry in entries:
            if entry["name"] not in present:
                self._copy_staged(entry, f"{folder}/{entry['name']}")
        files = sorted(set(names) | (present if mode == APPEND else set()))
        self.store.write(self.manifest_path(table, day), dumps({"files": files, "mode": mode}))
        if mode == REPLACE:
            for name in present - set(names):
                self.store.rm(f"{folder}/{name}")
        return names

    def _move_staged(self, entry: dict[str, str], target: str) -> None:
        try:
            self.store.move(entry["src"], target)
        except FileNotFoundError:
            raise CommitError(f"{self.source}.{self.table}: staged file {entry['src']} is gone") from None

    def _copy_staged(self, entry: dict[str, str], target: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.store.copy(entry["src"], target)
        except (FileNotFoundError, ResourceNotFoundError):
            raise CommitError(f"{self.source}.{self.table}: staged file {entry['src']} is gone") from None

    def _apply_unsafe(self, journal: dict[str, Any]) -> list[str]:
        """Test-only: the naive publish this protocol replaces (dlt writing into the lake): data
        files copied into the day folder one by one (not atomically), then dlt's state, then the
        day's older files deleted; no journal."""
        import shutil

        names = {e["name"] for e in journal["files"]}
        published = []
        for entry in journal["files"]:
            folder = self.day_dir(entry["t"], journal["day"])
            self.store.makedirs(folder)
            shutil.copyfile(self.store.abs(entry["src"]), self.store.abs(f"{folder}/{entry['name']}"))
            published.append(self.store.full(f"{folder}/{entry['name']}"))
        for item in journal["meta"]:
            self.store.copy(item["src"], item["dst"])
        if journal["mode"] == REPLACE:
            for table in {e["t"] for e in journal["files"]}:
                folder = self.day_dir(table, journal["day"])
                for name in self.store.ls(folder):
                    if name not in names:
                        self.store.rm(f"{folder}/{name}")
        for folder in journal["cleanup"]:
            self.store.rm_tree(folder)
        return published

    def _prune_states(self, pipeline: str) -> None:
        folder = f"{self.source}/_dlt_pipeline_state"
        mine = sorted((n for n in self.store.ls(folder) if n.startswith(f"{pipeline}__")), key=_load_id_of)
        for name in mine[:-STATE_FILES_KEPT]:
            self.store.rm(f"{folder}/{name}")

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> int:
        """Roll forward journals of crashed commits, then delete stale staging. Call under `locked`.

        Returns:
            How many journals were rolled forward.
        """
        rolled = 0
        for name in self.store.ls(self.journal_dir):
            if not name.endswith(".json") or name.startswith("."):
                continue
            data = self.store.read(f"{self.journal_dir}/{name}")
            if data is None:
                continue
            log.warning("%s.%s: finishing commit %s left by a crashed run", self.source, self.table, name[:-5])
            self.apply(json.loads(data))
            rolled += 1
        self.clean_staging()
        return rolled

    def clean_staging(self, keep: tuple[str, ...] = ()) -> None:
        """Delete staging no live attempt can own: every job attempt (they run under the lock we
        hold) and split slices older than the TTL."""
        from shared.settings import settings

        ttl = settings().staging_ttl_hours * 3600  # a live split finishes well within it
        now = time.time()
        for name in self.store.ls(self.staging_dir):
            if name in keep:
                continue
            if name.startswith(("a", "x")):
                self.store.rm_tree(f"{self.staging_dir}/{name}")
            elif name.startswith("s"):
                parts = name.split("_")
                stamp = float(parts[2]) if len(parts) >= 4 and parts[2].isdigit() else 0.0
                if now - stamp > ttl:
                    self.store.rm_tree(f"{self.staging_dir}/{name}")

    def discard(self, prefix: str) -> None:
        """Delete every staging dataset whose name starts with `prefix` (a split's slices)."""
        for name in self.store.ls(self.staging_dir):
            if name.startswith(prefix):
                self.store.rm_tree(f"{self.staging_dir}/{name}")

    def discard_split(self, split: str) -> None:
        """Delete every staged slice of a split whose run failed: nothing of it becomes visible."""
        self.discard(f"s{split}_")

    def record(self) -> Optional[dict[str, Any]]:
        """The table's last commit (`id`, `token`, `rows`, `files`, `load_id`), if any."""
        data = self.store.read(self.record_path)
        return json.loads(data) if data else None

    def committed(self, token: Optional[str]) -> Optional[dict[str, Any]]:
        """The table's last commit if it carries the idempotency `token` (the load already landed)."""
        if not token:
            return None
        record = self.record()
        return record if record and record.get("token") == token else None


def _retarget_state(data: bytes, dataset: str) -> bytes:
    """A committed dlt state file, rewritten to name the attempt's dataset.

    Without it dlt restores the state, sees another dataset name, changes it, and so writes a new
    state (a load package and a commit) on every run, even when no row is new.
    """
    from dlt.common.versioned_state import compress_state, decompress_state
    from dlt.pipeline.state_sync import generate_pipeline_state_version_hash

    doc = json.loads(data)
    state = decompress_state(doc["state"])
    if state.get("dataset_name") == dataset:
        return data
    state["dataset_name"] = dataset
    state["_version_hash"] = generate_pipeline_state_version_hash(state)
    doc["state"], doc["version_hash"] = compress_state(state), state["_version_hash"]
    return json.dumps(doc).encode("utf-8")


def _load_id_of(name: str) -> float:
    """dlt file names are `<name>__<load_id>__<hash>.jsonl`; load ids are epoch seconds."""
    try:
        return float(name.rsplit("__", 2)[1])
    except (IndexError, ValueError):
        return 0.0
