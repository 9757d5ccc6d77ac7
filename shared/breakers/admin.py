"""Operator controls of the circuit breakers: list them, reset one (CLI and HTTP).

The store is the one the service uses: Table Storage (`INGESTION_BREAKER_TABLE`) when a storage
account is configured, else `<INGESTION_STATE_DIR>/breakers.sqlite`. Reading never creates
anything: a missing table or SQLite file lists as empty.

A reset is a mutation through the store's own `update`, so it is as safe as every other change:
under the SQLite write lock locally, and with ETags in Table Storage (a concurrent change makes it
read again and re-apply, and after the store's `max_attempts` lost rounds it fails with
`TableStoreConflictError`; it never overwrites a state it did not read). It closes the circuit
and clears its counters but keeps the totals and the last error, so `list` still shows the
source's record.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Callable, Optional

from shared.redaction import redact

from .state import CLOSED, BreakerState, to_iso, utc_now
from .store import BreakerStore

LOCAL_FILE = "breakers.sqlite"
MAX_NAME_LENGTH = 300
SOURCE_NAME = re.compile(r"(?!.*__)[A-Za-z][A-Za-z0-9_]{0,62}")
"""A workbook `source_name` (config/config_schema.json)."""
LAKE_PREFIX = "lake:"
"""The lake's own breaker is keyed `lake:<root>` (shared/error_routing.py)."""


class BreakerNameError(ValueError):
    """The name is neither a source name nor a lake breaker key (message bounded, one line)."""


def check_name(name: str, *, allow_lake: bool = True) -> str:
    """`name` if it can name a breaker, else `BreakerNameError`.

    Args:
        name: A source name (letters, digits, `_`; starts with a letter; at most 63
            characters), or with `allow_lake` a lake breaker key `lake:<root>`.
        allow_lake: Accept `lake:` keys (the CLI does; an HTTP route segment cannot hold one).
    """
    if SOURCE_NAME.fullmatch(name or ""):
        return name
    if allow_lake and name.startswith(LAKE_PREFIX) and len(name) > len(LAKE_PREFIX) and len(name) <= MAX_NAME_LENGTH \
            and name.isprintable():
        return name
    shown = redact(repr(name[:60]) + ("..." if len(name) > 60 else ""))
    allowed = "a source name (letters, digits and _, starting with a letter, at most 63 characters)"
    raise BreakerNameError(f"invalid breaker name {shown}: expected {allowed}"
                           + (" or a lake breaker key lake:<root>" if allow_lake else ""))


def store_from_env() -> Optional[BreakerStore]:
    """The service's breaker store, or None when the local SQLite file does not exist yet.

    Raises:
        TableStoreUnavailableError: The Table service is unreachable or refused access.
    """
    from shared.settings import AppSettings
    from shared.storage import storage_account

    settings = AppSettings.from_env()
    account = storage_account()
    if account is None:
        from .local_store import LocalBreakerStore

        path = settings.state_dir / LOCAL_FILE
        return LocalBreakerStore(path) if path.is_file() else None
    from azure.data.tables import TableClient

    from .table_store import CLIENT_OPTIONS, TableBreakerStore

    # Built here rather than by the `from_*` constructors, which create the table.
    if account.connection_string:
        client = TableClient.from_connection_string(account.connection_string, settings.breaker_table, **CLIENT_OPTIONS)
    else:
        client = TableClient(account.table_url, settings.breaker_table, credential=account.credential(), **CLIENT_OPTIONS)
    return TableBreakerStore(client, create_table=False)


def describe(store: Optional[BreakerStore]) -> str:
    """Where the states live, for messages (never a key)."""
    if store is None:
        from shared.settings import AppSettings

        return str(AppSettings.from_env().state_dir / LOCAL_FILE) + " (not created yet)"
    return repr(store)


def list_states(store: Optional[BreakerStore]) -> list[BreakerState]:
    """Every stored state, ordered by source name; empty when the store or its table is missing."""
    if store is None:
        return []
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return store.list()
    except ResourceNotFoundError:  # the breaker table does not exist yet
        return []


def reset(store: Optional[BreakerStore], name: str, clock: Callable[[], datetime] = utc_now) -> Optional[BreakerState]:
    """Close the circuit of `name`: state CLOSED, counters and `opened_at` cleared.

    Args:
        store: The breaker store (None: nothing stored yet).
        name: The breaker's key (checked by the caller with `check_name`).
        clock: "now" for `updated_at`.

    Returns:
        The stored state, or None when `name` has no stored state (nothing is written then).

    Raises:
        TableStoreConflictError: Other writers kept changing the entity between read and write.
        TableStoreUnavailableError: The Table service could not be reached.
    """
    if store is None:
        return None
    now = to_iso(clock())  # read once, outside the mutation, which must stay pure

    def close(state: BreakerState) -> BreakerState:
        if state.updated_at is None:
            return state  # never stored: an unknown source, and nothing to write
        return replace(state, state=CLOSED, consecutive_failures=0, half_open_successes=0, opened_at=None,
                       updated_at=now)

    state = store.update(name, close)
    return state if state.updated_at is not None else None


def register_source_secrets(source_name: str) -> None:
    """Register the source's local secrets (environment, `.dlt/secrets.toml`) for redaction.

    A stored `last_error` was redacted by the process that wrote it, with the secrets that
    process knew; the reader masks the secrets it can see too. Key Vault and Databricks are not
    asked: listing breakers must not call out.
    """
    from shared.redaction import register_secret
    from shared.secrets import SECRET_FIELDS, EnvProvider, TomlProvider

    if not SOURCE_NAME.fullmatch(source_name):
        return
    for provider in (EnvProvider(), TomlProvider()):
        for field_name in sorted(SECRET_FIELDS):
            try:
                register_secret(provider.get(source_name.lower(), field_name))
            except Exception:  # an unreadable secrets.toml must not hide the breakers
                continue


def state_view(state: BreakerState, error_chars: int = 200) -> dict[str, object]:
    """A state for output: the last error redacted and cut to `error_chars` characters."""
    register_source_secrets(state.source_name)
    view = state.to_dict()
    error = redact(state.last_error or "")
    view["last_error"] = (error[: error_chars - 3] + "...") if len(error) > error_chars else (error or None)
    return view
