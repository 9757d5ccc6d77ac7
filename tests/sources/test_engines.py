"""The engine the jobs of a database share (`shared.sources.engines`): counted, never timed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from shared.runner import run_job
from shared.sources import engines
from shared.workbook.models import Job

DDL = "CREATE TABLE {name} (id int PRIMARY KEY, name text); INSERT INTO {name} SELECT g, 'n' || g FROM generate_series(1, 5) g"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of engines made, dialect set-ups, and connections opened and closed through them."""
    engines.clear()
    counts = {"engines": 0, "setups": 0, "opened": 0, "closed": 0}
    create = sa.create_engine

    def counting_create(*args: Any, **kwargs: Any) -> sa.Engine:
        engine = create(*args, **kwargs)
        counts["engines"] += 1
        initialize = engine.dialect.initialize

        def counting_initialize(connection: Any) -> None:
            counts["setups"] += 1
            initialize(connection)

        engine.dialect.initialize = counting_initialize  # type: ignore[method-assign]
        sa.event.listen(engine, "connect", lambda *a: counts.__setitem__("opened", counts["opened"] + 1))
        sa.event.listen(engine.pool, "close", lambda *a: counts.__setitem__("closed", counts["closed"] + 1))
        return engine

    monkeypatch.setattr(engines.sa, "create_engine", counting_create)
    yield counts
    engines.clear()


def test_jobs_of_a_database_share_one_engine_without_a_pool(
    pg_engine: sa.Engine, tables: Any, unique_name: Any, pg_secrets: Any, lake: Path, counted: dict[str, int],
) -> None:
    pg_secrets("shared_pg")
    names = [tables(pg_engine, unique_name(f"shared_{i}"), DDL) for i in range(3)]
    for name in names:
        result = run_job(Job("postgresql", "shared_pg", name, "FULL"), bucket_url=str(lake))
        assert (result.status, result.rows_processed) == ("success", 5), result.error
    assert counted["engines"] == 1  # one engine for the three jobs...
    assert counted["setups"] == 1  # ...whose dialect set-up queries ran once
    assert counted["opened"] == 3  # one connection per job (reflection, estimate)...
    assert counted["closed"] == 3  # ...closed when the job ended
    (engine,) = engines._engines.values()
    assert isinstance(engine.pool, NullPool)  # no pool: no lock a killed job could leave held


def test_a_job_killed_during_reflection_closes_its_connection(
    pg_engine: sa.Engine, tables: Any, unique_name: Any, pg_secrets: Any, lake: Path, counted: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local runtime's simulated kill is a BaseException raised at a Python call: the job's
    connection is closed on the way out, and the next job on the database runs."""
    import shared.sources.base as base

    class Killed(BaseException):
        pass

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed()

    pg_secrets("shared_pg")
    name = tables(pg_engine, unique_name("shared_kill"), DDL)
    job = Job("postgresql", "shared_pg", name, "FULL")
    reflect = base.reflect_table
    monkeypatch.setattr(base, "reflect_table", killed)
    with pytest.raises(Killed):
        run_job(job, bucket_url=str(lake))
    assert counted["opened"] == counted["closed"] == 1
    monkeypatch.setattr(base, "reflect_table", reflect)
    result = run_job(job, bucket_url=str(lake))
    assert (result.status, result.rows_processed) == ("success", 5), result.error
    assert counted["opened"] == counted["closed"] == 2 and counted["engines"] == 1


def test_a_catalog_block_abandoned_by_a_kill_ends_quietly_after_dispose(
    pg_engine: sa.Engine, pg_secrets: Any, counted: dict[str, int],
) -> None:
    """A simulated kill can leave `catalog()`'s generator suspended (the exception lands in the
    context manager's own exit); the runner's `dispose` closes the connection, and the generator,
    closed later by the garbage collector, must not fail on it (seen in CI as an "Exception
    ignored in: <generator object SqlSource.catalog>")."""
    from shared.secrets import resolve_source_secrets
    from shared.sources import make_source

    pg_secrets("shared_pg")
    job = Job("postgresql", "shared_pg", "pg_class", "FULL")
    source = make_source(job, resolve_source_secrets(job.source_name, job.source_type))
    block = source.catalog()
    conn = block.__enter__()  # entered, never exited: what the kill leaves
    assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    source.dispose()
    assert conn.closed and counted["opened"] == counted["closed"] == 1
    block.gen.close()  # what the collector does to the suspended generator: no exception
