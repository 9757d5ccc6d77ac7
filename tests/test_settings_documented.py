"""Every app setting the code reads is in `local.settings.json.example` and in the README."""

from __future__ import annotations

import json
import re

from shared.retry import DEFAULT_POLICIES
from tests.conftest import ROOT

CODE_DIRS = ("shared", "orchestrations", "activities", "starters")
SETTING = re.compile(
    r"[\"'%]((?:INGESTION|RETRY|CIRCUIT_BREAKER|HEALTH)_[A-Z_]+[A-Z]|CONFIG_CONTAINER|AZURE_KEY_VAULT_URL"
    r"|AzureWebJobsStorage|DLT_PROJECT_DIR|RUNTIME__DLTHUB_TELEMETRY|DESTINATION__FILESYSTEM__[A-Z_]+[A-Z]"
    r"|APPLICATIONINSIGHTS_CONNECTION_STRING|OTEL_[A-Z_]+[A-Z])[\"'%]"
)
NOT_IN_EXAMPLE = {
    # Alternatives to the account key the example uses. dlt reads a blank value as a value, so
    # they must be absent rather than empty; Azurite has no SAS to give and its plain-http
    # endpoint cannot be an account host (adlfs builds https URLs).
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_SAS_TOKEN",
    "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_ACCOUNT_HOST",
}


def settings_read_by_code() -> set[str]:
    found: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            found.update(SETTING.findall(path.read_text(encoding="utf-8")))
    found.update(SETTING.findall((ROOT / "host.json").read_text()))
    # Built from a prefix in shared/retry.py.
    for kind in DEFAULT_POLICIES:
        found.update({f"RETRY_{kind.upper()}_MAX_ATTEMPTS", f"RETRY_{kind.upper()}_FIRST_INTERVAL_MS"})
    # Built from a prefix in shared/preflight.py.
    found.update({"DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_ACCOUNT_NAME",
                  "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_ACCOUNT_KEY",
                  "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_SAS_TOKEN",
                  "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_ACCOUNT_HOST"})
    found.discard("DESTINATION__FILESYSTEM__CREDENTIALS__")
    # Test-only switches that turn the lake protocol's safety off (see tests/test_lake_crash.py):
    # deliberately undocumented.
    found -= {"INGESTION_UNSAFE_PUBLISH", "INGESTION_UNSAFE_REDELIVERY"}
    return found


def test_the_scan_finds_the_settings() -> None:
    found = settings_read_by_code()
    assert {"INGESTION_STORAGE", "INGESTION_SCHEDULE", "INGESTION_QUEUE", "CONFIG_CONTAINER", "RETRY_JITTER",
            "CIRCUIT_BREAKER_TIMEOUT_SECONDS", "HEALTH_THROUGHPUT_FLOOR", "INGESTION_TASK_HUB"} <= found


def test_every_setting_is_in_the_example_settings() -> None:
    example = set(json.loads((ROOT / "local.settings.json.example").read_text())["Values"])
    missing = sorted(settings_read_by_code() - NOT_IN_EXAMPLE - example)
    assert missing == []


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()

    def documented(setting: str) -> bool:
        # The README abbreviates dlt's long credential names after the first one as `..._NAME`.
        short = "..." + setting.removeprefix("DESTINATION__FILESYSTEM__CREDENTIALS_")
        return setting in readme or (setting.startswith("DESTINATION__FILESYSTEM__CREDENTIALS__") and short in readme)

    assert sorted(s for s in settings_read_by_code() if not documented(s)) == []
