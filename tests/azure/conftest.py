"""The service on a real Azure Storage API: Azurite (npm) for Blob, Queue and Table."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.storage import StorageAccount, storage_account


@dataclass
class AzureEnv:
    """Names of this test's containers, table and queue on Azurite."""

    account: StorageAccount
    lake: str
    container: str
    config_container: str
    breaker_table: str
    failures_queue: str

    def blob_names(self, container: str, prefix: str = "") -> list[str]:
        client = self.account.blob_service().get_container_client(container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))

    def read_blob(self, container: str, name: str) -> bytes:
        return self.account.blob_service().get_blob_client(container, name).download_blob().readall()

    def upload(self, container: str, name: str, data: bytes) -> None:
        service = self.account.blob_service()
        try:
            service.create_container(container)
        except Exception:  # already there
            pass
        service.get_blob_client(container, name).upload_blob(data, overwrite=True)

    def queue_messages(self) -> list[str]:
        queue = self.account.queue_service().get_queue_client(self.failures_queue)
        return [m.content.decode() if isinstance(m.content, bytes) else m.content
                for m in queue.receive_messages(messages_per_page=32, max_messages=32)]


@pytest.fixture
def azure_env(azurite: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AzureEnv:
    """Point every setting of the service at fresh resources on Azurite."""
    suffix = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "INGESTION_CONTAINER": f"ingestion-{suffix}",
        "CONFIG_CONTAINER": f"config-{suffix}",
        "INGESTION_BREAKER_TABLE": f"breakers{suffix}",
        "INGESTION_FAILURES_QUEUE": f"failures-{suffix}",
        "DESTINATION__FILESYSTEM__BUCKET_URL": f"az://lake-{suffix}",
        "INGESTION_LOGS_DIR": str(tmp_path / "logs"),
        "RETRY_DATABASE_FIRST_INTERVAL_MS": "50",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    account = storage_account()
    assert account is not None
    return AzureEnv(account, f"lake-{suffix}", env["INGESTION_CONTAINER"], env["CONFIG_CONTAINER"],
                    env["INGESTION_BREAKER_TABLE"], env["INGESTION_FAILURES_QUEUE"])


@pytest.fixture
def shop_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite source `shop` with tables `orders` (INCREMENTAL-friendly) and `customers`."""
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), updated_at TIMESTAMP)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                         [(i, i * 1.5, f"2024-01-01 00:00:{i:02d}") for i in range(1, 41)])
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"naïve {i}") for i in range(1, 11)])
    monkeypatch.setenv("SOURCES__SHOP__PATH", str(path))
    return path
