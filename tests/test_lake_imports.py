"""`shared.lake` keeps to what its docstring allows: of the library, only the storage settings,
the app settings and redaction (the runner, the steps and the Functions modules call it, never the reverse)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

ALLOWED = ("shared.lake", "shared.storage", "shared.redaction", "shared.settings")


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_lake_imports_only_what_its_docstring_allows() -> None:
    files = sorted((ROOT / "shared" / "lake").glob("*.py"))
    assert len(files) >= 8
    outside = {
        f"{path.name}: {module}"
        for path in files
        for module in imported_modules(path.read_text(encoding="utf-8"))
        if module.split(".")[0] in ("shared", "activities", "orchestrations", "starters", "ingest", "function_app")
        and not module.startswith(ALLOWED)
    }
    assert outside == set()
