"""dlt's filesystem destination writing one attempt's staging dataset in the lake's layout and format."""

from __future__ import annotations

from typing import Any, Optional

from dlt.destinations import filesystem

from shared.lake.layout import LAYOUT, bucket_url


def make_destination(url: Optional[str] = None) -> Any:
    """A dlt filesystem destination for the lake; other settings come from dlt's config.

    An Azure lake on the service's own storage account needs no dlt credentials of its own:
    they are derived from the storage connection (`shared.storage.lake_credentials`).
    """
    from shared.lake.azure import install
    from shared.storage import lake_credentials, storage_account

    install()  # Azure lake calls with bounded retries and timeouts
    root = bucket_url(url)
    return filesystem(bucket_url=root, layout=LAYOUT, **lake_credentials(root, storage_account()))
