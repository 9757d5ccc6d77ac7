"""Which files of the repository the deployed package holds, by `.funcignore`.

Two readings of the same file, because the tools that deploy the app disagree:
- gitignore syntax (`pathspec.GitIgnoreSpec`): a pattern without a slash matches at any depth,
  so `lake` would also drop `shared/lake/`;
- Azure Functions Core Tools (`func azure functionapp publish`), which ports codemix's
  gitignore-parser (`src/Azure.Functions.Cli/Common/GitIgnoreParser.cs`): a leading `/` is
  dropped, each pattern is a regex anchored at the start of the path but not at its end (`tests`
  also drops a top-level `tests_x.py`, never `shared/tests/`), `*` is `[^/]+` (at least one
  character), `**` is `.+`; `!` lines re-include. Core Tools also always skips the `.git` and
  `.vscode` folders and files named `.funcignore`, `.gitignore`, `local.settings.json` and
  `project.lock.json` (`FileSystemHelpers.GetLocalFiles`).
A file ships when the reading at hand accepts it; `.funcignore` is written so both agree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pathspec

CORE_TOOLS_SKIPPED_DIRS = (".git", ".vscode")
CORE_TOOLS_SKIPPED_FILES = (".funcignore", ".gitignore", "local.settings.json", "project.lock.json")

Denies = Callable[[str], bool]
"""Takes a file's path relative to the app root, with `/` separators; True when it is left out."""


def patterns(root: Path) -> list[str]:
    """The lines of `root/.funcignore`."""
    return (root / ".funcignore").read_text(encoding="utf-8").splitlines()


def gitignore_denies(lines: Iterable[str]) -> Denies:
    """The gitignore reading."""
    return pathspec.GitIgnoreSpec.from_lines(lines).match_file


def _core_tools_regex(pattern: str) -> str:
    escaped = re.sub(r"[\-\[\]/{}()+?.\\^$|]", lambda m: "\\" + m.group(0), pattern)
    return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")


def core_tools_denies(lines: Iterable[str]) -> Denies:
    """The Core Tools reading, including the folders and file names it always skips."""
    positive: list[str] = []
    negative: list[str] = []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        target = negative if line.startswith("!") else positive
        line = line[1:] if line.startswith("!") else line
        target.append(line[1:] if line.startswith("/") else line)

    def regex(items: list[str]) -> re.Pattern[str]:
        if not items:
            return re.compile("$^")
        return re.compile("^((" + ")|(".join(_core_tools_regex(i) for i in sorted(items)) + "))")

    deny, allow = regex(positive), regex(negative)

    def denies(path: str) -> bool:
        parts = path.split("/")
        if any(part in CORE_TOOLS_SKIPPED_DIRS for part in parts[:-1]) or parts[-1] in CORE_TOOLS_SKIPPED_FILES:
            return True
        return not (allow.match(path) or not deny.match(path))

    return denies


def tracked_files(root: Path) -> list[str]:
    """The repository's files as a fresh clone has them (relative, `/` separators)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return sorted(name for name in out.decode().split("\0") if name and (root / name).is_file())


def shipped(root: Path, files: Iterable[str], readings: Iterable[Denies]) -> list[str]:
    """The files every reading ships."""
    readings = list(readings)
    return [f for f in files if not any(denies(f) for denies in readings)]


def copy_shipped(root: Path, dest: Path) -> list[str]:
    """Copy what the deployed package holds under both readings (the smaller package) to `dest`."""
    lines = patterns(root)
    files = shipped(root, tracked_files(root), (gitignore_denies(lines), core_tools_denies(lines)))
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return files
