"""dlt's filesystem destination writing one attempt's staging dataset in the lake's layout and format."""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.config_section_context import ConfigSectionContext
from dlt.destinations import filesystem

from shared.lake import parquet_writer
from shared.lake.layout import LAYOUT, bucket_url, is_azure

FILESYSTEM_TYPE = "dlt.destinations.filesystem"
_UNRESOLVED = object()
"""The capability config could not be resolved: dlt falls back to an empty one on every call."""
_CAPABILITY_LOCK = threading.RLock()


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
    """dlt's `filesystem` that resolves its capability config once per config section.

    dlt's `capabilities()` resolves a partial destination configuration from every config
    provider on every call (~17 times in one job, a third of a small job's time); the result
    depends only on the providers and the pipeline name in the config section context, neither of which changes
    during one attempt. The capabilities themselves are built afresh on each call (callers
    modify them), and the destination's type and name stay `filesystem`'s.
    """

    @property
    def destination_type(self) -> str:
        """`filesystem`'s own type (dlt derives it from the class path and keeps it in the pipeline state)."""
        return FILESYSTEM_TYPE

    def capabilities(self, config: Any = None, naming: Any = None) -> Any:
        if config is not None:
            return super().capabilities(config, naming)
        # Destination.configuration passes its own sections, so of the context only the pipeline
        # name takes part in the lookup (dlt's `_resolve_single_value`).
        key = Container()[ConfigSectionContext].pipeline_name
        with _CAPABILITY_LOCK:
            # Not set in __init__: dlt reads the factory's own __init__ signature to tell explicit arguments.
            configs = self.__dict__.setdefault("_capability_configs", {})
            cached = configs.get(key)
            if cached is None:
                cached = configs[key] = self._capability_config()
        return super().capabilities(None if cached is _UNRESOLVED else cached, naming)

    def _capability_config(self) -> Any:
        """The partial config dlt's `capabilities()` resolves when given none (captured from it)."""
        captured: list[Any] = []
        resolve = self.configuration

        def capture(initial_config: Any, accept_partial: bool = False) -> Any:
            resolved = resolve(initial_config, accept_partial=accept_partial)
            captured.append(resolved)
            return resolved

        self.configuration = capture  # type: ignore[method-assign]
        try:
            super().capabilities()
        finally:
            del self.configuration
        return captured[0] if captured else _UNRESOLVED


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
