"""The few storage operations the lake protocol needs, on a local folder or an Azure container.

Every path is relative to the lake root (`erp/orders/2026/01/31/x.parquet`). Two back ends:

- `LocalStore`: a folder. Renames are atomic; a day folder is swapped whole with Linux
  `renameat2(RENAME_EXCHANGE)` (see `exchange`).
- `AzureStore`: a blob container (flat namespace; Azurite in tests), through the blob SDK
  directly rather than adlfs: each blob write is one request, so a blob appears whole or not at
  all; server-side copies are awaited until they completed.
"""

from __future__ import annotations

import ctypes
import errno
import io
import json
import os
import shutil
import time
import uuid
from typing import IO, Any, Optional

from shared.lake.layout import bucket_url, container_and_prefix, is_azure, is_local, local_folder

STORE_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 30, "retry_total": 2}
"""Bounded storage calls: a dead endpoint fails in seconds, not after the SDK's minutes of retries
(the waits between retries are the service storage's short ones, `shared.storage.RETRY_BACKOFF`:
the SDK's default 15 s + 3**n made each lake call to a dead endpoint take ~40 s)."""


def store_options() -> dict[str, Any]:
    """`STORE_OPTIONS` with the short retry waits as the SDK's retry policy."""
    from azure.storage.blob import ExponentialRetry

    from shared.storage import RETRY_BACKOFF

    return {**STORE_OPTIONS, "retry_policy": ExponentialRetry(retry_total=STORE_OPTIONS["retry_total"], **RETRY_BACKOFF)}


class StoreError(RuntimeError):
    """A lake storage operation failed; names the lake and the path."""


class LocalStore:
    """The lake as a local (or mounted) folder."""

    local = True

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = self.root

    def abs(self, path: str) -> str:
        """Absolute OS path of a lake path."""
        return os.path.join(self.root, path) if path else self.root

    def full(self, path: str) -> str:
        """The path as results and metrics report it (absolute)."""
        return self.abs(path)

    def rel(self, full: str) -> str:
        """The lake path of a path as `full` reports it."""
        return os.path.relpath(full, self.root)

    def ls(self, path: str) -> list[str]:
        """Names directly under `path` (files and folders); empty when it does not exist."""
        try:
            return sorted(os.listdir(self.abs(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, path: str) -> bool:
        return os.path.exists(self.abs(path))

    def open(self, path: str) -> IO[bytes]:
        """A file for reading (seekable: a format reader may read only a part of it)."""
        return open(self.abs(path), "rb")

    def read(self, path: str) -> Optional[bytes]:
        try:
            with open(self.abs(path), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        """Write a whole file atomically: a hidden temporary file in the same folder, then rename."""
        target = self.abs(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = os.path.join(os.path.dirname(target), f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)

    def copy(self, src: str, dst: str) -> None:
        """Copy a small file; the target appears whole."""
        data = self.read(src)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "not found", self.abs(src))
        self.write(dst, data)

    def move(self, src: str, dst: str) -> None:
        """Rename a file (atomic; same file system)."""
        os.makedirs(os.path.dirname(self.abs(dst)), exist_ok=True)
        os.replace(self.abs(src), self.abs(dst))

    def link(self, src: str, dst: str) -> None:
        """A second name for an existing file (hard link; a copy where links are not supported)."""
        try:
            os.link(self.abs(src), self.abs(dst))
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(self.abs(src), self.abs(dst))

    def rm(self, path: str) -> None:
        try:
            os.remove(self.abs(path))
        except FileNotFoundError:
            pass

    def rm_tree(self, path: str) -> None:
        shutil.rmtree(self.abs(path), ignore_errors=True)

    def makedirs(self, path: str) -> None:
        os.makedirs(self.abs(path), exist_ok=True)

    def rename_dir(self, src: str, dst: str) -> None:
        """Rename a folder to a name that does not exist yet (one atomic step)."""
        os.makedirs(os.path.dirname(self.abs(dst)), exist_ok=True)
        os.rename(self.abs(src), self.abs(dst))

    def exchange(self, a: str, b: str) -> bool:
        """Swap two folders atomically; False when the system cannot (then the caller falls back)."""
        return _renameat2_exchange(self.abs(a), self.abs(b))

    def describe(self) -> str:
        return f"lake folder {self.root}"


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _renameat2_exchange(a: str, b: str) -> bool:
    """Linux `renameat2(a, b, RENAME_EXCHANGE)`: both names keep existing, their contents swap."""
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _renameat2 = fn
        except (AttributeError, OSError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # a file system without exchange support (some network mounts)
    raise OSError(code, os.strerror(code), f"{a} <-> {b}")


class AzureStore:
    """The lake as blobs under an optional prefix in an Azure Storage container."""

    local = False

    def __init__(self, root_url: str, container: Any, prefix: str, host: str) -> None:
        self.url = root_url
        self.container = container
        self.prefix = prefix.strip("/")
        self.host = host

    def name(self, path: str) -> str:
        """Blob name of a lake path."""
        return f"{self.prefix}/{path}".strip("/") if self.prefix else path.strip("/")

    def full(self, path: str) -> str:
        """The path as results and metrics report it (`<container>/<blob>`, as adlfs names it)."""
        return f"{self.container.container_name}/{self.name(path)}"

    def rel(self, full: str) -> str:
        """The lake path of a path as `full` reports it."""
        name = full.split("/", 1)[1]
        return name[len(self.prefix) + 1:] if self.prefix else name

    def ls(self, path: str) -> list[str]:
        prefix = self.name(path).rstrip("/") + "/"
        names = set()
        for item in self.container.walk_blobs(name_starts_with=prefix, delimiter="/"):
            names.add(item.name[len(prefix):].rstrip("/"))
        return sorted(n for n in names if n)

    def ls_tree(self, path: str) -> list[str]:
        """Every blob below `path`, as lake paths."""
        prefix = self.name(path).rstrip("/") + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(b[strip:] for b in self.container.list_blob_names(name_starts_with=prefix))

    def exists(self, path: str) -> bool:
        if self.container.get_blob_client(self.name(path)).exists():
            return True
        return bool(self.ls(path))

    def read(self, path: str) -> Optional[bytes]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.container.download_blob(self.name(path)).readall()
        except ResourceNotFoundError:
            return None

    def open(self, path: str) -> IO[bytes]:
        """A blob for reading: seekable, each read one ranged download (a footer costs two)."""
        return io.BufferedReader(_BlobReader(self.container.get_blob_client(self.name(path))))

    def write(self, path: str, data: bytes) -> None:
        """One upload request: the blob appears whole or not at all."""
        self.container.upload_blob(self.name(path), data, overwrite=True)

    def copy(self, src: str, dst: str, timeout: float = 600.0) -> None:
        """Server-side copy, awaited: the target blob is committed whole when this returns."""
        source = self.container.get_blob_client(self.name(src))
        target = self.container.get_blob_client(self.name(dst))
        copy = target.start_copy_from_url(source.url, requires_sync=None)
        status = copy.get("copy_status")
        deadline = time.monotonic() + timeout
        while status == "pending":
            if time.monotonic() > deadline:
                raise StoreError(f"copy of {src} to {dst} on {self.host} did not finish in {timeout:.0f} s")
            time.sleep(0.2)
            status = target.get_blob_properties().copy.status
        if status not in ("success", None):
            raise StoreError(f"copy of {src} to {dst} on {self.host} ended with status {status}")

    def move(self, src: str, dst: str) -> None:
        self.copy(src, dst)
        self.rm(src)

    def rm(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.container.delete_blob(self.name(path))
        except ResourceNotFoundError:
            pass

    def rm_tree(self, path: str) -> None:
        for blob in self.ls_tree(path):
            self.rm(blob)

    def makedirs(self, path: str) -> None:
        """Blob storage has no folders."""

    def describe(self) -> str:
        return f"lake {self.url} on {self.host}"


class _BlobReader(io.RawIOBase):
    """A read-only, seekable file over one blob (ranged downloads; the size is read once)."""

    def __init__(self, blob: Any) -> None:
        super().__init__()
        self.blob = blob
        self.size = blob.get_blob_properties().size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self.size - self.pos)
        if length <= 0:
            return 0
        data = self.blob.download_blob(offset=self.pos, length=length).readall()
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def open_store(url: Optional[str] = None) -> Any:
    """The store of a lake root (`DESTINATION__FILESYSTEM__BUCKET_URL` or `./lake` when omitted).

    Raises:
        StoreError: The lake is on a store the protocol does not support (e.g. `s3://`).
    """
    root = bucket_url(url)
    if is_local(root):
        return LocalStore(local_folder(root))
    if is_azure(root):
        from shared.lake.preflight import lake_service

        container, prefix = container_and_prefix(root)
        service, host = lake_service(root, os.environ, store_options())
        return AzureStore(root, service.get_container_client(container), prefix, host)
    raise StoreError(f"lake {root}: only local folders and Azure Blob / ADLS Gen2 lakes are supported")


def dumps(data: Any) -> bytes:
    """Compact JSON bytes of a bookkeeping record."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
