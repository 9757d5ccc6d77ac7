"""The lake's dlt destination (`shared.lake.destination`): counted, never timed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dlt.common.destination.reference import Destination
from dlt.common.normalizers.naming import sql_cs_v1, snake_case
from dlt.destinations import filesystem

from shared.lake.destination import FILESYSTEM_TYPE, LakeFilesystem
from shared.lake.layout import LAYOUT


@pytest.mark.parametrize("url", ["/tmp/some/lake/_staging/src/t", "file:///tmp/lake", "az://lake/_staging/src/t",
                                 "hf://datasets/org/name"])
@pytest.mark.parametrize("naming", [None, snake_case.NamingConvention(), sql_cs_v1.NamingConvention()])
def test_capabilities_are_dlts_without_resolving_a_configuration(url: str, naming: Any, monkeypatch: Any) -> None:
    """The same capabilities dlt's filesystem works out from its resolved configuration (the
    providers may say something else: the explicit bucket URL wins), and no resolution."""
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", "hf://datasets/other/one")
    ours = LakeFilesystem(bucket_url=url, layout=LAYOUT)
    theirs = filesystem(bucket_url=url, layout=LAYOUT)
    resolved: list[Any] = []
    configuration = Destination.configuration

    def counting(self: Any, initial_config: Any, accept_partial: bool = False) -> Any:
        resolved.append(type(self).__name__)
        return configuration(self, initial_config, accept_partial)

    monkeypatch.setattr(Destination, "configuration", counting)
    expected = dict(theirs.capabilities(naming=naming))
    assert resolved == ["filesystem"]
    assert dict(ours.capabilities(naming=naming)) == expected
    assert resolved == ["filesystem"]  # none for ours
    assert ours.destination_type == FILESYSTEM_TYPE == theirs.destination_type


def test_a_job_resolves_no_destination_configuration_for_capabilities(tmp_path: Path, monkeypatch: Any) -> None:
    """dlt asks for the capabilities ~17 times per job; only the load step's client configuration
    is resolved (once)."""
    import sqlite3

    from shared.runner import run_job
    from shared.workbook.models import Job

    db = tmp_path / "src.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    monkeypatch.setenv("SOURCES__LOCAL__PATH", str(db))
    calls: list[bool] = []
    configuration = Destination.configuration

    def counting(self: Any, initial_config: Any, accept_partial: bool = False) -> Any:
        if not (initial_config is not None and initial_config.is_resolved()):
            calls.append(accept_partial)
        return configuration(self, initial_config, accept_partial)

    monkeypatch.setattr(Destination, "configuration", counting)
    result = run_job(Job("sqlite", "local", "t", "FULL"), bucket_url=str(tmp_path / "lake"))
    assert (result.status, result.rows_processed) == ("success", 2), result.error
    assert calls == [False]  # the load client's; no partial one for the capabilities
