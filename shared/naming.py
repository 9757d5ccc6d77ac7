"""Names in the lake: table folders, dlt pipeline names and the column naming convention.

Table and schema names may be any identifier the source allows (`"Order Details"`, `"Sales EU"`);
SQLAlchemy quotes them per dialect wherever SQL is built. What lands on disk is derived:

- The lake folder of a table is dlt's snake_case form of its name (`Order Details` ->
  `order_details`, `CustomerOrders` -> `customer_orders`), as it always was for plain names, so
  existing lakes keep their folders. A name with non-ASCII characters gets `_<8 hex>` (a hash of
  the name) appended, because snake_case drops those characters and different names would meet
  in one folder. Validation rejects two jobs of one source whose folders are the same.
- Column names are kept as the source has them (`INGESTION_NAMING=source`, the default) or put in
  snake_case (`INGESTION_NAMING=snake_case`). The convention is fixed in a table's dlt schema at
  its first load; an INCREMENTAL table keeps the convention of its stored schema.
"""

from __future__ import annotations

import hashlib
import re
from typing import Mapping, Optional

NAMING_ENV = "INGESTION_NAMING"
SOURCE, SNAKE_CASE = "source", "snake_case"
NAMINGS = (SOURCE, SNAKE_CASE)

def naming_setting(environ: Optional[Mapping[str, str]] = None) -> str:
    """`INGESTION_NAMING`: `source` (default) or `snake_case` (parsed by `shared.settings`).

    Raises:
        ValueError: Any other value.
    """
    from shared.settings import settings

    return settings(environ).naming


def dlt_naming(source_type: str, setting: Optional[str] = None) -> str:
    """The dlt naming convention of a new table's schema.

    `source` keeps every column name unchanged for SQL tables (dlt's `direct`: only quotes and
    line breaks become `_`). REST APIs use `sql_cs_v1` (case kept, other characters `_`): nested
    records become child tables and flattened columns whose names need dlt's `__` separator.
    """
    setting = setting or naming_setting()
    if setting == SNAKE_CASE:
        return "snake_case"
    return "sql_cs_v1" if source_type == "api" else "direct"


def _suffix(name: str) -> str:
    """`_<8 hex>` for names with non-ASCII characters (which snake_case would drop), else ``.

    Every name valid before (ASCII letters, digits, `_`, `$`) gets no suffix: its folder and
    pipeline name stay what they were."""
    return "" if name.isascii() else "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


def lake_table_name(table_name: str) -> str:
    """The lake folder of a table: snake_case of its name (plus a hash for non-ASCII names)."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    folder = NamingConvention().normalize_table_identifier(table_name)
    return folder + _suffix(table_name)


def pipeline_name(source_name: str, schema_name: Optional[str], table_name: str) -> str:
    """Stable dlt pipeline name of a job; renaming it would lose the incremental cursor."""
    parts = [p for p in ("ingest", source_name, schema_name, table_name) if p]
    name = re.sub(r"[^a-z0-9_]", "_", "__".join(parts).lower())
    return name + _suffix("".join(parts))
