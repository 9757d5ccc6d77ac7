"""Every source type the workbook accepts is wired in everywhere it must be (issue 11, item 8).

The types come from the workbook schema (`config/config_schema.json`); the places are read from
the code (`SOURCE_CLASSES`, `secrets.REQUIRED_FIELDS`, the sample rows, the committed sample
workbook, the README): nothing here lists a type by name. The steps are in
`shared/sources/__init__.py`'s docstring.
"""

from __future__ import annotations

import re
from typing import get_args

import pytest

from shared import secrets
from shared.sources import SOURCE_CLASSES
from shared.sources.base import SqlSource
from shared.workbook import build_plan
from shared.workbook.models import API_SOURCE_TYPES, SQL_SOURCE_TYPES, SourceType
from shared.workbook.schema import load_schema
from shared.workbook.template import DEMO_ROWS, EXAMPLE_ROWS, SAMPLE_PATH
from tests.conftest import ROOT

SCHEMA_TYPES: tuple[str, ...] = tuple(load_schema().column("source_type").enum or ())


def test_the_schema_allows_some_source_types() -> None:
    assert len(SCHEMA_TYPES) >= 2 and all(isinstance(t, str) for t in SCHEMA_TYPES)


def test_the_models_name_exactly_the_schema_types() -> None:
    assert sorted(get_args(SourceType)) == sorted(SCHEMA_TYPES)
    assert sorted(SQL_SOURCE_TYPES + API_SOURCE_TYPES) == sorted(SCHEMA_TYPES)


def test_no_source_class_for_a_type_the_schema_rejects() -> None:
    assert sorted(set(SOURCE_CLASSES) - set(SCHEMA_TYPES)) == []
    assert sorted(set(secrets.REQUIRED_FIELDS) - set(SCHEMA_TYPES)) == []


@pytest.mark.parametrize("source_type", SCHEMA_TYPES)
def test_each_type_has_its_module_class(source_type: str) -> None:
    assert source_type in SOURCE_CLASSES, (
        f"source_type '{source_type}' is allowed by config/config_schema.json but has no class in "
        "shared.sources.SOURCE_CLASSES (see the steps in shared/sources/__init__.py)")
    cls = SOURCE_CLASSES[source_type]
    assert cls.source_type == source_type
    assert re.fullmatch(r"shared\.sources\.\w+", cls.__module__), cls.__module__  # its own module
    if source_type in SQL_SOURCE_TYPES:
        assert issubclass(cls, SqlSource) and cls.drivername, cls
    else:
        assert not issubclass(cls, SqlSource), cls


@pytest.mark.parametrize("source_type", SCHEMA_TYPES)
def test_each_type_has_its_secrets_fields(source_type: str) -> None:
    assert source_type in secrets.REQUIRED_FIELDS, (
        f"source_type '{source_type}' is allowed by config/config_schema.json but has no row in "
        "shared.secrets.REQUIRED_FIELDS (see the steps in shared/sources/__init__.py)")
    groups = secrets.required_fields(source_type)
    assert groups and all(groups), groups
    looked_up = set(secrets.fields_for(source_type))
    assert {f for group in groups for f in group} <= looked_up, (groups, looked_up)
    # Without any secret, validation names what is missing.
    assert secrets.missing_secrets("some_source", source_type, [secrets.EnvProvider({})])


@pytest.mark.parametrize("source_type", SCHEMA_TYPES)
def test_each_type_has_a_sample_row(source_type: str) -> None:
    rows = {row["source_type"] for row in (*DEMO_ROWS, *EXAMPLE_ROWS)}
    assert source_type in rows, (
        f"source_type '{source_type}' has no row in shared/workbook/template.py EXAMPLE_ROWS "
        "(see the steps in shared/sources/__init__.py)")
    sample = {job.source_type for job in build_plan(SAMPLE_PATH).jobs}
    assert source_type in sample, (
        f"the committed sample {SAMPLE_PATH.name} has no '{source_type}' row: "
        "regenerate it with `python -m shared.workbook.template`")


def test_the_readme_lists_every_type() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `source_type` |"))
    assert sorted(set(re.findall(r"`(\w+)`", row)) - {"source_type"}) == sorted(SCHEMA_TYPES), row
