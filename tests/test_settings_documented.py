"""The README's settings table and `local.settings.json.example` agree with the settings model."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.settings import LOCAL_DIRS, AppSettings, documented_settings, settings
from shared.telemetry.settings import TELEMETRY_SETTINGS
from tests.conftest import ROOT

DLT_ROWS = {"RUNTIME__DLTHUB_TELEMETRY"}
"""dlt's own settings that the table lists too (they are not in our model)."""
PROSE_DEFAULTS = {"INGESTION_WORK_DIR": "system temp", "DLT_PROJECT_DIR": "working directory"}
"""Defaults that depend on the machine, described in words."""
CONNECTIONS = {"AzureWebJobsStorage", "INGESTION_STORAGE"}
"""Storage connections in the Functions convention (with `__accountName`... variants), read by
`shared/storage.py` and by the host's bindings; documented above the table."""
HOST_ONLY = {"AzureWebJobsFeatureFlags"}
DLT_SETTINGS = {
    # dlt's settings for an Azure lake, which the README documents (`..._NAME` abbreviates them).
    "DESTINATION__FILESYSTEM__BUCKET_URL",
    "DESTINATION__FILESYSTEM__KWARGS",
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_ACCOUNT_NAME",
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_ACCOUNT_KEY",
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_SAS_TOKEN",
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_ACCOUNT_HOST",
}
NOT_IN_EXAMPLE = {
    # Alternatives to the account key the example uses. dlt reads a blank value as a value, so
    # they must be absent rather than empty; Azurite has no SAS to give and its plain-http
    # endpoint cannot be an account host (adlfs builds https URLs).
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_SAS_TOKEN",
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_ACCOUNT_HOST",
}


def readme_table() -> dict[str, str]:
    """`setting -> default` of the README's settings table (`-` for none, prose as written)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| setting | default | meaning |") + 2
    table: dict[str, str] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        names_cell, default_cell, _ = line.strip("|").split("|", 2)
        names = re.findall(r"`([A-Za-z_]+)`", names_cell)
        defaults = re.findall(r"`([^`]*)`", default_cell) or [default_cell.strip()] * len(names)
        assert len(defaults) == len(names), f"README row {names}: {len(defaults)} defaults for {len(names)} settings"
        table.update(zip(names, defaults))
    return table


def documented_default(name: str, field: Any) -> str:
    """How the README writes a field's default."""
    if name in PROSE_DEFAULTS:
        return PROSE_DEFAULTS[name]
    local = {AppSettings.model_fields[f].alias: d for f, d in LOCAL_DIRS.items()}
    default = local.get(name, field.default)
    if default is None:
        return "-"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def example_values() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.json.example").read_text())["Values"]


def test_the_readme_table_lists_every_setting_of_the_model_with_its_default() -> None:
    table = readme_table()
    model = documented_settings()
    assert sorted(set(table) - DLT_ROWS - set(model)) == [], "in the README, not in shared/settings.py"
    assert sorted(set(model) - set(table)) == [], "in shared/settings.py, not in the README's table"
    wrong = {name: (table[name], documented_default(name, field))
             for name, field in model.items() if table[name] != documented_default(name, field)}
    assert wrong == {}, "README default != model default"


def test_the_example_settings_hold_every_setting_and_nothing_unknown() -> None:
    example = example_values()
    model = documented_settings()
    assert sorted(set(model) - set(example)) == []
    aliases = {f.alias for f in AppSettings.model_fields.values()}
    unknown = set(example) - aliases - CONNECTIONS - HOST_ONLY - DLT_SETTINGS - set(TELEMETRY_SETTINGS)
    unknown = {k for k in unknown if not k.startswith(("SOURCES__", "RUNTIME__"))}  # dlt's own
    assert sorted(unknown) == []
    assert sorted(DLT_SETTINGS - NOT_IN_EXAMPLE - set(example)) == []


def test_the_example_values_are_valid_and_equal_the_defaults() -> None:
    example = example_values()
    parsed = settings(example)  # raises with every bad value named
    differs = {
        name: example[name] for name, field in documented_settings().items()
        if example.get(name) and field.default is not None and getattr(parsed, field_name(name)) != field.default
    }
    assert differs == {}


def test_every_binding_expression_is_a_setting_of_the_model() -> None:
    # `%NAME%` in a trigger or in host.json is resolved by the Functions host from the app settings.
    texts = [(ROOT / "host.json").read_text()] + [p.read_text() for p in (ROOT / "starters").rglob("*.py")]
    bound = {name for text in texts for name in re.findall(r"%([A-Za-z_]+)%", text)}
    assert {"INGESTION_TASK_HUB", "INGESTION_SCHEDULE", "INGESTION_QUEUE", "CONFIG_CONTAINER"} <= bound
    assert sorted(bound - set(documented_settings())) == []


def test_dlt_settings_the_app_relies_on_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()

    def documented(setting: str) -> bool:
        # The README abbreviates dlt's long credential names after the first one as `..._NAME`.
        short = "..." + setting.removeprefix("DESTINATION__FILESYSTEM__CREDENTIALS_")
        return setting in readme or (setting.startswith("DESTINATION__FILESYSTEM__CREDENTIALS__") and short in readme)

    assert sorted(s for s in DLT_SETTINGS | CONNECTIONS if not documented(s)) == []



def test_telemetry_settings_are_in_the_example_and_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert sorted(set(TELEMETRY_SETTINGS) - set(example_values())) == []
    assert sorted(s for s in TELEMETRY_SETTINGS if f"`{s}" not in readme) == []


def field_name(alias: str) -> str:
    return next(name for name, f in AppSettings.model_fields.items() if f.alias == alias)
