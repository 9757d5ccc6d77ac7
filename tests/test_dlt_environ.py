"""dlt's own configuration through `FastEnvironProvider`: the same answers, no `/run/secrets` probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import EnvironProvider
from dlt.common.configuration.providers import environ as dlt_environ
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.typing import TSecretStrValue

from shared import dlt_environ as fast
from shared.runner import run_job
from shared.workbook.models import Job

HINTS = [str, int, TSecretStrValue, ConnectionStringCredentials, Any]


@pytest.mark.parametrize("hint", HINTS)
def test_answers_as_dlt_does(hint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__FILESYSTEM__CREDENTIALS__PASSWORD", "s3cret")
    for args in [("password", "destination", "filesystem", "credentials"), ("password", None), ("missing", "x")]:
        key, *sections = args
        pipeline, *sections = sections if sections and sections[0] is None else [None, *sections]
        assert fast.FastEnvironProvider().get_value(key, hint, pipeline, *sections) == \
            EnvironProvider().get_value(key, hint, pipeline, *sections)


def test_reads_secret_files_where_the_folder_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "destination--password").write_text("from-a-file\n")
    monkeypatch.setattr(dlt_environ, "SECRET_STORAGE_PATH", str(tmp_path / "%s"))
    monkeypatch.setattr(fast, "secret_files", lambda: True)
    monkeypatch.delenv("DESTINATION__PASSWORD", raising=False)
    value, key = fast.FastEnvironProvider().get_value("password", TSecretStrValue, None, "destination")
    assert (value, key) == ("from-a-file\n", "DESTINATION__PASSWORD")


def test_a_job_resolves_dlt_config_without_probing_secret_files(
    pg_engine: sa.Engine, unique_name: Callable[[str], str], pg_secrets: Any, lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("environ")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} AS SELECT g AS id FROM generate_series(1, 10) g"))
    Container()[PluggableRunContext]  # made with dlt's chain first (its runtime settings are resolved then)
    probes: list[str] = []
    real_isdir = dlt_environ.isdir
    monkeypatch.setattr(dlt_environ, "isdir", lambda path: probes.append(path) or real_isdir(path))
    try:
        pg_secrets("erp")
        result = run_job(Job("postgresql", "erp", name, "FULL"), bucket_url=str(lake))
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    assert result.status == "success", result.error
    providers = Container()[PluggableRunContext].providers
    assert type(providers[EnvironProvider().name]) is fast.FastEnvironProvider
    # dlt's provider probed /run/secrets for every lookup of a secret-typed field (~150 per job).
    assert probes == [] or fast.secret_files()
