"""Circuit states in Azure Table Storage: shared by every worker, host and scale-out instance.

One entity per source (PartitionKey `breaker`, RowKey = the source name). Updates are
optimistic: read the entity and its ETag, apply the mutation, write with `If-Match`; when
another writer got there first (412, or 409 when both created the entity) read again and
re-apply. The mutation is therefore called more than once under contention, which the
`BreakerStore` contract allows.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from dataclasses import fields, replace
from typing import Any, Callable, Optional, TypeVar, Union
from urllib.parse import parse_qs, urlsplit

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import EdmType, EntityProperty, TableClient, TableEntity, UpdateMode

from shared.redaction import first_line, redact, register_secret

from .state import BreakerState
from .store import BreakerStore, Mutation, apply_mutation

DEFAULT_TABLE_NAME = "ingestionbreakers"
PARTITION_KEY = "breaker"
"""All states share one partition: few rows, and `list` is a single-partition query."""

CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 10,
    "retry_total": 3,
    "retry_connect": 1,
    "retry_read": 1,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 4,
}
"""`TableClient` options used by the `from_*` constructors: a wrong or unreachable host fails in
seconds (two connection attempts of 3 s at most), not after minutes of default SDK retries;
throttling (429/503) still gets a few retries."""

_STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(BreakerState))
_COUNTERS = frozenset({"consecutive_failures", "half_open_successes", "total_failures", "total_successes"})
_WRITE_ID = "write_id"
"""Entity property naming the `update` call that wrote it (see `TableBreakerStore.update`)."""

# Characters a RowKey may not hold: '/', '\\', '#', '?' and control characters. '%' is the
# escape character itself. Valid source names (identifiers) never contain any of them.
_ROW_KEY_FORBIDDEN = frozenset("/\\#?%") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}

_logger = logging.getLogger(__name__)
_rng = random.Random()  # own generator: a test seeding `random` must not synchronise the backoff
_T = TypeVar("_T")


class TableStoreError(RuntimeError):
    """The breaker table cannot be used; the message names the table and endpoint, never a key."""


class TableStoreUnavailableError(TableStoreError):
    """The Table service could not be reached, or refused the store's credentials."""


class TableStoreConflictError(TableStoreError):
    """`update` gave up because other writers kept changing the entity between read and write."""


class TableBreakerStore(BreakerStore):
    """A `BreakerStore` on Azure Table Storage, one entity per source, ETag-guarded writes.

    Instances are safe to share between threads (the SDK client is). They are not picklable;
    to use the store from other processes, pass a factory that holds only the connection
    string and table name, e.g. `functools.partial(TableBreakerStore.from_connection_string,
    conn_str, "ingestionbreakers")`.
    """

    def __init__(
        self,
        table_client: TableClient,
        *,
        create_table: bool = True,
        max_attempts: int = 50,
        backoff_seconds: float = 0.02,
        max_backoff_seconds: float = 1.0,
    ) -> None:
        """Wrap a table client, creating its table when it is missing.

        Args:
            table_client: The client of the breaker table. Its own timeouts and retries apply
                to each request; the `from_*` constructors set short ones (`CLIENT_OPTIONS`).
            create_table: Create the table if it does not exist (one request). Turn off when
                the identity may read and write entities but not create tables.
            max_attempts: Read-mutate-write rounds `update` tries before it gives up with
                `TableStoreConflictError`. Each lost round means another writer succeeded.
            backoff_seconds: Base of the randomised exponential wait after a lost round.
            max_backoff_seconds: Longest wait after a lost round.

        Raises:
            TableStoreUnavailableError: The service is unreachable or refused the credentials.
            TableStoreError: The table could not be created (e.g. an invalid table name).
            ValueError: A tuning argument is out of range.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts: {max_attempts!r} is not a whole number >= 1")
        if backoff_seconds < 0 or max_backoff_seconds < 0:
            raise ValueError("backoff_seconds and max_backoff_seconds must be >= 0")
        self._client = table_client
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.table_name: str = table_client.table_name
        self.endpoint = _display_endpoint(table_client.url)
        """Scheme, host and path of the account, without any SAS query: safe for messages."""
        _register_client_secrets(table_client)
        if create_table:
            self._create_table_if_missing()

    @classmethod
    def from_connection_string(
        cls, conn_str: str, table_name: str = DEFAULT_TABLE_NAME, **client_options: Any
    ) -> "TableBreakerStore":
        """A store from a storage connection string (account key, SAS, or Azurite).

        Args:
            conn_str: The connection string; `UseDevelopmentStorage=true` means local Azurite.
            table_name: The breaker table, created if missing.
            **client_options: `TableClient` options overriding `CLIENT_OPTIONS`
                (e.g. `connection_timeout`, `retry_total`).

        Returns:
            The store.

        Raises:
            TableStoreUnavailableError: The service is unreachable or refused the key.
            ValueError: The connection string lacks an account name and key or SAS.
        """
        client = TableClient.from_connection_string(conn_str, table_name, **{**CLIENT_OPTIONS, **client_options})
        return cls(client)

    @classmethod
    def from_account_url(
        cls,
        account_url: str,
        credential: Optional[Union[TokenCredential, AzureNamedKeyCredential, AzureSasCredential]] = None,
        table_name: str = DEFAULT_TABLE_NAME,
        **client_options: Any,
    ) -> "TableBreakerStore":
        """A store from the Table endpoint of an account, e.g. with a managed identity.

        Args:
            account_url: The Table service endpoint, e.g. `https://<account>.table.core.windows.net`.
            credential: A token credential, `AzureNamedKeyCredential` or `AzureSasCredential`;
                `DefaultAzureCredential()` when None (managed identity in Azure). The identity
                needs the "Storage Table Data Contributor" role.
            table_name: The breaker table, created if missing.
            **client_options: `TableClient` options overriding `CLIENT_OPTIONS`.

        Returns:
            The store.

        Raises:
            TableStoreUnavailableError: The service is unreachable or refused the credential.
        """
        if credential is None:
            from azure.identity import DefaultAzureCredential  # only identity-based setups need it

            credential = DefaultAzureCredential()
        client = TableClient(
            account_url, table_name, credential=credential, **{**CLIENT_OPTIONS, **client_options}
        )
        return cls(client)

    # -- BreakerStore ----------------------------------------------------------------

    def get(self, source_name: str) -> BreakerState:
        """See `BreakerStore.get`."""
        entity = self._read(_row_key(source_name))
        return self._to_state(entity) if entity is not None else BreakerState(source_name=source_name)

    def update(self, source_name: str, mutate: Mutation) -> BreakerState:
        """See `BreakerStore.update`; `mutate` runs once per read-mutate-write round.

        Every entity written carries a `write_id` unique to this call. After a conflict the
        entity is read again, and if it carries our `write_id`, an earlier round did land (the
        SDK retried a write whose first response was lost, and the retry hit its own change):
        that state is returned instead of applying the mutation twice.

        Raises:
            TableStoreConflictError: `max_attempts` rounds all lost to other writers.
            TableStoreUnavailableError: The service could not be reached.
        """
        row_key = _row_key(source_name)
        write_id = uuid.uuid4().hex
        for attempt in range(1, self.max_attempts + 1):
            entity = self._read(row_key)
            if entity is not None and entity.get(_WRITE_ID) == write_id:
                return self._to_state(entity)
            current = self._to_state(entity) if entity is not None else BreakerState(source_name=source_name)
            new_state = _scrub(apply_mutation(source_name, mutate, current))
            if new_state == current:
                return current  # no change, no write: like the SQLite store, so no empty entities
            properties = _to_entity(new_state, row_key, write_id)
            try:
                if entity is None:
                    self._call("create a breaker entity", self._client.create_entity, properties)
                else:
                    self._call(
                        "update a breaker entity",
                        self._client.update_entity,
                        properties,
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return new_state
            except ResourceModifiedError:
                pass  # 412: another writer changed the entity since our read
            except ResourceExistsError:
                pass  # 409: another writer created the entity since our read
            except ResourceNotFoundError:
                if entity is None:  # creating failed: the table itself is gone
                    raise TableStoreError(
                        f"breaker table '{self.table_name}' not found at {self.endpoint}: it was "
                        "deleted after this store opened it; a new store creates it again"
                    ) from None
                # the entity was deleted (`reset`) since our read: start again from a fresh state
            _logger.debug("breaker %r: lost write round %d to another writer", source_name, attempt)
            if attempt < self.max_attempts:
                time.sleep(self._backoff(attempt))
        raise TableStoreConflictError(
            f"gave up updating breaker '{source_name}' in table '{self.table_name}' at {self.endpoint}: "
            f"other writers changed it between read and write {self.max_attempts} times in a row"
        )

    def list(self) -> list[BreakerState]:
        """See `BreakerStore.list`."""
        entities = self._call(
            "list breaker entities",
            lambda: list(
                self._client.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION_KEY})
            ),
        )
        # Sorted here by source name: the service orders by the (possibly escaped) RowKey.
        return sorted((self._to_state(e) for e in entities), key=lambda s: s.source_name)

    def reset(self, source_name: str) -> None:
        """See `BreakerStore.reset`. Unconditional: a reset wins over concurrent updates."""
        # delete_entity ignores a missing entity itself
        self._call("delete a breaker entity", self._client.delete_entity, PARTITION_KEY, _row_key(source_name))

    def close(self) -> None:
        """Close the client's connections (optional; they are also closed on garbage collection)."""
        self._client.close()

    def __repr__(self) -> str:
        return f"TableBreakerStore({self.endpoint!r}, table={self.table_name!r})"

    # -- internals -------------------------------------------------------------------

    def _create_table_if_missing(self) -> None:
        # TableClient has no create_table_if_not_exists (only TableServiceClient has).
        try:
            self._call("create the table", self._client.create_table)
        except ResourceExistsError:
            pass

    def _read(self, row_key: str) -> Optional[TableEntity]:
        try:
            return self._call("read a breaker entity", self._client.get_entity, PARTITION_KEY, row_key)
        except ResourceNotFoundError:
            return None  # unknown source, or the table was deleted after the store opened

    def _to_state(self, entity: TableEntity) -> BreakerState:
        try:
            return _scrub(_from_entity(entity))
        except (TypeError, ValueError) as exc:
            raise TableStoreError(
                f"breaker entity '{entity.get('RowKey')}' in table '{self.table_name}' at "
                f"{self.endpoint} is malformed: {exc}"
            ) from exc

    def _backoff(self, attempt: int) -> float:
        # "Full jitter": writers that collided spread out instead of colliding again in step.
        return _rng.uniform(0, min(self.max_backoff_seconds, self.backoff_seconds * 2 ** min(attempt, 20)))

    def _call(self, action: str, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one SDK call, turning "cannot reach or use the service" into a message naming it."""
        try:
            return func(*args, **kwargs)
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TableStoreUnavailableError(
                f"could not {action}: Azure Table service at {self.endpoint} not reachable "
                f"(table '{self.table_name}'): {_short(exc)}"
            ) from exc
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
            raise  # expected outcomes, handled by the caller
        except ClientAuthenticationError as exc:  # also raised when no token can be obtained
            raise TableStoreUnavailableError(
                f"could not {action}: Azure Table service at {self.endpoint} refused access "
                f"(table '{self.table_name}'): {_short(exc)}"
            ) from exc
        except HttpResponseError as exc:
            # 403 also covers an identity without the "Storage Table Data Contributor" role.
            error = TableStoreUnavailableError if exc.status_code in (401, 403) else TableStoreError
            what = "refused access" if error is TableStoreUnavailableError else "failed"
            raise error(
                f"could not {action}: Azure Table service at {self.endpoint} {what} "
                f"(table '{self.table_name}'): HTTP {exc.status_code} {_short(exc)}"
            ) from exc


def _row_key(source_name: str) -> str:
    if not source_name:
        raise ValueError("source_name must not be empty")
    return "".join(f"%{ord(c):02X}" if c in _ROW_KEY_FORBIDDEN else c for c in source_name)


def _source_name(row_key: str) -> str:
    """Inverse of `_row_key`, for entities written without a `source_name` property."""
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), row_key)


def _to_entity(state: BreakerState, row_key: str, write_id: str) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": PARTITION_KEY, "RowKey": row_key, _WRITE_ID: write_id}
    for name in _STATE_FIELDS:
        value = getattr(state, name)
        if value is None:
            continue  # a missing property reads back as None
        # The SDK sends a plain int as Edm.Int32 and refuses values beyond 2**31.
        entity[name] = EntityProperty(value, EdmType.INT64) if name in _COUNTERS else value
    return entity


def _from_entity(entity: TableEntity) -> BreakerState:
    values: dict[str, Any] = {}
    for name in _STATE_FIELDS:
        if name not in entity:
            continue
        value = entity[name]
        value = getattr(value, "value", value)  # Edm.Int64 reads back as EntityProperty
        values[name] = int(value) if name in _COUNTERS else value
    values.setdefault("source_name", _source_name(entity["RowKey"]))
    return BreakerState(**values)


def _scrub(state: BreakerState) -> BreakerState:
    """`state` with every registered secret masked in `last_error`.

    The breaker's callers are asked to pass errors without secrets; this is the safety net,
    since an entity outlives the run and is readable by anyone with table access.
    """
    if state.last_error is None:
        return state
    masked = redact(state.last_error)
    return state if masked == state.last_error else replace(state, last_error=masked)


def _display_endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _short(exc: BaseException) -> str:
    # SDK messages span lines (error code, request id, ...); keep the first, scrubbed of secrets
    # (a transport error may quote the request URL, which carries a SAS when one is used).
    return redact(first_line(exc, type(exc).__name__))


def _register_client_secrets(client: TableClient) -> None:
    """Register the client's key or SAS with `shared.redaction`, so no message can carry it."""
    credential = getattr(client, "credential", None)
    if isinstance(credential, AzureNamedKeyCredential):
        register_secret(credential.named_key.key)
    elif isinstance(credential, AzureSasCredential):
        _register_sas(credential.signature)
    query = urlsplit(client.url).query
    if query:
        _register_sas(query)


def _register_sas(token: str) -> None:
    token = token.lstrip("?")
    register_secret(token)
    for signature in parse_qs(token).get("sig", []):
        register_secret(signature)
