"""The deployed package holds the app and nothing of its local host, bench, tests or tools.

`.funcignore` is read the two ways the deploying tools read it (`funcignore.py`); both must ship
exactly the app's folders and files. That the package still loads with every function in the
real worker is `test_worker_loads_app.py`, which runs on such a copy. Whether deployed code
imports the local host is checked here statically, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.worker.funcignore import (core_tools_denies, gitignore_denies, patterns, shipped,
                                     tracked_files)

APP = {"function_app.py", "host.json", "requirements.txt", "activities", "orchestrations", "starters", "shared",
       "config"}
"""Top-level files and folders of the deployed package."""
LOCAL_HOST = ("ingest", "bench", "tests", "scripts")
"""Packages that only run on a developer's machine or in CI."""
READINGS = {"gitignore": gitignore_denies, "core tools": core_tools_denies}
LOCAL_LEFTOVERS = ("lake/shop/orders/2026/01/01/a.parquet", "logs/ingestion.log", "metrics/m.json", "audit/a.json",
                   "demo/demo.sqlite", ".ingestion/state/x.json", ".venv/bin/python", ".venv-worker/bin/python",
                   "node_modules/azurite/package.json", "shared/__pycache__/steps.cpython-311.pyc",
                   "__pycache__/function_app.cpython-311.pyc", ".pytest_cache/v/cache/lastfailed",
                   "local.settings.json", ".github/workflows/ci.yml")
"""What a working copy holds beside the tracked files after local runs."""


@pytest.mark.parametrize("reading", READINGS)
def test_funcignore_ships_exactly_the_app(reading: str) -> None:
    files = tracked_files(ROOT)
    app_files = [f for f in files if f.split("/")[0] in APP]
    assert {f.split("/")[0] for f in app_files} == APP
    assert shipped(ROOT, files, [READINGS[reading](patterns(ROOT))]) == app_files


@pytest.mark.parametrize("reading", READINGS)
def test_funcignore_leaves_out_the_output_of_local_runs(reading: str) -> None:
    denies = READINGS[reading](patterns(ROOT))
    assert [path for path in LOCAL_LEFTOVERS if not denies(path)] == []


def test_the_two_readings_differ_where_funcignore_must_anchor() -> None:
    """Why top-level entries start with "/": unanchored, gitignore drops app folders of that name."""
    assert gitignore_denies(["lake"])("shared/lake/protocol.py")
    assert not core_tools_denies(["lake"])("shared/lake/protocol.py")
    assert not gitignore_denies(["/lake"])("shared/lake/protocol.py")
    assert core_tools_denies(["/lake"])("lake/x.parquet") and gitignore_denies(["/lake"])("lake/x.parquet")
    assert not core_tools_denies([".venv*"])(".venv/bin/python")  # Core Tools' `*` needs a character
    assert core_tools_denies(["tests"])("tests_extra.py")  # a prefix, not a name


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_deployed_modules_never_import_the_local_host() -> None:
    modules = [ROOT / "function_app.py", *(p for part in ("shared", "orchestrations", "activities", "starters")
                                             for p in sorted((ROOT / part).rglob("*.py")))]
    assert len(modules) > 20
    offending = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & set(LOCAL_HOST)) for p in modules}
    assert {name: roots for name, roots in offending.items() if roots} == {}


def test_the_import_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ingest.durable import LocalDurableRuntime\n    import tests.conftest\n")
    assert _imported_roots(module) == {"ingest", "tests"}
