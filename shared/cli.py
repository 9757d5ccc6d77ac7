"""Command line: `python -m shared.cli {validate,run,template,demo}`.

Exit codes: 0 all good; 1 at least one job failed; 2 the workbook (or the command line) is invalid.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from shared.config.models import Job, Plan, PlanError
from shared.redaction import install_log_redaction, redact
from shared.results import JobResult

EXIT_OK, EXIT_JOB_FAILED, EXIT_INVALID = 0, 1, 2
PIPELINE_NAME = "metadata_driven_ingestion"

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Metadata-driven ingestion: workbook -> dlt -> Parquet lake.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _setup_logging(verbose: bool) -> None:
    install_log_redaction()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load_plan_or_exit(config: Path) -> Plan:
    from shared.plan import load_plan

    try:
        plan = load_plan(config)
    except PlanError as exc:
        err.print(f"[bold red]{len(exc.problems)} problem(s) in {config}:[/]", highlight=False)
        for problem in exc.problems:
            err.print(f"  {redact(problem)}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID)
    for warning in plan.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return plan


@app.command()
def validate(config: Path = typer.Argument(..., help="The workbook (.xlsx).")) -> None:
    """Check a workbook; exit 0 when valid, 2 with every problem listed on stderr."""
    _setup_logging(False)
    plan = _load_plan_or_exit(config)
    enabled = plan.enabled_jobs()
    out.print(f"[green]OK[/]: {len(plan.jobs)} job(s), {len(enabled)} enabled, in {config}", highlight=False)


@app.command()
def template(path: Path = typer.Argument(..., help="Where to write the empty workbook (.xlsx).")) -> None:
    """Write an empty workbook with every column, header help and dropdowns."""
    from shared.config.template import write_template

    write_template(path)
    out.print(f"wrote {path}")


def _select_jobs(plan: Plan, only: Optional[List[str]]) -> list[Job]:
    jobs = plan.enabled_jobs(only)
    if only and not jobs:
        err.print(f"[red]no enabled job matches --only {' '.join(only)}[/]", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    return jobs


def _print_result(result: JobResult) -> None:
    if result.succeeded:
        out.print(
            f"[green]✔[/] {result.job_id:<40} {result.load_type:<11} {result.rows_processed:>10,} rows "
            f"{result.duration_seconds:>8.2f} s {result.rows_per_second:>12,.0f} rows/s",
            highlight=False,
        )
    else:
        out.print(f"[red]✘[/] {result.job_id:<40} {result.status}: {result.error}", highlight=False, markup=False)


def execute_jobs(jobs: list[Job], *, on_result: Callable[[JobResult], None]) -> list[JobResult]:
    """Run jobs one after another through `run_job` (the orchestration issue parallelises this)."""
    from shared.runner import run_job

    results = []
    for job in jobs:
        result = run_job(job)
        on_result(result)
        results.append(result)
    return results


def _write_metrics(results: list[JobResult], run_id: str, started: dt.datetime, metrics_out: Optional[Path]) -> Path:
    from shared.metrics import build_metrics, metrics_filename, write_metrics

    metrics = build_metrics(results, pipeline_name=PIPELINE_NAME, run_id=run_id, execution_time=started)
    path = metrics_out or Path("metrics") / metrics_filename(started, run_id)
    write_metrics(metrics, path)
    summary = metrics["summary"]
    out.print(
        f"{summary['successful']} succeeded, {summary['failed']} failed, {summary['skipped']} skipped; "
        f"{summary['total_rows']:,} rows; health {summary['health_score']}; metrics: {path}",
        highlight=False,
    )
    return path


def run_plan(plan: Plan, *, only: Optional[List[str]] = None, metrics_out: Optional[Path] = None) -> int:
    """Run a validated plan's enabled jobs, print a line per job, write metrics; return the exit code."""
    jobs = _select_jobs(plan, only)
    started = dt.datetime.now(dt.timezone.utc)
    run_id = f"local-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    results = execute_jobs(jobs, on_result=_print_result)
    _write_metrics(results, run_id, started, metrics_out)
    return EXIT_OK if all(r.succeeded for r in results) else EXIT_JOB_FAILED


@app.command()
def run(
    config: Path = typer.Argument(..., help="The workbook (.xlsx)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only SOURCE or SOURCE.TABLE (repeatable)."),
    metrics_out: Optional[Path] = typer.Option(None, "--metrics-out", help="Metrics JSON path (default metrics/metrics_<time>_<run>.json)."),
    lake: Optional[str] = typer.Option(None, "--lake", help="Lake root (folder, az:// or abfss://); default: DESTINATION__FILESYSTEM__BUCKET_URL or ./lake."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    """Run the workbook's enabled jobs; exit 0 if all succeeded, 1 if any failed, 2 if the plan is invalid."""
    _setup_logging(verbose)
    if lake:
        os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = lake
    plan = _load_plan_or_exit(config)
    raise typer.Exit(run_plan(plan, only=only, metrics_out=metrics_out))


@app.command()
def demo(
    directory: Path = typer.Option(Path("demo"), "--dir", help="Scratch folder for the database, workbook and lake."),
) -> None:
    """Create a sample SQLite shop and workbook, ingest them into a local lake, print the Parquet paths."""
    from shared.config.template import DEMO_ROWS, write_workbook
    from shared.demo import DEMO_DB_FILE, DEMO_SOURCE, DEMO_WORKBOOK_FILE, create_demo_database
    from shared.secrets import env_var_name

    _setup_logging(False)
    directory = directory.resolve()
    db = create_demo_database(directory / DEMO_DB_FILE)
    workbook = directory / DEMO_WORKBOOK_FILE
    write_workbook(workbook, DEMO_ROWS)
    lake = directory / "lake"
    os.environ[env_var_name(DEMO_SOURCE, "path")] = str(db)
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = str(lake)
    out.print(f"demo database: {db}\ndemo workbook: {workbook}\n", highlight=False)
    plan = _load_plan_or_exit(workbook)
    code = run_plan(plan, metrics_out=directory / "metrics.json")
    files = sorted(lake.rglob("*.parquet"))
    out.print(f"\n{len(files)} Parquet file(s) in {lake}:", highlight=False)
    for path in files:
        out.print(f"  {path}", highlight=False)
    raise typer.Exit(code)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
