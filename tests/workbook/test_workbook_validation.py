"""Validation of the SourceConfig sheet: every problem, in one run, at the right cell."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.workbook import Job, PlanError, build_plan, validate_workbook

VALID_ROW = ["postgresql", "erp", "invoices", "FULL", "Y"]


def problems_of(path: Any, **kwargs: Any) -> list[str]:
    """The problems `build_plan` raises for a workbook that must be invalid."""
    with pytest.raises(PlanError) as info:
        build_plan(path, **kwargs)
    return info.value.problems


# --- many mistakes, one call -----------------------------------------------------------

MISTAKES = [
    # row 2: fine, but source 'crm' has no secrets (row 14 repeats it)
    ["postgresql", "crm", "customers", "FULL", "Y"],
    ["postgres", "a", "t", "FULL", "Y"],  # 3: bad source_type
    ["mysql", "b", "t", "DAILY", "Y"],  # 4: bad load_type
    ["mysql", "c", None, "FULL", "Y"],  # 5: missing table_name
    ["mysql", "d", "t", "FULL", "maybe"],  # 6: bad enabled
    ["mysql", "e", "t", "INCREMENTAL", "N"],  # 7: INCREMENTAL without watermark_column
    ["oracle", "f", "T", "FULL", "N"],  # 8: oracle without schema_name
    ["api", "g", "issues", "FULL", "N"],  # 9: api without api_endpoint
    ["mysql", "h", "t", "FULL", "N", None, None, None, 500],  # 10: chunk_size below range
    ["mysql", "i", "t", "FULL", "N", None, None, None, "lots"],  # 11: chunk_size text
    ["mysql", "j", "../orders", "FULL", "N"],  # 12: table_name escaping the lake folder
    ["mysql", "k", "t", "FULL", "N", "bad/schema"],  # 13: path separator in schema_name
    ["postgresql", "CRM", "Customers", "FULL", "Y"],  # 14: duplicate of row 2
    ["api", "m", "x", "FULL", "N", None, None, None, None, "x", None, '{"state": }'],  # 15: bad JSON
    ["mysql", "n", "t", "FULL", "N", None, None, None, None, None, "id, order id"],  # 16: bad primary_key
    ["mysql", "o", "t", "FULL", "N", "public", "x"],  # 17: F17:G17 merged
    ["mysql", "p", '="ord"&"ers"', "FULL", "N"],  # 18: formula never calculated
    ["mysql", "9lives", "t", "FULL", "N"],  # 19: source_name starts with a digit
    ["api", "q", "x", "FULL", "N", None, None, None, None, "x", None, "[1, 2]"],  # 20: JSON not an object
    ["mysql", "r", "t", "FULL", "N", None, None, None, 20_000_000],  # 21: chunk_size above range
    [None, None, None, None, None],  # 22: blank row, skipped silently
    ["sqlite", "s", "t", "FULL", "N", None, None, None, None, "orders"],  # 23: fine (api_endpoint ignored)
]

EXPECTED = [
    "SourceConfig!B2 (source_name): no secrets for 'crm': missing host, database (set SOURCES__CRM__HOST) "
    "(row 14 uses the same source)",
    "SourceConfig!A3 (source_type): 'postgres' is not one of postgresql, mysql, oracle, mssql, azure_sql, "
    "sqlite, api (did you mean postgresql?)",
    "SourceConfig!D4 (load_type): 'DAILY' is not one of FULL, INCREMENTAL",
    "SourceConfig!C5 (table_name): missing value; required for every job",
    "SourceConfig!E6 (enabled): 'maybe' is not a yes/no value; allowed: Y or N (also YES/NO, TRUE/FALSE, 1/0)",
    "SourceConfig!G7 (watermark_column): missing value; required when load_type is INCREMENTAL",
    "SourceConfig!F8 (schema_name): missing value; required when source_type is oracle",
    "SourceConfig!J9 (api_endpoint): missing value; required when source_type is api",
    "SourceConfig!I10 (chunk_size): 500 is less than the minimum 1,000; allowed: a whole number from 1,000 "
    "to 10,000,000",
    "SourceConfig!I11 (chunk_size): 'lots' is not a whole number; allowed: a whole number from 1,000 to 10,000,000",
    "SourceConfig!C12 (table_name): '../orders' is not a valid table or schema name; "
    "allowed: the name as the source has it (spaces, case and punctuation kept), at most 128 characters; "
    "no control characters, no slash or backslash, no '..', and no leading dot or space",
    "SourceConfig!F13 (schema_name): 'bad/schema' is not a valid table or schema name; "
    "allowed: the name as the source has it (spaces, case and punctuation kept), at most 128 characters; "
    "no control characters, no slash or backslash, no '..', and no leading dot or space",
    "SourceConfig!C14 (table_name): duplicate job crm.Customers: row 2 has the same source_name, schema_name "
    "and table_name (compared ignoring case); allowed: one row per job",
    "SourceConfig!L15 (api_params): invalid JSON: Expecting value at line 1, column 11; allowed: a JSON object "
    'such as {"state": "all"}',
    "SourceConfig!K16 (primary_key): 'order id' is not a valid SQL identifier; allowed: letters, digits, _ "
    "and $; must start with a letter or _; at most 128 characters",
    "SourceConfig!F17:G17 (schema_name, watermark_column): merged cells are not allowed in the jobs table; "
    "unmerge them and type the value in every cell",
    'SourceConfig!C18 (table_name): formula ="ord"&"ers" has no saved result (the file was not last saved by '
    "Excel); open the workbook in Excel and save it, or type the value instead of the formula",
    "SourceConfig!B19 (source_name): '9lives' is not a valid source name; allowed: letters, digits and _ (never "
    "two _ in a row); must start with a letter; at most 63 characters",
    'SourceConfig!L20 (api_params): \'[1, 2]\' is not a JSON object; allowed: a JSON object such as {"state": "all"}',
    "SourceConfig!I21 (chunk_size): 20000000 is more than the maximum 10,000,000; allowed: a whole number "
    "from 1,000 to 10,000,000",
]


@pytest.fixture
def crm_has_no_secrets() -> Any:
    """A secrets check that knows every source but 'crm', recording its calls."""
    calls: list[tuple[str, str]] = []

    def check(source_name: str, source_type: str) -> list[str]:
        calls.append((source_name, source_type))
        return ["missing host, database (set SOURCES__CRM__HOST)"] if source_name == "crm" else []

    check.calls = calls  # type: ignore[attr-defined]
    return check


@pytest.fixture
def mistakes_workbook(write_sheet: Any) -> Any:
    return write_sheet(MISTAKES, setup=lambda ws: ws.merge_cells("F17:G17"))


def test_every_mistake_is_reported_once_at_its_cell(mistakes_workbook: Any, crm_has_no_secrets: Any) -> None:
    problems = problems_of(mistakes_workbook, check_secrets=crm_has_no_secrets)
    assert problems == EXPECTED


def test_secrets_are_checked_once_per_enabled_source(mistakes_workbook: Any, crm_has_no_secrets: Any) -> None:
    validate_workbook(mistakes_workbook, check_secrets=crm_has_no_secrets)
    # Enabled rows are 2-5 and 14 ('crm' twice); row 6's 'maybe' is not known to be enabled,
    # rows 3 and 19 have invalid source values, disabled rows are never asked about.
    assert crm_has_no_secrets.calls == [("crm", "postgresql"), ("b", "mysql"), ("c", "mysql")]


def test_plan_error_lists_the_source(mistakes_workbook: Any) -> None:
    with pytest.raises(PlanError) as info:
        build_plan(mistakes_workbook, source_label="blob://config/jobs.xlsx")
    assert info.value.source == "blob://config/jobs.xlsx"
    assert str(info.value).startswith(f"{len(EXPECTED) - 1} problem(s) in blob://config/jobs.xlsx:\n  - ")


# --- valid workbooks ----------------------------------------------------------------------


def test_valid_workbook_gives_jobs(core_header: list[str], write_sheet: Any, accept_all_secrets: Any) -> None:
    path = write_sheet(
        [
            [
                "postgresql",
                "erp",
                "invoices",
                "INCREMENTAL",
                "Y",
                "public",
                "updated_at",
                dt.datetime(2024, 1, 1),
                50_000,
                None,
                "id, line_no",
                None,
            ],
            [
                "api",
                "gh",
                "issues",
                "INCREMENTAL",
                "N",
                None,
                "updated_at",
                1700000000.0,
                None,
                "/v1/issues",
                "id",
                '{"state": "all", "per_page": 100}',
            ],
        ],
        header=[*core_header, "api_incremental_param", "api_paginator", "min_rows"],
    )
    plan = build_plan(path, check_secrets=accept_all_secrets)
    assert plan.warnings == []
    assert plan.source == str(path)
    assert plan.jobs == [
        Job(
            source_type="postgresql",
            source_name="erp",
            table_name="invoices",
            load_type="INCREMENTAL",
            enabled=True,
            schema_name="public",
            watermark_column="updated_at",
            last_watermark="2024-01-01T00:00:00",
            chunk_size=50_000,
            primary_key=("id", "line_no"),
            row=2,
        ),
        Job(
            source_type="api",
            source_name="gh",
            table_name="issues",
            load_type="INCREMENTAL",
            enabled=False,
            watermark_column="updated_at",
            last_watermark=1700000000,
            api_endpoint="/v1/issues",
            primary_key=("id",),
            api_params={"state": "all", "per_page": 100},
            row=3,
        ),
    ]
    assert [j.job_id for j in plan.enabled_jobs()] == ["erp.public.invoices"]
    for job in plan.jobs:
        assert Job.from_dict(job.to_dict()) == job


def test_values_are_trimmed_and_normalised(core_header: list[str], write_sheet: Any) -> None:
    path = write_sheet(
        [
            [" PostgreSQL ", " ERP ", " Invoices ", " full ", " y "],
            ["MySQL", "Shop", "orders", "Incremental", True, None, "id", None, "1,000,000"],
            ["SQLITE", "demo", "t", "FULL", 0],
            ["sqlite", "demo", "u", "FULL", "no"],
            ["sqlite", "demo", "v", "FULL", " TRUE "],
        ],
        header=[f"  {name.upper()} " for name in core_header],
    )
    jobs = build_plan(path).jobs
    first = jobs[0]
    assert (first.source_type, first.source_name, first.table_name, first.load_type, first.enabled) == (
        "postgresql",
        "erp",
        "Invoices",
        "FULL",
        True,
    )
    assert (jobs[1].source_type, jobs[1].source_name, jobs[1].load_type, jobs[1].chunk_size) == (
        "mysql",
        "shop",
        "INCREMENTAL",
        1_000_000,
    )
    assert [j.enabled for j in jobs] == [True, True, False, False, True]


def test_formula_with_saved_result_is_read(write_sheet: Any, set_cached_value: Any) -> None:
    path = write_sheet([["sqlite", "demo", '="ord"&"ers"', "FULL", "Y"]])
    set_cached_value(path, "C2", "orders")
    assert build_plan(path).jobs[0].table_name == "orders"


def test_formula_with_error_result_is_reported(write_sheet: Any, set_cached_value: Any) -> None:
    path = write_sheet([["sqlite", "demo", "orders", "FULL", "Y", None, None, None, "=1/0"]])
    set_cached_value(path, "I2", "#DIV/0!")
    # Our patch stores the text with t="str"; mark it as an Excel error instead.
    _retag_error(path, "I2")
    assert problems_of(path) == [
        "SourceConfig!I2 (chunk_size): formula =1/0 gives the Excel error #DIV/0!; fix it or type the value"
    ]


def _retag_error(path: Any, coordinate: str) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        parts = {n: archive.read(n) for n in archive.namelist()}
    xml = (
        parts["xl/worksheets/sheet1.xml"]
        .decode()
        .replace(f'<c r="{coordinate}" t="str">', f'<c r="{coordinate}" t="e">')
    )
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


# --- header ------------------------------------------------------------------------------


def test_unknown_column_is_a_warning_naming_its_cell(core_header: list[str], write_sheet: Any) -> None:
    header = [*core_header, "notes", "sorce_type"]
    path = write_sheet([[*VALID_ROW, *[None] * 7, "hello", "x"]], header=header)
    plan = build_plan(path)
    assert plan.warnings == [
        "SourceConfig!M1: unknown column 'notes' ignored",
        "SourceConfig!N1: unknown column 'sorce_type' ignored (did you mean 'source_type'?)",
    ]
    assert len(plan.jobs) == 1


def test_values_under_a_blank_header_are_a_warning(write_sheet: Any) -> None:
    path = write_sheet([[*VALID_ROW, None, None, None, None, None, None, None, "stray"]])
    assert build_plan(path).warnings == ["SourceConfig!M1: column without a name ignored (it has values in rows 2)"]


def test_missing_required_column_is_an_error(write_sheet: Any) -> None:
    path = write_sheet(
        [["postgresql", "erp", "invoices", "Y"]], header=["source_type", "source_name", "table_name", "enabled"]
    )
    assert problems_of(path) == [
        "SourceConfig!1:1 (load_type): required column is missing from the header row; add a column named 'load_type'"
    ]


def test_conditional_value_in_an_absent_column_names_the_row(write_sheet: Any) -> None:
    header = ["source_type", "source_name", "table_name", "load_type", "enabled"]
    path = write_sheet([["mysql", "shop", "orders", "INCREMENTAL", "Y"]], header=header)
    assert problems_of(path) == [
        "SourceConfig!2:2 (watermark_column): missing value; required when load_type is INCREMENTAL "
        "(the sheet has no watermark_column column)"
    ]


def test_repeated_column_is_an_error(core_header: list[str], write_sheet: Any) -> None:
    path = write_sheet([[*VALID_ROW, "x"]], header=[*core_header[:5], "Table_Name"])
    assert problems_of(path) == ["SourceConfig!F1 (table_name): column appears twice (first in C1)"]


def test_sheet_without_job_rows_is_an_error(write_sheet: Any) -> None:
    path = write_sheet([[None] * 5, ["  "] * 5])
    assert problems_of(path) == ["SourceConfig!A2: no job rows; add one row per job below the header"]


def test_header_without_known_columns_is_one_error(write_sheet: Any) -> None:
    path = write_sheet([VALID_ROW], header=["a", "b"])
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("SourceConfig!1:1: no known column names in header row 1; expected columns")


# --- across rows ---------------------------------------------------------------------------


def test_one_source_type_per_source_name(write_sheet: Any) -> None:
    path = write_sheet([["postgresql", "erp", "a", "FULL", "Y"], ["mysql", "ERP", "b", "FULL", "N"]])
    assert problems_of(path) == [
        "SourceConfig!A3 (source_type): 'mysql' differs from 'postgresql' used for source 'erp' in row 2; "
        "allowed: one source_type per source_name (its rows share one connection)"
    ]


def test_same_table_in_two_schemas_of_one_source_would_share_a_lake_folder(write_sheet: Any) -> None:
    path = write_sheet([[*VALID_ROW, "sales"], [*VALID_ROW, "finance"]])
    assert problems_of(path) == [
        "SourceConfig!C3 (table_name): job erp.finance.invoices would land in the same lake folder "
        "erp/invoices as row 2; allowed: one job per source_name and table name (use another "
        "source_name for the other schema)"
    ]


def test_lake_folder_clash_follows_dlt_name_normalisation(write_sheet: Any) -> None:
    path = write_sheet([["postgresql", "erp", "OrderLines", "FULL", "Y"], ["postgresql", "erp", "order_lines", "FULL", "Y"]])
    assert len(problems_of(path)) == 1 and "erp/order_lines as row 2" in problems_of(path)[0]


def test_secrets_check_that_raises_is_a_problem_not_a_crash(write_sheet: Any) -> None:
    def broken(source_name: str, source_type: str) -> list[str]:
        raise RuntimeError("vault says no: password=hunter2")

    problems = problems_of(write_sheet([VALID_ROW]), check_secrets=broken)
    assert problems == [
        "SourceConfig!B2 (source_name): no secrets for 'erp': checking the secrets failed (RuntimeError); see the logs"
    ]


def test_vertical_merge_is_reported_once(write_sheet: Any) -> None:
    rows = [["mysql", "shop", "a", "FULL", "Y"], [None, None, "b", "FULL", "Y"], [None, None, "c", "FULL", "Y"]]
    path = write_sheet(rows, setup=lambda ws: (ws.merge_cells("A2:A4"), ws.merge_cells("B2:B4")))
    assert problems_of(path) == [
        "SourceConfig!A2:A4 (source_type): merged cells are not allowed in the jobs table; unmerge them and "
        "type the value in every cell",
        "SourceConfig!B2:B4 (source_name): merged cells are not allowed in the jobs table; unmerge them and "
        "type the value in every cell",
    ]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("last_watermark", True, "'TRUE' is not text or a whole number or a number; allowed: a date (2024-01-31)"),
        ("table_name", dt.datetime(2024, 5, 1), "'2024-05-01 00:00:00' is not text; allowed: the name as the source"),
        ("chunk_size", 1500.5, "1500.5 is not a whole number; allowed: a whole number from 1,000"),
        ("api_endpoint", "/v1/my orders", "'/v1/my orders' is not a valid API endpoint; allowed: a path"),
        ("primary_key", "id, id", "'id, id' names id twice (compared ignoring case); allowed: column names separated"),
        (
            "api_params",
            "{\u201cstate\u201d: 1}",
            "invalid JSON: Expecting property name enclosed in double quotes"
            " at line 1, column 2 (Excel turned the quotes into curly quotes",
        ),
    ],
)
def test_wrong_types_get_clear_messages(
    core_header: list[str], write_sheet: Any, column: str, value: Any, message: str
) -> None:
    header = core_header
    row: list[Any] = [*VALID_ROW, *[None] * (len(header) - len(VALID_ROW))]
    row[header.index(column)] = value
    problems = problems_of(write_sheet([row]))
    assert len(problems) == 1
    assert f"({column}): {message}" in problems[0]


@pytest.mark.parametrize(
    "endpoint",
    ["orders", "/v1/orders", "v1/orders/", "https://api.example.com/v1/issues?state=all", "http://localhost:8080"],
)
def test_api_endpoints_accepted(write_sheet: Any, endpoint: str) -> None:
    path = write_sheet([["api", "gh", "issues", "FULL", "Y", None, None, None, None, endpoint]])
    assert build_plan(path).jobs[0].api_endpoint == endpoint


@pytest.mark.parametrize("endpoint", ["../admin", "ftp://x/y", "/v1/orders?x=1", "javascript:alert(1)"])
def test_api_endpoints_refused(write_sheet: Any, endpoint: str) -> None:
    path = write_sheet([["api", "gh", "issues", "FULL", "Y", None, None, None, None, endpoint]])
    assert "(api_endpoint): " in problems_of(path)[0]


@pytest.mark.parametrize("name", ["a__b", "_x", "x" * 64, "crm-eu"])
def test_source_names_that_would_break_env_vars_are_refused(write_sheet: Any, name: str) -> None:
    path = write_sheet([["mysql", name, "t", "FULL", "Y"]])
    assert "SourceConfig!B2 (source_name): " in problems_of(path)[0]
