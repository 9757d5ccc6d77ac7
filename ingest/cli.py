"""Command line: `python -m ingest {validate,run,template,demo,history,report,breakers}`.

Exit codes: 0 all good; 1 at least one job failed; 2 the workbook (or the command line) is invalid,
or the lake or the service's storage failed (unreachable, full): then one line names it, and the
metrics are written locally when their storage is the one that failed.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import shutil
import sqlite3
import sys
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, NoReturn, Optional, Union

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shared.contract import REFUSALS, SOURCE_CHECK, Refusal, RunOutput, StartRequest, read_refusal
from shared.redaction import clip, first_line, install_log_redaction, redact
from shared.workbook.models import Job, Plan, PlanError

if TYPE_CHECKING:
    from shared.cpu_slots import CpuSlots

EXIT_OK, EXIT_JOB_FAILED, EXIT_INVALID = 0, 1, 2

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Metadata-driven ingestion: workbook -> dlt -> Parquet lake.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _OneLineFormatter(logging.Formatter):
    """Console records stay one line: tracebacks (dlt logs its load retries with one) go to the log files only."""

    def format(self, record: logging.LogRecord) -> str:
        text = logging.Formatter.format(self, logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _without_traceback(record: logging.LogRecord) -> bool:
    """Keep a dlt record on one line: no traceback, not even one quoted in its message."""
    text = record.getMessage().split("Traceback (most recent call last)")[0].strip()
    record.msg, record.args = clip(first_line(text)), None
    record.exc_info, record.exc_text = None, None
    return True


def _setup_logging(verbose: bool, *, files: bool = True) -> None:
    """Console at WARNING (INFO with -v); with `files`, also logs/ at INFO: main, per source, errors."""
    from shared.logs import FORMAT, configure_file_logging, install_job_context
    from shared.settings import AppSettings

    install_log_redaction()
    install_job_context()  # FORMAT names the job fields
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(_OneLineFormatter(FORMAT))
    console.addFilter(_NoRefusalTraceback())
    logging.getLogger().addHandler(console)
    # dlt logs to stderr through its own handler (its logger does not propagate), with a traceback
    # for every load-job retry; it takes the first handler it finds, so give it one that drops them.
    dlt_logger = logging.getLogger("dlt")
    if not dlt_logger.handlers:
        dlt_console = logging.StreamHandler(sys.stderr)
        dlt_console.addFilter(_without_traceback)
        dlt_logger.addHandler(dlt_console)
    if files:
        configure_file_logging(AppSettings.from_env().logs_dir)


def _load_plan_or_exit(config: Union[str, Path]) -> Plan:
    """Read (from a file or a blob) and validate the workbook, or print every problem and exit 2."""
    from shared.plan import load_plan
    from shared.settings import AppSettings
    from shared.steps import fetch_workbook
    from shared.storage import StorageUnreachableError, storage_account

    try:
        source, label = fetch_workbook(str(config), storage_account(), AppSettings.from_env().config_container)
        plan = load_plan(source, source_label=label)
    except StorageUnreachableError as exc:  # one line naming the endpoint, exit 2, like the lake pre-flight
        from rich.markup import escape

        err.print(f"[bold red]cannot read the workbook:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    except PlanError as exc:
        err.print(f"[bold red]{len(exc.problems)} problem(s) in {config}:[/]", highlight=False)
        for problem in exc.problems:
            err.print(f"  {redact(problem)}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    for warning in plan.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return plan


@app.command()
def validate(
    config: str = typer.Argument(..., help="The workbook: a .xlsx file, or az://<container>/<name>.xlsx."),
    check_sources: bool = typer.Option(
        False, "--check-sources",
        help="Also connect to every source of the enabled jobs and check that tables, schemas and columns exist "
             "and that last_watermark fits its column (about 5 s at most per unreachable source).",
    ),
) -> None:
    """Check a workbook; exit 0 when valid, 2 with every problem listed on stderr. Writes nothing.
    Without --check-sources no source is contacted."""
    _setup_logging(False, files=False)
    plan = _load_plan_or_exit(config)
    enabled = plan.enabled_jobs()
    checked = _check_sources_or_exit(plan, enabled, config) if check_sources else ""
    out.print(f"[green]OK[/]: {len(plan.jobs)} job(s), {len(enabled)} enabled, in {config}{checked}", highlight=False)
    _print_lake_folders(plan.jobs)


def _print_lake_folders(jobs: list[Job]) -> None:
    """Where each job lands when its lake folder is not simply its table name."""
    from shared.naming import lake_table_name

    for job in jobs:
        folder = lake_table_name(job.table_name)
        if folder != job.table_name:
            out.print(f"  {job.job_id} -> lake folder {job.source_name}/{folder}", highlight=False, markup=False)


def _check_sources_or_exit(plan: Plan, jobs: list[Job], config: str) -> str:
    """Run the source check; print every problem and exit 2, or return a summary for the OK line."""
    from shared.source_check import check_sources

    result = check_sources(plan, jobs)
    for note in result.notes:
        err.print(f"note: {redact(note)}", highlight=False, markup=False)
    lines = result.problems + result.unreachable
    if lines:
        err.print(f"[bold red]{len(lines)} problem(s) in {config}[/] ({result.sources} source(s) checked in "
                  f"{result.seconds:.1f} s):", highlight=False)
        for line in lines:
            err.print(f"  {redact(line)}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    return f"; {result.sources} source(s), {result.jobs} job(s) checked against the sources in {result.seconds:.1f} s"


@app.command()
def template(path: Path = typer.Argument(..., help="Where to write the empty workbook (.xlsx).")) -> None:
    """Write an empty workbook with every column, header help and dropdowns."""
    from shared.workbook.template import write_template

    write_template(path)
    out.print(f"wrote {path}")


def _print_job(job: dict) -> None:
    if job["status"] == "success":
        drift = " (schema changed)" if (job.get("extra") or {}).get("schema_drift") else ""
        retries = f" after {job['retry_count']} retr{'y' if job['retry_count'] == 1 else 'ies'}" if job["retry_count"] else ""
        out.print(
            f"[green]✔[/] {job['job_id']:<40} {job['load_type']:<11} {job['rows_processed']:>10,} rows "
            f"{job['duration_seconds']:>8.2f} s {job['rows_per_second']:>12,.0f} rows/s{retries}{drift}",
            highlight=False,
        )
    else:
        out.print(f"✘ {job['job_id']:<40} {job['status']} (attempts: {job['retry_count'] + 1}): {job['error']}",
                  highlight=False, markup=False, style="red")


class _LiveProgress:
    """Turns the orchestration's custom status (and its batches') into a progress bar.

    Reads the structured counts the orchestrator publishes (`batches` in the run's status,
    `batch` in each batch's): see `orchestrations.progress.combined_counts`. Off a terminal the
    bar shows once the plan is made: a refused run prints only its refusal.
    """

    def __init__(self, progress: Progress, parent_id: str) -> None:
        self.progress = progress
        self.parent_id = parent_id
        self.task = progress.add_task("planning", total=None)
        self.shown = threading.Lock()
        if progress.console.is_terminal:
            self.show()
        self.batches: dict[str, dict] = {}
        self.parent: dict = {}
        self.counts: dict = {}
        """The last counts shown: `{"phase", "total", "done", "failed", "skipped", "running"}`."""

    def __call__(self, instance_id: str, status: object) -> None:
        from orchestrations.progress import combined_counts

        if not isinstance(status, dict):
            return
        if instance_id == self.parent_id:
            self.parent = status
        else:
            self.batches[instance_id] = status
        self.counts = counts = combined_counts(self.parent, self.batches)
        if counts["phase"] != "planning":
            self.show()
        self.progress.update(
            self.task, total=counts["total"], completed=counts["done"],
            description=f"{counts['phase']}: {counts['failed']} failed, {counts['running']} running",
        )

    def show(self) -> None:
        """Start showing the bar (once)."""
        if self.shown.acquire(blocking=False):
            self.progress.start()

    def close(self) -> None:
        """Stop the bar if it was shown."""
        if self.shown.locked():
            self.progress.stop()


def _read_output(location: str) -> str:
    """A run output: a local file, or `<container>/<blob>` on the service's storage account."""
    if Path(location).is_file():
        return Path(location).read_text(encoding="utf-8")
    from shared.storage import split_blob_path, storage_account

    account = storage_account()
    if account is None:
        raise FileNotFoundError(location)
    container, name = split_blob_path(location)
    return account.blob_service().get_blob_client(container, name).download_blob().readall().decode("utf-8")


def _admit_or_exit(config: str) -> None:
    """A blob workbook must be reachable (one quick call, as the Functions starters check before
    they start a run): a dead storage account is one line and exit 2 in seconds, not a failed run."""
    from shared.settings import AppSettings
    from shared.steps import is_blob_path, workbook_blob_size
    from shared.storage import StorageUnreachableError, storage_account
    from shared.workbook_ref import WorkbookRefError, canonical_blob

    account = storage_account()
    if account is None or not is_blob_path(config, account):
        return
    try:
        workbook_blob_size(canonical_blob(config, AppSettings.from_env().config_container), account)
    except WorkbookRefError:
        return  # load_plan names the problem
    except StorageUnreachableError as exc:
        _print_refusal(Refusal("storage", [str(exc)]), config, None)
        raise typer.Exit(EXIT_INVALID)


def _print_refusal(refusal: Refusal, config: str, only: Optional[List[str]]) -> None:
    """What the orchestration's refusal of a run looks like on the console."""
    from rich.markup import escape

    if refusal.kind == "workbook":
        err.print(f"[bold red]{len(refusal.lines)} problem(s) in {config}:[/]", highlight=False)
        for problem in refusal.lines:
            err.print(f"  {redact(problem)}", highlight=False, markup=False)
    elif refusal.kind == "no_match":
        err.print(f"[red]no enabled job matches --only {' '.join(only or [])}[/]", highlight=False)
    elif refusal.kind == "storage":  # one line naming the endpoint, exit 2, like the lake pre-flight
        err.print(f"[bold red]cannot read the workbook:[/] {escape(refusal.lines[0])}", highlight=False)
    else:
        err.print(f"[bold red]lake pre-flight failed:[/] {refusal.lines[0]}", highlight=False)


class _NoRefusalTraceback(logging.Filter):
    """The console leaves out an activity's log of a refusal: the refusal itself is printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.name == "activities" and type(error).__name__ in REFUSALS)


def run_orchestration(
    config: str, *, only: Optional[List[str]] = None, metrics_out: Optional[Path] = None, max_parallel: Optional[int] = None
) -> int:
    """Run a workbook through the real orchestrator on the local durable runtime; return the exit code.

    The orchestration validates the workbook, checks `only` and the lake (once, in `load_plan`);
    a refusal prints as `validate` would and exits 2. The summary comes from its output; the job
    lines from the metrics document it names (which `--metrics-out` copies).
    """
    with _imports_without_gc():
        from function_app import app as functions_app
        from orchestrations import ORCHESTRATOR
        from ingest.durable import LocalDurableRuntime
        from starters.functions import instance_id_for
        # What the plan activity imports (dlt, SQLAlchemy, the sources), here rather than in its thread.
        import shared.plan  # noqa: F401
        import shared.source_check  # noqa: F401

    _admit_or_exit(config)
    local = Path(config)
    request = StartRequest(config=str(local.resolve()) if local.is_file() else config, only=list(only or []),
                           dry_run=False)
    instance_id = f"{instance_id_for(local.name)}-{uuid.uuid4().hex[:8]}"
    bar = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=out, transient=True,
    )
    live = _LiveProgress(bar, instance_id)
    slots = _cpu_slots(max_parallel)
    try:
        # As many activities as CPU slots: jobs and their parallel read slices share them.
        runtime = LocalDurableRuntime(functions_app, max_parallel=slots.size, on_status=live)
        try:
            result = runtime.run(ORCHESTRATOR, request, instance_id=instance_id)
        finally:
            runtime.close()
    finally:
        live.close()
    logging.getLogger(__name__).info("CPU slots: %d, at most %d in use at once (jobs and their read slices)",
                                     slots.size, slots.high_water)
    if not result.succeeded:
        refusal = read_refusal(result.error)
        if refusal:
            _print_refusal(refusal, config, only)
            return EXIT_INVALID
        err.print(f"[red]run {instance_id} failed:[/] {redact(result.error)}", highlight=False)
        return EXIT_JOB_FAILED
    output: RunOutput = result.output
    for warning in output["warnings"]:
        if not warning.startswith(SOURCE_CHECK):  # the source check logged these as it ran
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    text = _read_output(output["metrics_path"])
    metrics = json.loads(text)
    for job in metrics["jobs"]:
        _print_job(job)
    if metrics_out:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        metrics_out.write_text(text, encoding="utf-8")
    summary = output["summary"]
    out.print(
        f"{summary['successful']} succeeded, {summary['failed']} failed, {summary['skipped']} skipped; "
        f"{summary['total_rows']:,} rows; health {summary['health_score']}; "
        f"metrics: {metrics_out or output['metrics_path']}; audit: {output['audit_path']}",
        highlight=False,
    )
    for source, reason in (output.get("open_circuits") or {}).items():
        out.print(f"[yellow]circuit open for {source}:[/] {reason}", highlight=False)
    if _report_infrastructure_failure(metrics["jobs"], str(metrics_out or output["metrics_path"]), output["metrics_path"]):
        return EXIT_INVALID
    return EXIT_OK if summary["successful"] == summary["total_jobs"] else EXIT_JOB_FAILED


def _cpu_slots(max_parallel: Optional[int]) -> CpuSlots:
    """This process's CPU slot budget: `--max-parallel` slots, else `INGESTION_CPU_SLOTS` or the
    usable cores (an unusable setting is reported by the run's plan step, not here)."""
    from shared.cpu_slots import configure, cpu_slots, usable_cores
    from shared.settings import SettingsError

    try:
        configure(max_parallel)
        return cpu_slots()
    except SettingsError:
        configure(usable_cores())
        return cpu_slots()


def _report_infrastructure_failure(jobs: list[dict], shown_path: str, metrics_path: str) -> bool:
    """One stderr line when a job failed because of the lake or the service's storage (not the job)."""
    from shared.errors import LAKE, STORAGE
    from shared.storage import storage_account

    failed = [j for j in jobs if j["status"] == "failed" and (j.get("extra") or {}).get("error_class") in (LAKE, STORAGE)]
    if not failed:
        return False
    fallback = storage_account() is not None and Path(metrics_path).is_file()
    where = f"metrics written locally to {Path(shown_path).resolve()}" if fallback else f"metrics: {shown_path}"
    err.print(f"{redact(failed[0]['error'])}; {len(failed)} job(s) failed this way; {where}",
              highlight=False, markup=False, style="bold red")
    return True


@app.command()
def run(
    config: str = typer.Argument(..., help="The workbook: a .xlsx file, or az://<container>/<name>.xlsx."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only SOURCE or SOURCE.TABLE (repeatable)."),
    metrics_out: Optional[Path] = typer.Option(None, "--metrics-out", help="Metrics JSON path (default metrics/metrics_<time>_<run>.json)."),
    lake: Optional[str] = typer.Option(None, "--lake", help="Lake root (folder, az:// or abfss://); default: DESTINATION__FILESYSTEM__BUCKET_URL or ./lake."),
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", min=1, help="CPU slots: jobs and their parallel read slices running at once (default: INGESTION_CPU_SLOTS or the usable cores)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also log INFO lines to the console."),
) -> None:
    """Run the workbook's enabled jobs through the orchestration; exit 0 if all succeeded, 1 if any
    failed or was skipped, 2 if the plan is invalid (nothing is loaded then)."""
    _setup_logging(verbose)
    if lake:
        os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = lake
    raise typer.Exit(run_orchestration(config, only=only, metrics_out=metrics_out, max_parallel=max_parallel))


@app.command()
def demo(
    directory: Path = typer.Option(Path("demo"), "--dir", help="Scratch folder for the database, workbook and lake."),
) -> None:
    """Create a sample SQLite shop and workbook, ingest them into a local lake, print the Parquet paths."""
    from shared.workbook.template import DEMO_ROWS, write_workbook
    from ingest.demo import DEMO_DB_FILE, DEMO_SOURCE, DEMO_WORKBOOK_FILE, create_demo_database
    from shared.secrets import env_var_name

    directory = directory.resolve()
    # A demo starts from scratch: an earlier demo's lake would hold the incremental cursor.
    for sub in ("lake", ".ingestion", "metrics", "audit", "logs"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    # Everything the demo makes stays in its folder.
    for setting, sub in (("INGESTION_STATE_DIR", ".ingestion"), ("INGESTION_METRICS_DIR", "metrics"),
                         ("INGESTION_AUDIT_DIR", "audit"), ("INGESTION_LOGS_DIR", "logs")):
        os.environ[setting] = str(directory / sub)
    _setup_logging(False)
    db = create_demo_database(directory / DEMO_DB_FILE)
    workbook = directory / DEMO_WORKBOOK_FILE
    write_workbook(workbook, DEMO_ROWS)
    lake = directory / "lake"
    os.environ[env_var_name(DEMO_SOURCE, "path")] = str(db)
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = str(lake)
    out.print(f"demo database: {db}\ndemo workbook: {workbook}\n", highlight=False)
    code = run_orchestration(str(workbook), metrics_out=directory / "metrics.json")
    files = sorted(lake.rglob("*.parquet"))
    out.print(f"\n{len(files)} Parquet file(s) in {lake}:", highlight=False)
    for path in files:
        out.print(f"  {path}", highlight=False)
    raise typer.Exit(code)


@app.command()
def history(
    last: int = typer.Option(10, "--last", "-n", min=1, max=1000, help="How many runs (newest first)."),
) -> None:
    """One line per run, newest first: when, run id, jobs ok/failed/skipped, rows, wall-clock
    duration, health. Read from the metrics store: INGESTION_CONTAINER's metadata/ when a storage
    account is configured, else INGESTION_METRICS_DIR."""
    from shared.history import history as read_history
    from shared.storage import StorageUnreachableError

    _setup_logging(False, files=False)
    try:
        runs, where = read_history(last)
    except StorageUnreachableError as exc:
        err.print(str(exc), highlight=False, markup=False, style="bold red")
        raise typer.Exit(EXIT_INVALID)
    if not runs:
        out.print(f"no runs in {where}", highlight=False, markup=False)
        return
    for run_summary in runs:
        out.print(run_summary.line(), highlight=False, markup=False)


@app.command()
def report(
    metrics: Optional[Path] = typer.Argument(None, help="A metrics JSON file (default: the newest run of the metrics store)."),
    last: int = typer.Option(30, "--last", "-n", min=1, max=1000, help="Runs the trend covers, this one included."),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="The HTML file to write."),
) -> None:
    """One self-contained HTML page of a run: summary and health, a sortable job table, a timeline of
    every attempt and retry wait, rows/s per job, and the trend of the last runs. Without a file, the
    newest run of the metrics store (as `history` reads it) is reported."""
    from shared.report import render_report
    from shared.report.store import from_file, latest, store_from_env
    from shared.storage import StorageUnreachableError

    _setup_logging(False, files=False)
    try:
        if metrics is not None:
            found = from_file(metrics, last)
        else:
            store = store_from_env()
            found = latest(store, last)
            if found is None:
                err.print(f"no runs in {store.where}", highlight=False, markup=False, style="bold red")
                raise typer.Exit(EXIT_INVALID)
    except (OSError, ValueError, StorageUnreachableError) as exc:
        err.print(redact(str(exc))[:300], highlight=False, markup=False, style="bold red")
        raise typer.Exit(EXIT_INVALID)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_report(found.metrics, found.trend), encoding="utf-8")
    out.print(f"report of run {found.metrics.get('run_id')}: {output}", highlight=False, markup=False)


breakers_app = typer.Typer(no_args_is_help=True, help="Circuit breakers: list them, reset one.")
app.add_typer(breakers_app, name="breakers")


def _breaker_store_or_exit() -> object:
    from shared.breakers import TableStoreError
    from shared.breakers.admin import store_from_env

    try:
        return store_from_env()
    except TableStoreError as exc:
        err.print(str(exc), highlight=False, markup=False, style="bold red")
        raise typer.Exit(EXIT_INVALID)


@breakers_app.command("list")
def breakers_list() -> None:
    """Every breaker: source, state, consecutive (total) failures, opened_at, last error (redacted).
    Table Storage (INGESTION_BREAKER_TABLE) when a storage account is configured, else
    <INGESTION_STATE_DIR>/breakers.sqlite."""
    from shared.breakers import TableStoreError
    from shared.breakers.admin import describe, list_states, state_view

    _setup_logging(False, files=False)
    store = _breaker_store_or_exit()
    try:
        states = list_states(store)  # type: ignore[arg-type]
    except (TableStoreError, sqlite3.Error) as exc:
        err.print(str(exc), highlight=False, markup=False, style="bold red")
        raise typer.Exit(EXIT_INVALID)
    if not states:
        out.print(f"no breakers in {describe(store)}", highlight=False, markup=False)  # type: ignore[arg-type]
        return
    out.print(f"{'SOURCE':<30} {'STATE':<9} {'FAILURES':>14} {'OPENED_AT':<32} LAST ERROR", highlight=False, markup=False)
    for state in states:
        view = state_view(state, error_chars=120)
        failures = f"{state.consecutive_failures} ({state.total_failures})"
        out.print(f"{state.source_name[:60]:<30} {state.state:<9} {failures:>14} {state.opened_at or '-':<32} "
                  f"{view['last_error'] or '-'}", highlight=False, markup=False)


@breakers_app.command("reset")
def breakers_reset(source: str = typer.Argument(..., help="The source_name (or a lake breaker key lake:<root>).")) -> None:
    """Close SOURCE's circuit (counters cleared; totals and last error kept). Exit 0 with the new
    state, 2 for an unknown or malformed name, or when a concurrent change won every retry."""
    from shared.breakers import TableStoreError
    from shared.breakers.admin import BreakerNameError, check_name, describe, reset

    _setup_logging(False, files=False)
    try:
        name = check_name(source)
    except BreakerNameError as exc:
        err.print(str(exc), highlight=False, markup=False, style="bold red")
        raise typer.Exit(EXIT_INVALID)
    store = _breaker_store_or_exit()
    try:
        state = reset(store, name)  # type: ignore[arg-type]
    except (TableStoreError, sqlite3.Error) as exc:
        err.print(str(exc), highlight=False, markup=False, style="bold red")
        raise typer.Exit(EXIT_INVALID)
    if state is None:
        err.print(f"no breaker named {name!r} in {describe(store)}", highlight=False, markup=False,  # type: ignore[arg-type]
                  style="bold red")
        raise typer.Exit(EXIT_INVALID)
    out.print(f"{name}: {state.state} (total failures {state.total_failures}, updated {state.updated_at})",
              highlight=False, markup=False)


@contextmanager
def _imports_without_gc() -> Iterator[None]:
    """Import without the cyclic garbage collector (imports make many objects and no garbage);
    then freeze what was imported, so later full collections skip it."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def exit_now(code: object) -> NoReturn:
    """End the process as the interpreter would, without tearing its objects down one by one.

    In the order `Py_Finalize` follows: wait for the threads that are not daemons (after
    threading's own exit hooks, which stop idle `ThreadPoolExecutor` workers), run the
    `atexit` handlers (logging flushes and closes its files, telemetry exports), flush stdout and
    stderr, then `os._exit`. What it skips is the teardown of every module and object (dlt's,
    pyarrow's, SQLAlchemy's), which the OS frees with the process: of a one-job run on a busy 2-core
    box, ~0.05 s CPU and ~0.1 s of wall time.
    A `SystemExit` code that is not a number (a message) exits the ordinary way.
    """
    if code is not None and not isinstance(code, int):
        raise SystemExit(code)
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls first, in CPython 3.x
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()  # threading's exit hooks (idle executor workers are told to stop), then the joins
    else:
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(code or 0)


def main() -> None:
    """Console entry point; the process exits after it (`python -m ingest` calls `exit_now`)."""
    gc.freeze()  # what `python -m ingest` imported with the collector off (ingest/__main__.py)
    gc.enable()
    try:
        app()
    finally:
        # The command is done and every file it wrote is closed; logging flushes its handlers at
        # exit as before. The interpreter's exit would still run full garbage collections over every
        # object dlt, pyarrow and SQLAlchemy made (~0.5 s of a one-job run on this box, py-spy:
        # gc_collect_main under finalisation); frozen objects are skipped, and the OS frees them.
        gc.freeze()


if __name__ == "__main__":
    main()
