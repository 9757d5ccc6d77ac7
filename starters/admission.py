"""Admission of a start request: parse, canonicalise the workbook, check it exists, name its run.

Shared by every starter so that they accept exactly the same requests:

- the body/message is parsed by `shared.start_request` (size limit, bounded messages);
- the workbook reference is resolved by `shared.workbook_ref` (inside a Functions host always a
  blob) and canonicalised, so `config/./a.xlsx`, `config//a.xlsx` and `config/sub/../a.xlsx`
  are one workbook with one instance id (the one-run-per-workbook guarantee holds however the
  path is spelled);
- a blob must be in `CONFIG_CONTAINER` (a bare name means that container): no other container
  of the account can be named;
- the workbook must exist (404 otherwise), checked with one quick storage call;
- the instance id is derived from the canonical path (`instance_id_for`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from typing import Any, Mapping, Optional

from shared.start_request import StartRequestError, parse_start_request
from shared.storage import StorageAccount, storage_account
from shared.workbook_ref import WorkbookRef, WorkbookRefError, require_container, resolve_workbook

INSTANCE_PREFIX = "ingestion-"
READABLE_CHARS = 60
"""Characters of the sanitised workbook path kept in an instance id (its tail: the file name)."""


class WorkbookNotFound(StartRequestError):
    """The workbook does not exist (HTTP 404)."""

    status = 404

    def __init__(self, ref: WorkbookRef, where: str) -> None:
        super().__init__("config", f"workbook not found: {ref.path}{where}")


def instance_id_for(config: str) -> str:
    """The fixed instance id of a workbook, from its canonical path.

    A readable part (the tail of the path, sanitised to `[A-Za-z0-9_.-]`) plus the first 16 hex
    digits of the path's SHA-256, so paths that sanitise alike (`a b.xlsx`, `a-b.xlsx`) or share
    their first characters still get different ids. At most 87 characters, and never `/`, `\\`,
    `#`, `?` or control characters (Durable instance ids may not contain them).
    """
    digest = hashlib.sha256(config.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    stem = re.sub(r"\.xlsx$", "", config, flags=re.IGNORECASE)
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)[-READABLE_CHARS:].strip("-.")
    return f"{INSTANCE_PREFIX}{readable}-{digest}" if readable else f"{INSTANCE_PREFIX}{digest}"


def canonical_request(
    request: dict[str, Any], account: Optional[StorageAccount], config_container: str,
    environ: Mapping[str, str] = os.environ,
) -> tuple[dict[str, Any], WorkbookRef]:
    """The request with its `config` canonicalised, and the resolved workbook.

    Raises:
        StartRequestError: The reference is not a usable blob path or names another container.
    """
    try:
        ref = resolve_workbook(request["config"], account, config_container, environ)
        require_container(ref, config_container)
    except WorkbookRefError as exc:
        raise StartRequestError("config", str(exc)) from None
    return {**request, "config": ref.path}, ref


def check_exists(ref: WorkbookRef, account: Optional[StorageAccount]) -> None:
    """Refuse a workbook that does not exist (one quick call for a blob).

    Raises:
        WorkbookNotFound: It does not exist.
        StorageUnreachableError: Storage cannot be reached (the caller answers 503 / retries).
    """
    if not ref.is_blob:
        if not os.path.isfile(ref.name):
            raise WorkbookNotFound(ref, "")
        return
    if account is None:
        raise WorkbookNotFound(ref, " (no storage account configured)")
    from shared.steps import workbook_blob_size

    if workbook_blob_size(ref, account) is None:
        raise WorkbookNotFound(ref, f" on {account.blob_host}")


def admit(body: Any, *, must_exist: bool = True) -> tuple[dict[str, Any], str]:
    """Parse and admit a start request.

    Args:
        body: Raw bytes/text, a parsed object, or None (all defaults).
        must_exist: Check that the workbook exists (not for the blob trigger: its blob just arrived).

    Returns:
        The canonical request and its instance id.

    Raises:
        StartRequestError: With `status` 400, 404 or 413 and a bounded message.
        StorageUnreachableError: The existence check could not reach storage.
    """
    from shared.settings import settings

    request = parse_start_request(body)
    account = storage_account()
    request, ref = canonical_request(request, account, settings().config_container)
    if must_exist:
        check_exists(ref, account)
    return request, instance_id_for(request["config"])


async def admit_async(body: Any, *, must_exist: bool = True) -> tuple[dict[str, Any], str]:
    """`admit` off the event loop: the existence check is a blocking storage call."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: admit(body, must_exist=must_exist))
