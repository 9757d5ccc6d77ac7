"""Errors classified and routed, through the real CLI on real services (PostgreSQL, a tmpfs lake,
a private Azurite that is killed mid-run): permanent job errors are not retried and never open
the source's circuit; a full lake or a dead storage account is named as the culprit, fails fast
(exit 2), leaves the old snapshot alone and never counts on the source's breaker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from shared.breakers import CLOSED, LocalBreakerStore
from shared.workbook import write_workbook
from tests.conftest import AZURITE_KEY, ROOT, _azurite_bin, free_port, in_ci, service_missing
from tests.ingest.test_cli import cli, row

AZURITE_AUTOSAVE_SECONDS = 5
"""Azurite persists its blob metadata this often (`autosaveInterval` of its Loki stores)."""


def _metrics(path: Path) -> dict[str, dict[str, Any]]:
    return {job["job_id"]: job for job in json.loads(path.read_text())["jobs"]}


def _lake_files(lake: Path) -> dict[str, bytes]:
    """Every file of the lake and its bytes, but the table locks (their text names the last holder)."""
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*"))
            if p.is_file() and "_ingestion/locks/" not in p.relative_to(lake).as_posix()}


# --- (c) the acceptance workbook: permanent errors ---------------------------------------------


def test_permanent_job_errors_run_once_name_the_cell_and_never_open_the_circuit(
    tmp_path: Path, pg_engine: Any, pg_secrets: Callable[[str], None], unique_name: Callable[[str], str]
) -> None:
    """One job on a missing table, one on an unsupported value (a 2-D value in an `int[]` column), one with a mistyped
    watermark column, one with a `last_watermark` that is no date, three good jobs, all on one
    source; three CLI runs. Before the fix each bad job took 3 attempts and counted on the
    source's breaker, which opened and skipped the good jobs."""
    source = unique_name("errsrc")
    pg_secrets(source)
    good = [unique_name("good") for _ in range(3)]
    interval, orders, missing = unique_name("ivl"), unique_name("ord"), unique_name("missing")
    with pg_engine.begin() as conn:
        for name in good:
            conn.execute(sa.text(f"CREATE TABLE {name} (id int primary key, v text)"))
            conn.execute(sa.text(f"INSERT INTO {name} SELECT g, 'v' || g FROM generate_series(1, 50) g"))
        # `interval` lands now (as ISO 8601 text); a two-dimensional value in an int[] column cannot.
        conn.execute(sa.text(f"CREATE TABLE {interval} (id int primary key, a int[])"))
        conn.execute(sa.text(f"INSERT INTO {interval} VALUES (1, '{{{{1,2}},{{3,4}}}}'), (2, '{{5}}')"))
        conn.execute(sa.text(f"CREATE TABLE {orders} (id int primary key, o_orderdate date)"))
        conn.execute(sa.text(f"INSERT INTO {orders} VALUES (1, '2024-01-01'), (2, '2024-01-02')"))
    try:
        workbook = tmp_path / "acceptance.xlsx"
        bad_rows = [  # workbook rows 2, 3 and 4
            row(source_type="postgresql", source_name=source, table_name=missing),
            row(source_type="postgresql", source_name=source, table_name=interval),
            row(source_type="postgresql", source_name=source, table_name=orders, load_type="INCREMENTAL",
                watermark_column="o_orderdat"),
        ]
        write_workbook(workbook, [
            *bad_rows,
            *(row(source_type="postgresql", source_name=source, table_name=name) for name in good),
        ])
        # A separate workbook for the bad last_watermark: one job per table and source (it is INCREMENTAL on `orders` too).
        watermark_book = tmp_path / "watermark.xlsx"
        write_workbook(watermark_book, [row(source_type="postgresql", source_name=source, table_name=orders,
                                            load_type="INCREMENTAL", watermark_column="o_orderdate",
                                            last_watermark="yesterday")])
        store = tmp_path / ".ingestion" / "breakers.sqlite"
        for attempt in range(3):
            out = tmp_path / f"metrics_{attempt}.json"
            started = time.monotonic()
            run = cli("run", str(workbook), "--lake", str(tmp_path / "lake"), "--metrics-out", str(out), cwd=tmp_path)
            assert run.returncode == 1, run.stdout + run.stderr
            assert time.monotonic() - started < 60
            jobs = _metrics(out)
            expected = {
                f"{source}.{missing}": (r"^SourceConfig!C2 \(table_name\): table '" + missing + "' not found in (the default schema of )?postgresql source"),
                f"{source}.{interval}": r"^SourceConfig!3:3: table '" + interval + "' .* cannot store: ConnectorxError: .*too many dimensions",
                f"{source}.{orders}": r"^SourceConfig!G4 \(watermark_column\): column 'o_orderdat' not found in table '" + orders + "'",
            }
            for job_id, pattern in expected.items():
                job = jobs[job_id]
                assert job["status"] == "failed" and job["retry_count"] == 0, job
                assert job["extra"]["error_class"] == "permanent" and job["extra"]["retryable"] is False, job
                assert re.search(pattern, job["error"]), job["error"]
                assert "\n" not in job["error"] and len(job["error"]) <= 500
            for name in good:
                assert jobs[f"{source}.{name}"]["status"] == "success", jobs[f"{source}.{name}"]
                assert jobs[f"{source}.{name}"]["rows_processed"] == 50
            state = LocalBreakerStore(store).get(source)
            assert state.state == CLOSED and state.total_failures == 0, state

        run = cli("run", str(watermark_book), "--lake", str(tmp_path / "lake"), "--metrics-out",
                  str(tmp_path / "wm.json"), cwd=tmp_path)
        # Caught by validation now (offline shape check): the run is refused, nothing contacts the source.
        assert run.returncode == 2, run.stdout + run.stderr
        assert "SourceConfig!H2 (last_watermark): 'yesterday' is not a date, timestamp or number" in run.stderr
        assert LocalBreakerStore(store).get(source).total_failures == 0
    finally:
        with pg_engine.begin() as conn:
            for name in (*good, interval, orders):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


# --- (a) a full lake ---------------------------------------------------------------------------


@pytest.fixture
def tiny_lake(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted as the lake folder (needs root; unmounted afterwards)."""
    path = tmp_path / "lake"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs lake: {mounted.stderr.strip() or mounted.returncode}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_lake_is_blamed_on_the_lake_keeps_the_old_snapshot_and_spares_the_source_breaker(
    tmp_path: Path, tiny_lake: Path, pg_engine: Any, pg_secrets: Callable[[str], None],
    unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC while loading: the lake is retried per policy (3 attempts; each failed attempt's
    files are removed), the error names the lake and its host, the exit code is 2, the previous
    snapshot stays as it was and the source's breaker records no failure."""
    source, table = unique_name("fullsrc"), unique_name("big")
    pg_secrets(source)
    monkeypatch.setenv("RETRY_DATABASE_FIRST_INTERVAL_MS", "50")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id int primary key, payload text)"))
        conn.execute(sa.text(f"INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series(1, 1000) g"))
    try:
        workbook = tmp_path / "full.xlsx"
        write_workbook(workbook, [row(source_type="postgresql", source_name=source, table_name=table)])
        first = cli("run", str(workbook), "--lake", str(tiny_lake), cwd=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        before = _lake_files(tiny_lake)
        assert any(name.endswith(".parquet") for name in before)

        with pg_engine.begin() as conn:  # ~8 MB of random text: more than the lake holds
            conn.execute(sa.text(f"INSERT INTO {table} SELECT g, md5(random()::text) || md5(random()::text) "
                                 "FROM generate_series(1001, 130000) g"))
        out = tmp_path / "metrics.json"
        started = time.monotonic()
        second = cli("run", str(workbook), "--lake", str(tiny_lake), "--metrics-out", str(out), cwd=tmp_path)
        elapsed = time.monotonic() - started
        assert second.returncode == 2, second.stdout + second.stderr
        assert elapsed < 60, f"took {elapsed:.1f} s"
        job = _metrics(out)[f"{source}.{table}"]
        assert job["status"] == "failed" and job["extra"]["error_class"] == "lake", job
        assert job["retry_count"] == 2, job  # retried per the database policy: 3 attempts
        assert job["error"].startswith(f"lake {tiny_lake} on host "), job["error"]
        assert "No space left on device" in job["error"] and "postgresql source" not in job["error"]
        assert "Traceback" not in second.stderr and f"lake {tiny_lake} on host" in second.stderr
        assert _lake_files(tiny_lake) == before  # the old snapshot, nothing partial, no probe files
        state = LocalBreakerStore(tmp_path / ".ingestion" / "breakers.sqlite").get(source)
        assert state.state == CLOSED and state.total_failures == 0 and state.consecutive_failures == 0, state
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


# --- (b) the storage account dies mid-run --------------------------------------------------------


class PrivateAzurite:
    """An Azurite of this test alone, persisted to disk so it can be killed and started again."""

    def __init__(self, folder: Path) -> None:
        binary = _azurite_bin()
        if binary is None:
            service_missing("azurite not installed (run `npm ci` in the repo)")
        self.binary, self.folder = binary, folder
        self.ports = [free_port() for _ in range(3)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        b, q, t = (f"http://127.0.0.1:{p}/devstoreaccount1" for p in self.ports)
        return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={b};QueueEndpoint={q};TableEndpoint={t};")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
             "--blobPort", str(self.ports[0]), "--queuePort", str(self.ports[1]), "--tablePort", str(self.ports[2]),
             "--location", str(self.folder), "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        pending = set(self.ports)
        while pending and time.monotonic() < deadline and self.proc.poll() is None:
            for port in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pending.discard(port)
                except OSError:
                    time.sleep(0.05)
        if pending:
            self.kill()
            service_missing("azurite did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def test_storage_killed_mid_run_fails_fast_names_the_endpoint_and_writes_metrics_locally(
    tmp_path: Path, pg_engine: Any, pg_secrets: Callable[[str], None], unique_name: Callable[[str], str],
) -> None:
    """Azurite holds the lake, the run store, the breaker table and the metrics; it is SIGKILLed as
    the first job starts. Before the fix the run hung 271-860 s, printed a traceback, wrote no
    metrics and blamed the PostgreSQL source."""
    source, table = unique_name("azsrc"), unique_name("rows")
    pg_secrets(source)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id int primary key, payload text)"))
        conn.execute(sa.text(f"INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series(1, 300000) g"))
    azurite = PrivateAzurite(tmp_path / "azurite")
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string, "INGESTION_CONTAINER": f"ingestion-{suffix}",
        "INGESTION_BREAKER_TABLE": f"breakers{suffix}", "INGESTION_FAILURES_QUEUE": f"failures-{suffix}",
        "DESTINATION__FILESYSTEM__BUCKET_URL": f"az://lake-{suffix}", "INGESTION_LOGS_DIR": str(tmp_path / "logs"),
        "INGESTION_METRICS_DIR": str(tmp_path / "metrics"), "RETRY_DATABASE_FIRST_INTERVAL_MS": "50",
    }
    try:
        azurite.start()
        workbook = tmp_path / "az.xlsx"
        write_workbook(workbook, [row(source_type="postgresql", source_name=source, table_name=table)])
        first = cli("run", str(workbook), cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        from azure.storage.blob import BlobServiceClient

        def lake_blobs() -> list[str]:
            lake = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(f"lake-{suffix}")
            return sorted(b.name for b in lake.list_blobs() if b.name.endswith(".parquet"))

        snapshot = lake_blobs()
        assert snapshot
        # Azurite saves its metadata every 5 s (LokiJS autosave): a kill sooner after the first run
        # loses that run's container on restart, which is Azurite's doing, not the dead run's.
        time.sleep(AZURITE_AUTOSAVE_SECONDS + 0.5)

        main_log = tmp_path / "logs" / "main.log"
        offset = main_log.stat().st_size
        proc = subprocess.Popen([sys.executable, "-m", "ingest", "run", str(workbook)], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "started (FULL)" not in main_log.read_text()[offset:]:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        azurite.kill()
        killed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        elapsed = time.monotonic() - killed
        assert proc.returncode == 2, stdout + stderr
        assert elapsed <= 60, f"took {elapsed:.1f} s after the kill"
        assert "Traceback" not in stdout + stderr, stdout + stderr
        named = [line for line in stderr.splitlines() if "metrics written locally to" in line]
        assert len(named) == 1, stderr
        assert re.search(r"127\.0\.0\.1:(" + "|".join(map(str, azurite.ports)) + ")", named[0]), named[0]
        assert "postgresql source" not in named[0] and AZURITE_KEY not in stderr
        metrics = list((tmp_path / "metrics").glob("metrics_*.json"))
        assert len(metrics) == 1 and str(metrics[0]) in named[0], (metrics, named)
        job = _metrics(metrics[0])[f"{source}.{table}"]
        assert job["status"] == "failed" and job["extra"]["error_class"] in ("lake", "storage"), job

        azurite.start()  # same ports and folder: what did the dead run leave behind?
        now = lake_blobs()
        if now != snapshot:
            # Killed mid-publish on a flat-namespace account: the new files were being copied in
            # beside the old ones (docs/lake-protocol.md). Then the commit's journal must be there,
            # for the table's next job to roll forward; never a half-written or unjournaled file.
            lake = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(f"lake-{suffix}")
            journals = [b.name for b in lake.list_blobs(name_starts_with=f"{source}/_ingestion/commits/")]
            assert journals, (now, snapshot)
        from shared.breakers import TableBreakerStore

        state = TableBreakerStore.from_connection_string(azurite.connection_string, env["INGESTION_BREAKER_TABLE"]).get(source)
        assert state.total_failures == 0 and state.consecutive_failures == 0, state
    finally:
        azurite.kill()
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def test_the_preflight_on_a_full_lake_fails_and_leaves_no_probe(tiny_lake: Path) -> None:
    """The lake gate re-runs the pre-flight after a lake failure: on a full disk its probe write
    fails, and the empty probe file it created must not stay behind (it did before)."""
    from shared.lake import PreflightError, check_lake

    with open(tiny_lake / "fill", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    with pytest.raises(PreflightError, match="No space left on device"):
        check_lake(str(tiny_lake))
    assert [p.name for p in tiny_lake.iterdir()] == ["fill"]


def test_after_a_lake_failure_jobs_check_the_lake_first_and_leave_their_source_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lake gate with real stores: once a lake failure is recorded, a job whose lake still
    fails its pre-flight fails at once (class lake) without contacting its source (here a closed
    port, which would count on the source's breaker); after 5 such failures the lake's circuit is
    open and jobs are not even tried; when the lake is back, jobs run again."""
    from shared.workbook.models import Job
    from shared.error_routing import lake_breaker_key
    from shared.settings import AppSettings
    from shared.steps import Services, run_planned_job

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake's parent folder should be")
    lake = blocker / "lake"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(lake))
    monkeypatch.setenv("INGESTION_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SOURCES__DOWNPG__HOST", "127.0.0.1")
    monkeypatch.setenv("SOURCES__DOWNPG__PORT", str(free_port()))
    monkeypatch.setenv("SOURCES__DOWNPG__DATABASE", "test")
    monkeypatch.setenv("SOURCES__DOWNPG__USERNAME", "postgres")
    services = Services.local(AppSettings.from_env())
    plan = services.runs.save_plan("run1", [Job("postgresql", "downpg", "orders", "FULL", row=2)])
    key = lake_breaker_key(str(lake))
    services.breaker.record_failure(key, "an earlier job could not write to the lake")

    outcomes = [run_planned_job("run1", plan, 0, attempt, "run1", services) for attempt in (1, 2, 3, 4)]
    for outcome in outcomes:
        assert outcome["status"] == "failed" and outcome["retryable"] is True, str(outcome)
        assert outcome["error"].startswith(f"lake folder {lake} is not writable"), outcome
    refused = run_planned_job("run1", plan, 0, 1, "run1", services)  # the lake's circuit is open now
    assert refused["retryable"] is False and "not attempted, circuit open" in refused["error"], refused
    assert services.breaker.store.get("downpg").total_failures == 0
    assert services.breaker.store.get(key).state == "OPEN"

    blocker.unlink()  # the lake is back; let the open circuit try again at once
    monkeypatch.setenv("CIRCUIT_BREAKER_TIMEOUT_SECONDS", "0")
    services = Services.local(AppSettings.from_env())
    outcome = run_planned_job("run1", plan, 0, 1, "run1", services)
    assert outcome["status"] == "failed" and outcome["error"].startswith("postgresql source 'downpg'"), outcome
    assert services.breaker.store.get("downpg").total_failures == 1  # a source failure counts on the source
