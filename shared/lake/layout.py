"""The lake: dlt's filesystem destination writing date-partitioned Parquet.

Layout: `<bucket>/<source_name>/<table_name>/<YYYY>/<MM>/<DD>/<load_id>.<file_id>.parquet`.
The dataset is the job's `source_name`, so two sources' `orders` never collide. The bucket is
a local folder by default (`./lake`); `DESTINATION__FILESYSTEM__BUCKET_URL=az://...` (or
`abfss://...`) switches to ADLS Gen2, with credentials in dlt's own
`DESTINATION__FILESYSTEM__CREDENTIALS__...` settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from dlt.destinations import filesystem

LAYOUT = "{table_name}/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.{ext}"
"""Where each data file goes, below `<bucket>/<dataset>/`."""
DEFAULT_LAKE_DIR = "lake"
"""Embedded default: a folder in the working directory."""
BUCKET_URL_ENV = "DESTINATION__FILESYSTEM__BUCKET_URL"


def bucket_url(explicit: Optional[str] = None) -> str:
    """The lake's root URL: the argument, dlt's setting, or `./lake` as an absolute path."""
    url = explicit or os.environ.get(BUCKET_URL_ENV)
    if url:
        return url if "://" in url else str(Path(url).resolve())
    return str(Path(DEFAULT_LAKE_DIR).resolve())


def make_destination(url: Optional[str] = None) -> Any:
    """A dlt filesystem destination for the lake; other settings come from dlt's config.

    An Azure lake on the service's own storage account needs no dlt credentials of its own:
    they are derived from the storage connection (`shared.storage.lake_credentials`).
    """
    from shared.lake_client import install
    from shared.storage import lake_credentials, storage_account

    install()  # Azure lake calls with bounded retries and timeouts
    root = bucket_url(url)
    return filesystem(bucket_url=root, layout=LAYOUT, **lake_credentials(root, storage_account()))


def date_folder(timestamp: Any) -> str:
    """`YYYY/MM/DD` of a load package timestamp (UTC), as the layout renders it."""
    return f"{timestamp.year:04d}/{timestamp.month:02d}/{timestamp.day:02d}"
