"""`TableBreakerStore` on real Azurite: the store contract, plus what is specific to Table Storage.

No mocks: conflicts are provoked by a second store writing between our read and our write,
and lost responses by a small TCP proxy in front of Azurite.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import uuid
from dataclasses import replace
from typing import Any, Callable, Iterator

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient

from shared.breakers import (
    OPEN,
    BreakerState,
    BreakerStore,
    CircuitBreaker,
    TableBreakerStore,
    TableStoreConflictError,
    TableStoreError,
    TableStoreUnavailableError,
)
from shared.breakers.table_store import CLIENT_OPTIONS, PARTITION_KEY
from shared.redaction import MASK, redact, register_secret

from .contract import SETTINGS, BreakerStoreContract, FakeClock, _bump_failures


def _table_name() -> str:
    # Table names: letters and digits, starting with a letter, 3-63 characters.
    return "brk" + uuid.uuid4().hex


@pytest.fixture
def table_name(azurite: Any) -> Iterator[str]:
    """A fresh table name, whose table (if any test created it) is dropped afterwards."""
    name = _table_name()
    yield name
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_table(name)


def _raw_client(azurite: Any, table_name: str, **options: Any) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, table_name, **options)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestTableBreakerStore(BreakerStoreContract):
    @pytest.fixture
    def store_factory(self, azurite: Any, table_name: str) -> Callable[[], BreakerStore]:
        # Only a connection string and a table name: picklable, so the contract's
        # multi-process test runs too (each child opens its own client).
        return functools.partial(TableBreakerStore.from_connection_string, azurite.connection_string, table_name)


class CountingTableClient:
    """The real `TableClient`, counting the conflicts the service answered with."""

    def __init__(self, inner: TableClient) -> None:
        self._inner = inner
        self.conflicts_412 = 0
        self.conflicts_409 = 0
        self.not_found_404 = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update_entity(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._inner.update_entity(*args, **kwargs)
        except ResourceModifiedError:
            self.conflicts_412 += 1
            raise
        except ResourceNotFoundError:
            self.not_found_404 += 1
            raise

    def create_entity(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._inner.create_entity(*args, **kwargs)
        except ResourceExistsError:
            self.conflicts_409 += 1
            raise


def _counting_store(azurite: Any, table_name: str, **store_options: Any) -> tuple[TableBreakerStore, CountingTableClient]:
    client = CountingTableClient(_raw_client(azurite, table_name))
    return TableBreakerStore(client, **store_options), client  # type: ignore[arg-type]


# -- optimistic concurrency ------------------------------------------------------------


def test_update_retries_after_a_412_and_keeps_both_updates(azurite: Any, table_name: str) -> None:
    store, client = _counting_store(azurite, table_name)
    rival = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    store.update("crm", _bump_failures)
    seen: list[int] = []

    def mutate(state: BreakerState) -> BreakerState:
        seen.append(state.total_failures)
        if len(seen) == 1:  # a rival writes between our read and our write
            rival.update("crm", _bump_failures)
        return _bump_failures(state)

    stored = store.update("crm", mutate)

    assert client.conflicts_412 == 1
    assert seen == [1, 2], "the mutation is re-applied to the rival's state"
    assert stored.total_failures == 3
    assert rival.get("crm") == stored


def test_create_retries_after_a_409_and_keeps_both_updates(azurite: Any, table_name: str) -> None:
    store, client = _counting_store(azurite, table_name)
    rival = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    calls = 0

    def mutate(state: BreakerState) -> BreakerState:
        nonlocal calls
        calls += 1
        if calls == 1:  # the rival creates the entity after we found none
            rival.update("crm", _bump_failures)
        return _bump_failures(state)

    assert store.update("crm", mutate).total_failures == 2
    assert (client.conflicts_409, calls) == (1, 2)


def test_entity_reset_between_read_and_write_starts_again_from_fresh(azurite: Any, table_name: str) -> None:
    store, client = _counting_store(azurite, table_name)
    rival = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    for _ in range(3):
        store.update("crm", _bump_failures)
    calls = 0

    def mutate(state: BreakerState) -> BreakerState:
        nonlocal calls
        calls += 1
        if calls == 1:
            rival.reset("crm")
        return _bump_failures(state)

    assert store.update("crm", mutate).total_failures == 1
    assert client.not_found_404 + client.conflicts_412 == 1, "a conditional write on a deleted entity fails"


def test_update_gives_up_after_max_attempts(azurite: Any, table_name: str) -> None:
    store, client = _counting_store(azurite, table_name, max_attempts=4, backoff_seconds=0.001)
    rival = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    store.update("crm", _bump_failures)
    calls = 0

    def always_overtaken(state: BreakerState) -> BreakerState:
        nonlocal calls
        calls += 1
        rival.update("crm", _bump_failures)
        return _bump_failures(state)

    with pytest.raises(TableStoreConflictError, match=rf"'crm'.*'{table_name}'.*4 times"):
        store.update("crm", always_overtaken)

    assert (calls, client.conflicts_412) == (4, 4)
    assert store.get("crm").total_failures == 1 + 4, "only the rival's writes landed"


@pytest.mark.timeout(120)
def test_concurrent_breakers_on_separate_clients_count_every_failure(azurite: Any, table_name: str) -> None:
    """Like several Functions hosts: one store (client, connection pool) per worker."""
    workers = 20
    stores = [_counting_store(azurite, table_name) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            breaker = CircuitBreaker(stores[i][0], SETTINGS, FakeClock())
            barrier.wait(timeout=60)
            breaker.record_failure("crm", f"worker {i}")
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    state = stores[0][0].get("crm")
    assert (state.total_failures, state.consecutive_failures, state.state) == (workers, workers, OPEN)
    conflicts = sum(c.conflicts_412 + c.conflicts_409 for _, c in stores)
    print(f"{workers} concurrent writers lost {conflicts} write rounds to each other")


# -- a write whose response is lost ----------------------------------------------------


class DropOneResponseProxy:
    """A TCP proxy in front of Azurite that, once armed, swallows the response to the next PUT.

    The PUT reaches Azurite and is applied; the client sees the connection close instead of
    an answer, like a response lost in the network, and the SDK sends the PUT again.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = False
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            drop_next = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, drop_next), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, drop_next), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, drop_next: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.armed and data.startswith(b"PUT "):
                    self.armed = False
                    drop_next.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket, drop_next: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if drop_next.is_set():
                    # No pipelining in HTTP/1.1 clients: these are the PUT's response bytes.
                    self.dropped += 1
                    client.shutdown(socket.SHUT_RDWR)
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def test_a_lost_write_response_is_not_counted_twice(azurite: Any, table_name: str) -> None:
    proxy = DropOneResponseProxy(azurite.table_port)
    try:
        conn_str = azurite.connection_string.replace(f":{azurite.table_port}/", f":{proxy.port}/")
        client = CountingTableClient(TableClient.from_connection_string(conn_str, table_name, **CLIENT_OPTIONS))
        store = TableBreakerStore(client)  # type: ignore[arg-type]
        store.update("crm", _bump_failures)
        calls = 0

        def counting_bump(state: BreakerState) -> BreakerState:
            nonlocal calls
            calls += 1
            return _bump_failures(state)

        proxy.armed = True
        stored = store.update("crm", counting_bump)
    finally:
        proxy.close()

    assert proxy.dropped == 1
    assert client.conflicts_412 == 1, "the SDK's retry of the PUT conflicted with the PUT itself"
    assert calls == 1, "the store recognised its own write instead of mutating again"
    assert stored.total_failures == 2
    assert TableBreakerStore.from_connection_string(azurite.connection_string, table_name).get("crm") == stored


# -- secrets ---------------------------------------------------------------------------


def test_secrets_are_redacted_from_last_error(azurite: Any, table_name: str) -> None:
    secret = "pw-" + uuid.uuid4().hex
    register_secret(secret)
    store = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    breaker = CircuitBreaker(store, SETTINGS, FakeClock())

    returned = breaker.record_failure("crm", f"login failed: postgresql://etl:{secret}@db:5432/crm")

    raw = _raw_client(azurite, table_name).get_entity(PARTITION_KEY, "crm")
    for text in (returned.last_error, store.get("crm").last_error, raw["last_error"]):
        assert text == f"login failed: postgresql://etl:{MASK}@db:5432/crm"


def test_secret_registered_after_the_write_is_masked_on_read(azurite: Any, table_name: str) -> None:
    secret = "late-" + uuid.uuid4().hex
    store = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    store.update("crm", lambda s: replace(s, last_error=f"token {secret} rejected"))

    register_secret(secret)

    assert store.get("crm").last_error == f"token {MASK} rejected"
    assert [s.last_error for s in store.list()] == [f"token {MASK} rejected"]


# -- connection problems ---------------------------------------------------------------


@pytest.mark.timeout(30)
def test_unreachable_endpoint_fails_fast_naming_the_host(azurite: Any) -> None:
    port = _closed_port()
    conn_str = azurite.connection_string.replace(f":{azurite.table_port}/", f":{port}/")

    started = time.monotonic()
    with pytest.raises(TableStoreUnavailableError) as caught:
        TableBreakerStore.from_connection_string(conn_str, _table_name())
    elapsed = time.monotonic() - started

    assert elapsed < 10
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "not reachable" in message
    assert azurite.account_key not in message


@pytest.mark.timeout(30)
def test_silent_host_fails_within_the_read_timeout() -> None:
    # Accepts connections (the kernel completes the handshake) but never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TableStoreUnavailableError, match=f"127.0.0.1:{port}"):
            TableBreakerStore.from_connection_string(
                f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={'a2V5' * 11}==;"
                f"TableEndpoint=http://127.0.0.1:{port}/acct;",
                read_timeout=1,
                retry_total=0,
            )
        assert time.monotonic() - started < 5


def test_wrong_key_fails_with_a_message_without_the_key(azurite: Any, table_name: str) -> None:
    wrong_key = "d3Jvbmcta2V5LW5vdC10aGUtcmVhbC1vbmU" + uuid.uuid4().hex + "=="
    conn_str = azurite.connection_string.replace(azurite.account_key, wrong_key)

    with pytest.raises(TableStoreUnavailableError) as caught:
        TableBreakerStore.from_connection_string(conn_str, table_name)

    message = str(caught.value)
    assert f"127.0.0.1:{azurite.table_port}" in message
    assert "refused access" in message and "HTTP 403" in message
    assert wrong_key not in message and azurite.account_key not in message
    assert redact(f"key={wrong_key}") == f"key={MASK}", "the store registers its key as a secret"


# -- layout ----------------------------------------------------------------------------


def test_creates_the_table_and_keeps_one_entity_per_source(azurite: Any, table_name: str) -> None:
    store = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    TableBreakerStore.from_connection_string(azurite.connection_string, table_name)  # exists: fine
    for _ in range(3):
        store.update("crm", _bump_failures)
    store.update("erp", _bump_failures)

    rows = sorted(
        (e["PartitionKey"], e["RowKey"], e["total_failures"].value)  # stored as Edm.Int64
        for e in _raw_client(azurite, table_name).list_entities()
    )
    assert rows == [(PARTITION_KEY, "crm", 3), (PARTITION_KEY, "erp", 1)]


def test_from_account_url_with_a_key_credential(azurite: Any, table_name: str) -> None:
    # DefaultAzureCredential (the default) needs HTTPS and Azure; the key credential takes the same path.
    url = f"http://127.0.0.1:{azurite.table_port}/{azurite.account_name}"
    credential = AzureNamedKeyCredential(azurite.account_name, azurite.account_key)
    store = TableBreakerStore.from_account_url(url, credential, table_name)
    store.update("crm", _bump_failures)
    assert TableBreakerStore.from_connection_string(azurite.connection_string, table_name).get("crm").total_failures == 1
    assert repr(store) == f"TableBreakerStore('{url}', table='{table_name}')"


def test_invalid_table_name_fails_naming_it(azurite: Any) -> None:
    with pytest.raises(TableStoreError, match=r"table 'bad-name!'.*HTTP 400"):
        TableBreakerStore.from_connection_string(azurite.connection_string, "bad-name!")


def test_source_names_with_characters_a_row_key_forbids(azurite: Any, table_name: str) -> None:
    store = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    names = ["a/b", "c#d?e", "f\\g", "50%", "tab\there"]
    for name in names:
        store.update(name, _bump_failures)

    assert [s.source_name for s in store.list()] == sorted(names)
    assert all(store.get(name).total_failures == 1 for name in names)
    store.reset("a/b")
    assert "a/b" not in [s.source_name for s in store.list()]


def test_large_counters_round_trip(azurite: Any, table_name: str) -> None:
    store = TableBreakerStore.from_connection_string(azurite.connection_string, table_name)
    store.update("crm", lambda s: replace(s, total_successes=2**40))
    assert store.get("crm").total_successes == 2**40
    assert store.update("crm", lambda s: replace(s, total_successes=s.total_successes + 1)).total_successes == 2**40 + 1
