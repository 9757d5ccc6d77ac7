"""Where a workbook reference points: a local file, or a blob of the service's storage account.

The rule, decided here and nowhere else:

- **Inside a Functions host, every workbook reference is a blob.** The host starts the worker in
  the deployed app folder, which ships the sample `config/ingestion_config.xlsx`: reading local
  files there would silently run the sample instead of the workbook in storage. The host is
  recognised by the variables it puts into the worker's environment: `FUNCTIONS_WORKER_RUNTIME`
  (set in Azure and by `func start`) or `FUNCTIONS_WORKER_DIRECTORY` (set by the host for every
  worker process, also on Flex Consumption, where `FUNCTIONS_WORKER_RUNTIME` is no app setting).
- **Elsewhere (the CLI, tests)**: `az://`, `abfs://`, `abfss://` and `azure://` URLs are blobs;
  any other reference is a local file if that file exists, else a blob when a storage account is
  configured, else a (missing) local file.

Blob references are `az://<container>/<name>`, `<container>/<name>`, or a bare `<name>` (no `/`)
in `CONFIG_CONTAINER`. They are canonicalised before use: empty and `.` segments are dropped and
`..` is resolved (`config/./a.xlsx`, `config//a.xlsx` and `config/sub/../a.xlsx` all name
`config/a.xlsx`), so one workbook has one spelling, one instance id and one run at a time.
Backslashes and control characters are refused.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import urlsplit

from shared.storage import BLOB_SCHEMES, StorageAccount

HOST_MARKERS = ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_DIRECTORY")
"""Environment variables the Functions host sets for its worker processes."""
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")


class WorkbookRefError(ValueError):
    """A workbook reference that cannot name a blob (bounded message, safe to return to callers)."""


def in_functions_host(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a worker started by an Azure Functions host."""
    return any(environ.get(name) for name in HOST_MARKERS)


def is_blob_reference(config: str, account: Optional[StorageAccount], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `config` names a blob (see the module docstring for the rule)."""
    if urlsplit(config).scheme in BLOB_SCHEMES:
        return True
    if in_functions_host(environ):
        return True
    return account is not None and not os.path.isfile(config)


@dataclass(frozen=True)
class WorkbookRef:
    """A resolved workbook: a blob (`container` set) or a local file (`container` None)."""

    name: str
    """The blob name inside its container, or the absolute local path."""
    container: Optional[str] = None

    @property
    def is_blob(self) -> bool:
        """True for a blob."""
        return self.container is not None

    @property
    def path(self) -> str:
        """The canonical spelling: `<container>/<name>` for a blob, the absolute path for a file."""
        return f"{self.container}/{self.name}" if self.container is not None else self.name


def short(value: object, limit: int = 60) -> str:
    """`value` as text, cut to `limit` characters (for messages that quote user input)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical_blob(config: str, config_container: str) -> WorkbookRef:
    """The canonical blob a reference names.

    Args:
        config: `az://<container>/<name>`, `<container>/<name>` or a bare `<name>`.
        config_container: The container of bare names.

    Raises:
        WorkbookRefError: Backslashes or control characters, or no blob name left after
            canonicalisation (e.g. `config/..`).
    """
    if _FORBIDDEN.search(config):
        raise WorkbookRefError(f"'{short(config)}' contains a backslash or a control character; blob paths use '/'")
    parts = urlsplit(config)
    if parts.scheme in BLOB_SCHEMES:
        container = parts.netloc.split("@")[0]
        if not container:
            raise WorkbookRefError(f"'{short(config)}' names no container; expected az://<container>/<name>")
        path = f"{container}/{parts.path}"
    else:
        path = config
    # normpath on an absolute path never climbs above "/": `..` cannot escape into a name prefix.
    normal = posixpath.normpath("/" + path).lstrip("/")
    if parts.scheme not in BLOB_SCHEMES and "/" not in config:  # a bare name, as written
        container, name = config_container, normal
    else:
        container, _, name = normal.partition("/")
    if not container or not name or name in (".", ".."):
        raise WorkbookRefError(f"'{short(config)}' is not a blob path; expected <container>/<name> or az://<container>/<name>")
    return WorkbookRef(name=name, container=container)


def resolve_workbook(
    config: str, account: Optional[StorageAccount], config_container: str, environ: Mapping[str, str] = os.environ
) -> WorkbookRef:
    """Resolve a workbook reference to a canonical blob or an absolute local path.

    Raises:
        WorkbookRefError: A blob reference that cannot be canonicalised.
    """
    if is_blob_reference(config, account, environ):
        return canonical_blob(config, config_container)
    return WorkbookRef(name=os.path.normpath(os.path.abspath(config)))


def require_container(ref: WorkbookRef, allowed: str) -> None:
    """Refuse a blob outside `allowed` (the config container).

    Raises:
        WorkbookRefError: Naming the allowed container.
    """
    if ref.is_blob and ref.container != allowed:
        raise WorkbookRefError(f"container '{short(ref.container, 40)}' is not allowed; workbooks are read from '{allowed}'")
