"""Run metrics: the health-score formula, the document's schema, and atomic writing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.metrics import (
    DEFAULT_THROUGHPUT_FLOOR,
    build_metrics,
    health_score,
    metrics_filename,
    throughput_floor_from_env,
    write_metrics,
)
from shared.results import (
    FAILED,
    SKIPPED_CIRCUIT_OPEN,
    STATUSES,
    SUCCESS,
    JobResult,
)

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "metrics_schema.json"
WHEN = datetime(2025, 1, 15, 8, 5, 9, tzinfo=timezone.utc)


def job(
    status: str = SUCCESS,
    *,
    rows: int = 500,
    seconds: float = 1.0,
    rps: float | None = None,
    retries: int = 0,
    name: str = "t",
    **kwargs: Any,
) -> JobResult:
    """A result; `rps` defaults to rows / seconds, like the runner reports it."""
    if rps is None:
        rps = rows / seconds if seconds else 0.0
    return JobResult(
        job_id=f"crm.{name}",
        source_type="postgresql",
        source_name="crm",
        table_name=name,
        load_type="FULL",
        status=status,
        rows_processed=rows,
        duration_seconds=seconds,
        rows_per_second=rps,
        retry_count=retries,
        error=None if status == SUCCESS else kwargs.pop("error", f"{status} happened"),
        **kwargs,
    )


def metrics(results: list, **kwargs: Any) -> dict[str, Any]:
    return build_metrics(results, pipeline_name="demo", run_id="run1", execution_time=WHEN, **kwargs)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


# -- health score: hand-computed cases ------------------------------------------------


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param([job(), job(), job(), job()], 100.0, id="all fast, no retries"),
        # 50 * 3/4 + 30 * 3/3 + 20 * 3/3
        pytest.param([job(), job(), job(), job(FAILED)], 87.5, id="one of four failed"),
        # 50 * 4/4 + 30 * 2/4 + 20 * 3/4
        pytest.param(
            [
                job(rows=50_000, seconds=100.0),  # 500 rows/s: below the floor
                job(rows=50_000, seconds=100.0),
                job(retries=1),
                job(),
            ],
            80.0,
            id="two slow, one retried",
        ),
        # circuit-open counts as not successful: 50 * 3/4 + 30 + 20
        pytest.param([job(), job(), job(), job(SKIPPED_CIRCUIT_OPEN)], 87.5, id="circuit open"),
        # 50 * 1/3 + 30 * 1/1 + 20 * 1/1 = 66.666...
        pytest.param(
            [job(), job(FAILED), job(SKIPPED_CIRCUIT_OPEN)],
            66.7,
            id="mixed",
        ),
        # 50 + 30 * 7/8 + 20 = 96.25: rounds half up, not to even
        pytest.param([job(rows=20_000, seconds=40.0)] + [job()] * 7, 96.3, id="half rounds up"),
        pytest.param([job(FAILED), job(FAILED)], 0.0, id="all failed"),
        pytest.param([job(FAILED), job(SKIPPED_CIRCUIT_OPEN)], 0.0, id="nothing succeeded"),
        pytest.param([], 100.0, id="no jobs"),
    ],
)
def test_health_score_hand_computed(results: list[JobResult], expected: float) -> None:
    assert health_score(results) == expected
    assert metrics(results)["summary"]["health_score"] == expected


def test_throughput_floor_boundaries() -> None:
    def score(result: JobResult) -> float:
        return health_score([result])

    assert score(job(rows=9_999, seconds=9_999.0)) == 100.0, "small jobs always meet the floor"
    assert score(job(rows=10_000, seconds=10.0)) == 100.0, "exactly the floor meets it"
    assert score(job(rows=10_000, seconds=10.01)) == 70.0, "just below the floor: 50 + 0 + 20"


def test_throughput_floor_is_a_parameter() -> None:
    slow = [job(rows=50_000, seconds=100.0)]  # 500 rows/s
    assert health_score(slow) == 70.0
    assert health_score(slow, throughput_floor=400) == 100.0
    assert metrics(slow, throughput_floor=400)["summary"]["health_score"] == 100.0


def test_rate_falls_back_to_rows_over_duration() -> None:
    result = job(rows=50_000, seconds=10.0, rps=0.0)
    assert health_score([result]) == 100.0
    assert metrics([result])["jobs"][0]["rows_per_second"] == 5000.0


@pytest.mark.parametrize("bad", [FAILED, SKIPPED_CIRCUIT_OPEN])
def test_a_run_with_a_failure_never_scores_100(bad: str) -> None:
    # 50 * 1999/2000 + 30 + 20 = 99.975, which plain rounding would turn into 100.0
    results = [job()] * 1999 + [job(bad)]
    assert health_score(results) == 99.9
    assert health_score([job(bad)] + [job()] * 3) < 100


def test_dicts_are_accepted_like_job_results() -> None:
    results = [job(), job(FAILED, rows=7, seconds=2.0)]
    assert metrics([r.to_dict() for r in results]) == metrics(results)


def test_unknown_status_is_rejected_with_the_job_id() -> None:
    with pytest.raises(ValueError, match=r"crm\.t: status 'done' is not one of"):
        metrics([job("done")])


# -- document ---------------------------------------------------------------------------


def test_summary_sums_and_average_throughput() -> None:
    results = [
        job(rows=1_000, seconds=2.0, name="a"),
        job(rows=3_000, seconds=2.0, name="b", retries=2),
        job(FAILED, rows=50, seconds=6.0, name="c"),
        job(SKIPPED_CIRCUIT_OPEN, rows=0, seconds=0.0, name="d"),
    ]

    summary = metrics(results)["summary"]

    assert summary == {
        "total_jobs": 4,
        "successful": 2,
        "failed": 1,
        "skipped": 1,
        "total_rows": 4_050,
        "total_duration_seconds": 10.0,
        "avg_throughput": 1_000.0,  # (1000 + 3000) / (2 + 2): successful jobs only
        "health_score": 65.0,  # 50 * 2/4 + 30 * 2/2 + 20 * 1/2
    }


def test_average_throughput_is_zero_without_successful_jobs() -> None:
    assert metrics([job(FAILED)])["summary"]["avg_throughput"] == 0.0
    assert metrics([])["summary"]["avg_throughput"] == 0.0


def test_document_shape_and_job_entries() -> None:
    result = job(
        FAILED,
        rows=12,
        seconds=3.0,
        retries=2,
        error="timeout after 30s",
        files=["lake/crm/t/1.parquet"],
        schema_version="abc123",
        load_id="1736928309.1",
    )

    document = metrics([result])

    assert list(document) == ["pipeline_name", "execution_time", "run_id", "summary", "jobs"]
    assert document["pipeline_name"] == "demo"
    assert document["run_id"] == "run1"
    assert document["execution_time"] == "2025-01-15T08:05:09Z"
    assert document["jobs"] == [
        {
            "job_id": "crm.t",
            "source_type": "postgresql",
            "source_name": "crm",
            "table_name": "t",
            "load_type": "FULL",
            "status": FAILED,
            "rows_processed": 12,
            "duration_seconds": 3.0,
            "rows_per_second": 4.0,
            "retry_count": 2,
            "error": "timeout after 30s",
            "schema_version": "abc123",
            "files": ["lake/crm/t/1.parquet"],
        }
    ]


def test_extra_is_included_only_when_present() -> None:
    document = metrics([job(name="a"), job(name="b", extra={"schema_drift": {"added": ["x"]}})])
    assert "extra" not in document["jobs"][0]
    assert document["jobs"][1]["extra"] == {"schema_drift": {"added": ["x"]}}


def test_execution_time_is_converted_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2025, 1, 15, 9, 5, 9, 123456, tzinfo=cet)
    naive = datetime(2025, 1, 15, 8, 5, 9)
    for moment in (local, naive):
        document = build_metrics([], pipeline_name="p", run_id="r", execution_time=moment)
        assert document["execution_time"] == "2025-01-15T08:05:09Z"


# -- schema ------------------------------------------------------------------------------


def test_every_kind_of_run_validates_against_the_schema(validator) -> None:
    results = [
        job(),
        job(FAILED, error="line one\nline two"),
        job(SKIPPED_CIRCUIT_OPEN, rows=0, seconds=0.0),
        job(extra={"dq": {"null_ids": 0}}, files=["a.parquet"], schema_version="v1"),
    ]
    for document in (metrics(results), metrics([])):
        validator.validate(json.loads(json.dumps(document)))


def test_schema_status_enum_matches_results_statuses() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert tuple(schema["$defs"]["job"]["properties"]["status"]["enum"]) == STATUSES


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["summary"].update(unexpected=1),
        lambda d: d["summary"].pop("health_score"),
        lambda d: d["summary"].update(health_score=100.1),
        lambda d: d["jobs"][0].update(status="done"),
        lambda d: d["jobs"][0].pop("files"),
        lambda d: d.update(execution_time="2025-01-15 08:05"),
    ],
)
def test_schema_rejects_malformed_documents(validator, break_it) -> None:
    document = metrics([job()])
    break_it(document)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(document)


# -- files and settings ------------------------------------------------------------------


def test_metrics_filename() -> None:
    assert metrics_filename(WHEN, "abc123") == "metrics_20250115_080509_abc123.json"
    cet = timezone(timedelta(hours=1))
    assert metrics_filename(datetime(2025, 1, 1, 0, 30, tzinfo=cet), "r") == (
        "metrics_20241231_233000_r.json"
    )
    assert metrics_filename(WHEN, "../x y:z") == "metrics_20250115_080509_.._x_y_z.json"
    with pytest.raises(ValueError, match="run_id"):
        metrics_filename(WHEN, "")


def test_write_metrics_writes_pretty_json_atomically(tmp_path: Path, validator) -> None:
    document = metrics([job(), job(FAILED)])
    target = tmp_path / "out" / "metrics" / metrics_filename(WHEN, "run1")

    written = write_metrics(document, target)

    assert written == target
    text = target.read_text(encoding="utf-8")
    assert text.startswith('{\n  "pipeline_name": "demo"')
    assert json.loads(text) == document
    validator.validate(json.loads(text))
    assert [p.name for p in target.parent.iterdir()] == [target.name], "no temp file left behind"


def test_write_metrics_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_text("old", encoding="utf-8")
    write_metrics(metrics([job()]), target)
    assert json.loads(target.read_text(encoding="utf-8"))["run_id"] == "run1"


def test_write_metrics_into_a_folder_names_the_file(tmp_path: Path) -> None:
    written = write_metrics(metrics([job()]), tmp_path)
    assert written == tmp_path / "metrics_20250115_080509_run1.json"
    assert written.is_file()


def test_throughput_floor_from_env() -> None:
    assert DEFAULT_THROUGHPUT_FLOOR == 1000
    assert throughput_floor_from_env({}) == DEFAULT_THROUGHPUT_FLOOR
    assert throughput_floor_from_env({"HEALTH_THROUGHPUT_FLOOR": " "}) == DEFAULT_THROUGHPUT_FLOOR
    assert throughput_floor_from_env({"HEALTH_THROUGHPUT_FLOOR": "250.5"}) == 250.5
    for bad in ("fast", "-1", "inf"):
        with pytest.raises(ValueError, match=f"HEALTH_THROUGHPUT_FLOOR: '{bad}'"):
            throughput_floor_from_env({"HEALTH_THROUGHPUT_FLOOR": bad})
