"""Where things are in the lake: its root, the date-partitioned data folders, and the bookkeeping.

Layout below the root: `<source_name>/<table_name>/<YYYY>/<MM>/<DD>/<load_id>.<file_id>.<ext>`
(`<ext>` is the file format's, `shared.lake.format`); dlt's state and the protocol's records
beside the tables in `<source_name>/`, uncommitted attempts in `_staging/` (docs/lake-protocol.md).
The dataset is the job's `source_name`, so two sources' `orders` never collide. The root is a
local folder by default (`./lake`); `DESTINATION__FILESYSTEM__BUCKET_URL=az://...` (or
`abfss://...`) switches to ADLS Gen2, with credentials in dlt's own
`DESTINATION__FILESYSTEM__CREDENTIALS__...` settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

from shared.storage import BLOB_SCHEMES

LAYOUT = "{table_name}/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.{ext}"
"""Where each data file goes, below `<bucket>/<dataset>/` (dlt's filesystem layout)."""
DEFAULT_LAKE_DIR = "lake"
"""Embedded default: a folder in the working directory."""
BUCKET_URL_ENV = "DESTINATION__FILESYSTEM__BUCKET_URL"
AZURE_SCHEMES = BLOB_SCHEMES
"""Lake roots on Azure Blob Storage / ADLS Gen2 (adlfs spellings)."""
STAGING = "_staging"
"""Uncommitted attempts: `_staging/<source>/<table>/<attempt>/`, a dlt dataset each."""
BOOKKEEPING = "_ingestion"
"""The protocol's records in each source folder: journals, commit records, locks, manifests, schemas."""


def bucket_url(explicit: Optional[str] = None) -> str:
    """The lake's root URL: the argument, dlt's setting, or `./lake` as an absolute path."""
    url = explicit or os.environ.get(BUCKET_URL_ENV)
    if url:
        return url if "://" in url else str(Path(url).resolve())
    return str(Path(DEFAULT_LAKE_DIR).resolve())


def is_local(root: str) -> bool:
    """Whether a lake root is a folder (a plain path or `file://`)."""
    return urlsplit(root).scheme in ("", "file")


def is_azure(root: str) -> bool:
    """Whether a lake root is an Azure container (`az://`, `abfss://`, ...)."""
    return urlsplit(root).scheme in AZURE_SCHEMES


def local_folder(root: str) -> str:
    """The folder of a local lake root (a path or a `file://` URL)."""
    parts = urlsplit(root)
    return parts.path if parts.scheme else root


def container_and_prefix(root: str) -> tuple[str, str]:
    """The container of an Azure lake root and the folder in it (`az://lake/a/b` -> `lake`, `a/b`)."""
    parts = urlsplit(root)
    return parts.netloc.split("@")[0], parts.path.strip("/")


def date_folder(timestamp: Any) -> str:
    """`YYYY/MM/DD` of a load package timestamp (UTC), as the layout renders it."""
    return f"{timestamp.year:04d}/{timestamp.month:02d}/{timestamp.day:02d}"


def day_folders(store: Any, base: str) -> Iterator[tuple[str, str]]:
    """The day folders below a table folder `base`: `("YYYY/MM/DD", "<base>/YYYY/MM/DD")`, in order."""
    for year in store.ls(base):
        for month in store.ls(f"{base}/{year}"):
            for day in store.ls(f"{base}/{year}/{month}"):
                yield f"{year}/{month}/{day}", f"{base}/{year}/{month}/{day}"


def data_files(store: Any, folder: str) -> list[str]:
    """Names of the data files in a day folder (hidden temporary files left out)."""
    return [name for name in store.ls(folder) if not name.startswith(".")]
