"""Per-run snapshots that keep the orchestration history small.

The orchestration passes only references and job indexes; the plan (full job definitions)
and each job's full `JobResult` live here, keyed by a run key. The local store writes JSON
files; a blob-backed store can implement the same three-method interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Protocol

from shared.workbook.models import Job
from shared.results import JobResult


class RunStore(Protocol):
    """Where a run's plan and results are kept between activities."""

    def save_plan(self, run_key: str, jobs: list[Job]) -> str:
        """Store the jobs to run; returns a reference for `load_jobs`."""

    def load_jobs(self, plan_ref: str) -> list[Job]:
        """The jobs saved under `plan_ref`, in plan order."""

    def save_result(self, run_key: str, index: int, result: JobResult) -> None:
        """Store (or replace) the result of job number `index`."""

    def load_result(self, run_key: str, index: int) -> Optional[JobResult]:
        """The stored result of job number `index`, if any."""

    def load_results(self, run_key: str) -> dict[int, JobResult]:
        """Every stored result of the run, by job index."""


def safe_key(run_key: str) -> str:
    """A run key usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_key)[:200]


def _write_json_atomically(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, default=str)
        os.replace(tmp, path)
    except BaseException:  # also an interrupted write: never leave a half file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@lru_cache(maxsize=8)
def _read_plan(path: str, mtime_ns: int, size: int) -> tuple[Job, ...]:
    with open(path, encoding="utf-8") as fh:
        return tuple(Job.from_dict(item) for item in json.load(fh))


class LocalRunStore:
    """JSON files under `<root>/<run_key>/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _run_dir(self, run_key: str) -> Path:
        return self.root / safe_key(run_key)

    def save_plan(self, run_key: str, jobs: list[Job]) -> str:
        path = self._run_dir(run_key) / "plan.json"
        _write_json_atomically(path, [job.to_dict() for job in jobs])
        return str(path)

    def load_jobs(self, plan_ref: str) -> list[Job]:
        stat = os.stat(plan_ref)
        # Every activity of a run reads the same plan: parse it once per process.
        return list(_read_plan(plan_ref, stat.st_mtime_ns, stat.st_size))

    def save_result(self, run_key: str, index: int, result: JobResult) -> None:
        _write_json_atomically(self._run_dir(run_key) / "results" / f"{index:06d}.json", result.to_dict())

    def load_result(self, run_key: str, index: int) -> Optional[JobResult]:
        path = self._run_dir(run_key) / "results" / f"{index:06d}.json"
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as fh:
            return JobResult.from_dict(json.load(fh))

    def load_results(self, run_key: str) -> dict[int, JobResult]:
        folder = self._run_dir(run_key) / "results"
        results = {}
        # Only `<index>.json`: a killed writer's temp file is never read as a result.
        for path in sorted(folder.glob("[0-9]*.json")) if folder.exists() else []:
            with open(path, encoding="utf-8") as fh:
                results[int(path.stem)] = JobResult.from_dict(json.load(fh))
        return results


class BlobRunStore:
    """JSON blobs under `<prefix>/<run_key>/` in a container: shared by every Functions instance."""

    def __init__(self, container_client: Any, prefix: str = "runs") -> None:
        self.container = container_client
        self.prefix = prefix.strip("/")
        self._plans: dict[str, tuple[Job, ...]] = {}

    def _name(self, run_key: str, *parts: str) -> str:
        return "/".join([self.prefix, safe_key(run_key), *parts])

    def _put(self, name: str, data: object) -> None:
        self.container.upload_blob(name, json.dumps(data, ensure_ascii=False, default=str).encode("utf-8"), overwrite=True)

    def _get(self, name: str) -> Any:
        return json.loads(self.container.download_blob(name).readall())

    def save_plan(self, run_key: str, jobs: list[Job]) -> str:
        name = self._name(run_key, "plan.json")
        self._put(name, [job.to_dict() for job in jobs])
        return name

    def load_jobs(self, plan_ref: str) -> list[Job]:
        # Plans never change once saved, so one download per process and plan is enough.
        if plan_ref not in self._plans:
            self._plans[plan_ref] = tuple(Job.from_dict(item) for item in self._get(plan_ref))
        return list(self._plans[plan_ref])

    def save_result(self, run_key: str, index: int, result: JobResult) -> None:
        self._put(self._name(run_key, "results", f"{index:06d}.json"), result.to_dict())

    def load_result(self, run_key: str, index: int) -> Optional[JobResult]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return JobResult.from_dict(self._get(self._name(run_key, "results", f"{index:06d}.json")))
        except ResourceNotFoundError:
            return None

    def load_results(self, run_key: str) -> dict[int, JobResult]:
        prefix = self._name(run_key, "results") + "/"
        results = {}
        for blob in self.container.list_blobs(name_starts_with=prefix):
            index = int(blob.name[len(prefix):].split(".")[0])
            results[index] = JobResult.from_dict(self._get(blob.name))
        return results


def run_key(instance_id: str, started_at: str) -> str:
    """Key of one run's snapshots: a singleton instance id repeats across runs, its start time does not.

    Args:
        instance_id: The orchestration instance id.
        started_at: ISO time the run started (`context.current_utc_datetime` at its first episode).
    """
    stamp = re.sub(r"[^0-9T]", "", started_at)[:15]
    return f"{instance_id}-{stamp}"


def run_id_of(key: str) -> str:
    """The instance id (the run id) a `run_key` was made from."""
    return key.rsplit("-", 1)[0]
