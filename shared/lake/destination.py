"""dlt's filesystem destination writing one attempt's staging dataset in the lake's layout and format."""

from __future__ import annotations

import logging
from typing import Any, Optional

from dlt.destinations import filesystem

from shared.lake import parquet_writer
from shared.lake.layout import LAYOUT, bucket_url, is_azure

FILESYSTEM_TYPE = "dlt.destinations.filesystem"


def _not_the_layout_separator_warning(record: logging.LogRecord) -> bool:
    """Drop dlt's warning that `/` after `{table_name}` is unsafe under the `direct` naming.

    It is about table names that contain `/` (one table's prefix then selects another's files for
    `replace` and `drop`). A lake folder is the snake_case form of its table's name
    (`shared.naming.lake_table_name`), which never contains `/`, and each pipeline holds one
    table: the warning cannot apply here, and it printed on every run.
    """
    return not (record.name == "dlt" and "separates `{table_name}`" in str(record.msg))


logging.getLogger("dlt").addFilter(_not_the_layout_separator_warning)
parquet_writer.install()  # dictionaries only where they fit (shared.lake.parquet_writer)


class LakeFilesystem(filesystem):  # type: ignore[misc]
    """dlt's `filesystem` whose capabilities come from the lake's own arguments.

    dlt's `capabilities()`, given no configuration, resolves a partial destination configuration
    from every config provider (~17 calls in one job, then cached here per pipeline name: still
    two resolutions per job, ~4 % of a small job) only to adjust the capabilities with it. The
    filesystem destination reads one thing from that configuration: the bucket URL's protocol
    (`hf` changes the file format). Every lake destination is made with an explicit bucket URL
    (`make_destination`), and explicit arguments win over the providers, so the configuration
    made from the factory's explicit arguments alone gives the same capabilities
    (tests/test_lake_destination.py compares them with dlt's). The capabilities themselves are
    built afresh on each call (callers modify them), and the destination's type and name stay
    `filesystem`'s.
    """

    @property
    def destination_type(self) -> str:
        """`filesystem`'s own type (dlt derives it from the class path and keeps it in the pipeline state)."""
        return FILESYSTEM_TYPE

    def capabilities(self, config: Any = None, naming: Any = None) -> Any:
        if config is None and self.config_params.get("bucket_url"):
            config = self.spec()
            config.update(self.config_params)
        return super().capabilities(config, naming)


def make_destination(url: Optional[str] = None) -> Any:
    """A dlt filesystem destination for the lake; other settings come from dlt's config.

    An Azure lake on the service's own storage account needs no dlt credentials of its own:
    they are derived from the storage connection (`shared.storage.lake_credentials`).
    """
    from shared.storage import lake_credentials, storage_account

    root = bucket_url(url)
    if is_azure(root):
        from shared.lake.azure import install

        install()  # Azure lake calls with bounded retries and timeouts; adlfs is imported only for them
    return LakeFilesystem(bucket_url=root, layout=LAYOUT, **lake_credentials(root, storage_account()))
