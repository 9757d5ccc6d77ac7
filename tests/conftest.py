"""Service fixtures shared by the whole suite: real PostgreSQL, MariaDB and a REST server.

On a laptop without a service, the tests that need it skip with a one-line reason; under CI
(`CI=true`) a missing service is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def in_ci() -> bool:
    """True under CI, where a missing service must fail the run."""
    return os.environ.get("CI", "").lower() == "true"


def service_missing(reason: str) -> None:
    """Skip (laptop) or fail (CI) a test whose service is not available."""
    if in_ci():
        pytest.fail(f"service required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _isolated_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own dlt working dir and no inherited lake or secrets settings."""
    monkeypatch.setenv("INGESTION_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path / "project"))
    for key in list(os.environ):
        if key.startswith("SOURCES__") or key.startswith("DESTINATION__") or key == "AZURE_KEY_VAULT_URL":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """An empty local lake folder."""
    path = tmp_path / "lake"
    path.mkdir()
    return path


def _engine_or_missing(url: str, name: str) -> Any:
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        service_missing(f"{name} not reachable at {engine.url.render_as_string()}: {type(exc).__name__}")
    return engine


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Any]:
    """SQLAlchemy engine on the local PostgreSQL (database `test`)."""
    engine = _engine_or_missing(PG_URL, "PostgreSQL")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def mariadb_engine() -> Iterator[Any]:
    """SQLAlchemy engine on the local MariaDB (database `test`)."""
    engine = _engine_or_missing(MARIADB_URL, "MariaDB")
    yield engine
    engine.dispose()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Table names that never collide between tests or runs."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg_secrets(monkeypatch: pytest.MonkeyPatch, pg_engine: Any) -> Callable[[str], None]:
    """Point a source name at the local PostgreSQL through dlt-style env vars."""

    def _set(source_name: str) -> None:
        url = pg_engine.url
        prefix = f"SOURCES__{source_name.upper()}__"
        monkeypatch.setenv(prefix + "HOST", url.host)
        monkeypatch.setenv(prefix + "PORT", str(url.port or 5432))
        monkeypatch.setenv(prefix + "DATABASE", url.database)
        monkeypatch.setenv(prefix + "USERNAME", url.username)

    return _set


@pytest.fixture
def mariadb_secrets(monkeypatch: pytest.MonkeyPatch, mariadb_engine: Any) -> Callable[..., None]:
    """Point a source name at the local MariaDB through dlt-style env vars."""

    def _set(source_name: str, username: str | None = None, password: str | None = None) -> None:
        url = mariadb_engine.url
        prefix = f"SOURCES__{source_name.upper()}__"
        monkeypatch.setenv(prefix + "HOST", url.host)
        monkeypatch.setenv(prefix + "PORT", str(url.port or 3306))
        monkeypatch.setenv(prefix + "DATABASE", url.database)
        monkeypatch.setenv(prefix + "USERNAME", username or url.username)
        if password is not None:
            monkeypatch.setenv(prefix + "PASSWORD", password)

    return _set


def _json_server_bin() -> Path | None:
    local = ROOT / "node_modules" / ".bin" / "json-server"
    if local.exists():
        return local
    found = shutil.which("json-server")
    return Path(found) if found else None


class RestServer:
    """A json-server instance on loopback serving `db.json`, for api jobs."""

    def __init__(self, base_url: str, db_path: Path) -> None:
        self.base_url = base_url
        self.db_path = db_path

    def write(self, data: dict[str, Any]) -> None:
        """Replace the served data and wait until json-server (watching the file) serves it."""
        import urllib.request

        tmp = self.db_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.db_path)
        expected = json.loads(json.dumps(data))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:  # json-server restarts on reload: connections may be refused or reset meanwhile
                with urllib.request.urlopen(f"{self.base_url}/db", timeout=2) as resp:
                    if json.load(resp) == expected:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("json-server did not reload its data")


@pytest.fixture
def rest_server(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], RestServer]]:
    """Start json-server (npm, 0.17.x: `_page`/`_limit` with Link headers) on a free port."""
    binary = _json_server_bin()
    if binary is None:
        service_missing("json-server not installed (run `npm ci` in the repo)")
    procs: list[subprocess.Popen[bytes]] = []

    def _start(data: dict[str, Any]) -> RestServer:
        db = tmp_path / f"db_{len(procs)}.json"
        db.write_text(json.dumps(data))
        port = free_port()
        proc = subprocess.Popen(
            [str(binary), "--port", str(port), "--host", "127.0.0.1", "--watch", "--quiet", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return RestServer(f"http://127.0.0.1:{port}", db)
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        service_missing(f"json-server did not start on port {port}")
        raise AssertionError("unreachable")

    yield _start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's public, well-known development key (not a secret)."""


class Azurite:
    """A running Azurite (Blob, Queue, Table) on loopback ports."""

    def __init__(self, blob_port: int, queue_port: int, table_port: int) -> None:
        self.blob_port, self.queue_port, self.table_port = blob_port, queue_port, table_port
        self.account_name = AZURITE_ACCOUNT
        self.account_key = AZURITE_KEY

    @property
    def connection_string(self) -> str:
        """A storage connection string for all three services."""
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{AZURITE_ACCOUNT};"
        )


def _azurite_bin() -> Path | None:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return local
    found = shutil.which("azurite")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite from npm, in memory, on free loopback ports, for the whole session."""
    binary = _azurite_bin()
    if binary is None:
        service_missing("azurite not installed (run `npm ci` in the repo)")
    ports = [free_port() for _ in range(3)]
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    proc = subprocess.Popen(
        [str(binary), "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
         "--blobPort", str(ports[0]), "--queuePort", str(ports[1]), "--tablePort", str(ports[2]),
         "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        for port in list(pending):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pending.discard(port)
            except OSError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if pending:
        proc.terminate()
        service_missing(f"azurite did not start: {log.read_text()[-500:]}")
    yield Azurite(*ports)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def app() -> Any:
    """The Functions app exactly as the host loads it."""
    from function_app import app

    return app


@pytest.fixture
def runtime(app: Any) -> Iterator[Callable[..., Any]]:
    """Build local durable runtimes on the real app; all are closed after the test."""
    from ingest.durable import LocalDurableRuntime

    made: list[LocalDurableRuntime] = []

    def build(**kwargs: Any) -> LocalDurableRuntime:
        rt = LocalDurableRuntime(app, **kwargs)
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.close()


def named_blob(name: str) -> Any:
    """What the host hands a blob trigger (`func.InputStream`); reading it fails the test,
    since starters must pass only the blob path on."""
    import azure.functions as func

    class NamedBlob(func.InputStream):
        @property
        def name(self) -> str:
            return name

        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the blob starter must not read the workbook")

    return NamedBlob()
