"""The run report as one self-contained HTML file: inline CSS, SVG and script, nothing fetched.

Every value from the metrics goes through `html.escape` (a table or error text holding
`<script>` shows as text), the page's Content-Security-Policy allows no request at all and runs
only the report's own script (by its hash), and the script builds no markup from data.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from shared.history import RunSummary
from shared.report.model import STATUS_ORDER, JobView, RunView, as_float, as_int, build_view

_HERE = Path(__file__).parent
LANE_UNITS = 1000
"""Width of a timeline lane in SVG units (lanes stretch to the page width)."""
OPEN_SOURCES = 30
"""Up to this many sources the source table starts unfolded."""
STATUS_LABELS = {"success": "success", "failed": "failed", "skipped_circuit_open": "skipped (circuit open)",
                 "skipped_dry_run": "skipped (dry run)"}


def render_report(metrics: Mapping[str, Any], trend: Sequence[RunSummary] = (), *,
                  generated_at: Optional[dt.datetime] = None) -> str:
    """The report of one run as HTML.

    Args:
        metrics: The run's metrics document (`config/metrics_schema.json`).
        trend: Summaries of recent runs (`shared.history`); with two or more runs up to this one,
            the report charts health score, total rows and duration over them.
        generated_at: When the report was made (default now), shown in its footer.

    Returns:
        The page, UTF-8 text.
    """
    view = build_view(metrics, trend)
    script = (_HERE / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    when = (generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{escape(csp)}\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<link rel=\"icon\" href=\"data:,\">",
        f"<title>Run report: {escape(view.pipeline_name)} {escape(view.run_id)}</title>",
        f"<style>{(_HERE / 'report.css').read_text(encoding='utf-8')}</style></head><body>",
        _header(view), _summary(view), _trend(view), _sources(view), _jobs(view), _timeline(view),
        f"<footer>Generated {escape(when)} from the run's metrics by <span class=\"mono\">python -m ingest report</span>."
        " Self-contained: no request is made when it is viewed.</footer>",
        f"<script>{script}</script></body></html>\n",
    ]
    return "\n".join(parts)


# --- formatting -----------------------------------------------------------------------------------


def _int(value: float) -> str:
    return f"{int(value):,}"


def _rate(value: float) -> str:
    return f"{value:,.1f}"


def seconds_text(seconds: float) -> str:
    """A duration for people: `0.42 s`, `12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _health_class(score: Optional[float]) -> str:
    if score is None:
        return ""
    return "health-good" if score >= 90 else "health-warn" if score >= 70 else "health-bad"


# --- sections -------------------------------------------------------------------------------------


def _header(view: RunView) -> str:
    started = view.execution_time.replace("T", " ").replace("Z", " UTC")
    return (f"<header><h1>Run report: {escape(view.pipeline_name)}</h1><div class=\"meta muted\">"
            f"<span>run <span class=\"mono\" id=\"run-id\">{escape(view.run_id)}</span></span>"
            f"<span>started {escape(started)}</span></div></header>")


def _card(label: str, value: str, extra_class: str = "", inner: str = "", ident: str = "") -> str:
    id_attr = f" id=\"{ident}\"" if ident else ""
    return (f"<div class=\"card {extra_class}\"{id_attr}><div class=\"label\">{escape(label)}</div>"
            f"<div class=\"value\">{escape(value)}</div>{inner}</div>")


def _summary(view: RunView) -> str:
    s = view.summary
    score = s.get("health_score")
    score_value = float(score) if isinstance(score, (int, float)) else None
    meter = (f"<div class=\"meter\"><div style=\"width:{max(0.0, min(100.0, score_value)):.1f}%\"></div></div>"
             if score_value is not None else "")
    cards = [
        _card("health score", f"{score_value:.1f}" if score_value is not None else "-",
              f"health {_health_class(score_value)}", meter, "health"),
        _card("jobs", _int(as_int(s.get("total_jobs")) or len(view.jobs)), ident="total-jobs"),
        _card("succeeded", _int(as_int(s.get("successful")))),
        _card("failed", _int(as_int(s.get("failed"))), ident="failed-jobs"),
        _card("skipped", _int(as_int(s.get("skipped")))),
        _card("rows", _int(as_int(s.get("total_rows")))),
        _card("wall-clock time", seconds_text(view.wall_clock)),
        _card("job time (summed)", seconds_text(as_float(s.get("total_duration_seconds")))),
        _card("throughput", f"{_rate(as_float(s.get('avg_throughput')))} rows/s"),
        _card("most jobs at once", _int(view.max_parallel)),
    ]
    return "<section id=\"summary\">" + "".join(cards) + "</section>"


def _trend(view: RunView) -> str:
    if not view.trend:
        return ""
    runs = view.trend
    labels = [r.execution_time.replace("T", " ").replace("Z", "")[:16] + f" {r.run_id}" for r in runs]
    charts = [
        _line_chart("Health score", [r.health if r.health is not None else 0.0 for r in runs], labels,
                    lambda v: f"{v:.1f}", floor=0.0, ceiling=100.0),
        _line_chart("Total rows", [float(r.rows) for r in runs], labels, lambda v: _int(v), floor=0.0),
        _line_chart("Duration (wall-clock)", [r.duration_seconds for r in runs], labels, seconds_text, floor=0.0),
    ]
    first, last = runs[0].execution_time[:10], runs[-1].execution_time[:10]
    return (f"<section id=\"trend\"><h2>Recent runs <span class=\"muted\">({len(runs)} runs, {escape(first)} to "
            f"{escape(last)}; this run is the last point)</span></h2><div class=\"trend\">" + "".join(charts) + "</div></section>")


def _line_chart(title: str, values: Sequence[float], labels: Sequence[str], fmt: Callable[[float], str], *,
                floor: Optional[float] = None, ceiling: Optional[float] = None) -> str:
    width, height, left, right, top, bottom = 320, 140, 48, 10, 10, 22
    low = min(values) if floor is None else min(floor, min(values))
    high = max(values) if ceiling is None else max(ceiling, max(values))
    if high <= low:
        high = low + 1
    step = (width - left - right) / max(1, len(values) - 1)

    def xy(k: int, value: float) -> tuple[float, float]:
        return left + k * step, top + (height - top - bottom) * (1 - (value - low) / (high - low))

    points = [xy(k, v) for k, v in enumerate(values)]
    current = ' class="current"'
    dots = "".join(
        f"<circle cx=\"{x:.1f}\" cy=\"{y:.1f}\" r=\"3\"{current if k == len(values) - 1 else ''}>"
        f"<title>{escape(labels[k])}: {escape(fmt(values[k]))}</title></circle>"
        for k, (x, y) in enumerate(points)
    )
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    svg = (f"<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{escape(title)}\">"
           f"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"#d9e2ec\"/>"
           f"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"#d9e2ec\"/>"
           f"<text class=\"axis-label\" x=\"{left - 4}\" y=\"{top + 8}\" text-anchor=\"end\">{escape(fmt(high))}</text>"
           f"<text class=\"axis-label\" x=\"{left - 4}\" y=\"{height - bottom}\" text-anchor=\"end\">{escape(fmt(low))}</text>"
           f"<text class=\"axis-label\" x=\"{left}\" y=\"{height - 6}\">{escape(labels[0][:16])}</text>"
           f"<text class=\"axis-label\" x=\"{width - right}\" y=\"{height - 6}\" text-anchor=\"end\">{escape(labels[-1][:16])}</text>"
           f"<polyline points=\"{line}\"/>{dots}</svg>")
    return f"<div class=\"chart\"><h3>{escape(title)}</h3>{svg}</div>"


def _sources(view: RunView) -> str:
    ordered = sorted(view.sources, key=lambda s: (-(s.failed + s.skipped), s.source_name))
    rows = "".join(
        f"<tr><td><button type=\"button\" class=\"source-link\" data-source=\"{escape(s.source_name)}\">"
        f"{escape(s.source_name)}</button></td><td>{escape(s.source_type)}</td><td class=\"num\">{s.jobs:,}</td>"
        f"<td class=\"num\">{s.ok:,}</td><td class=\"num\">{s.failed:,}</td><td class=\"num\">{s.skipped:,}</td>"
        f"<td class=\"num\">{s.rows:,}</td><td class=\"num\">{escape(seconds_text(s.duration))}</td></tr>"
        for s in ordered
    )
    opened = " open" if len(view.sources) <= OPEN_SOURCES else ""
    return (f"<section id=\"sources\"><details{opened}><summary><h2>Sources ({len(view.sources):,})</h2></summary>"
            "<table id=\"sources-table\"><thead><tr><th>source</th><th>type</th>"
            "<th class=\"num\">jobs</th><th class=\"num\">ok</th><th class=\"num\">failed</th><th class=\"num\">skipped</th>"
            "<th class=\"num\">rows</th><th class=\"num\">job time</th></tr></thead><tbody>"
            + rows + "</tbody></table></details></section>")


def _options(values: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<option value=\"{escape(v)}\">{escape(label)}</option>" for v, label in values)


def _pager(ident: str) -> str:
    return (f"<div class=\"pager\" id=\"{ident}\"><button type=\"button\" class=\"prev\">&#8249; previous</button>"
            f"<span class=\"info\"></span><button type=\"button\" class=\"next\">next &#8250;</button></div>")


JOB_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("job", "", ""), ("status", "", ""), ("load", "", ""), ("rows", "num", "num"), ("duration", "num", "num"),
    ("rows/s", "num", "num"), ("attempts", "num", "num"), ("error", "", ""), ("schema drift", "num", ""),
)
"""(header, sort type, cell class) of the job table."""


def _jobs(view: RunView) -> str:
    max_rate = max((j.rows_per_second for j in view.jobs), default=0.0) or 1.0
    order = sorted(range(len(view.jobs)), key=lambda k: (STATUS_ORDER.get(view.jobs[k].status, 9), k))
    body = "".join(_job_row(k, view.jobs[k], max_rate) for k in order)
    num_class, num_type = ' class="num"', ' data-type="num"'
    head = "".join(
        f"<th{num_class if css else ''}{num_type if kind else ''}><button type=\"button\">{escape(name)}</button></th>"
        for name, kind, css in JOB_COLUMNS
    )
    statuses = sorted({j.status for j in view.jobs}, key=lambda s: STATUS_ORDER.get(s, 9))
    controls = (
        "<div class=\"controls\"><label>filter <input type=\"search\" id=\"filter-text\" "
        "placeholder=\"job, error, drift...\"></label>"
        "<label>status <select id=\"filter-status\"><option value=\"\">all</option>"
        + _options((s, STATUS_LABELS.get(s, s)) for s in statuses) + "</select></label>"
        "<label>source <select id=\"filter-source\"><option value=\"\">all</option>"
        + _options((s.source_name, s.source_name) for s in view.sources) + "</select></label>"
        "<span class=\"muted\">filters apply to the table and the timeline; click a header to sort</span></div>"
    )
    return ("<section id=\"jobs\"><h2>Jobs</h2>" + controls + _pager("jobs-pager")
            + f"<table id=\"jobs-table\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + "</section>")


def _job_row(index: int, job: JobView, max_rate: float) -> str:
    width = 0.0 if job.rows_per_second <= 0 else max(1.0, 90 * job.rows_per_second / max_rate)
    attempts_title = "; ".join(
        f"attempt {a.number}: {a.status}, {seconds_text(a.end - a.start)}" for a in job.timeline
    )
    retried = " retried" if job.attempts > 1 else ""
    return (
        f"<tr data-i=\"{index}\" data-status=\"{escape(job.status)}\" data-source=\"{escape(job.source_name)}\">"
        f"<td class=\"job\" data-v=\"{escape(job.job_id)}\">{escape(job.job_id)}"
        f" <span class=\"muted\">{escape(job.source_type)}</span></td>"
        f"<td class=\"status\" data-v=\"{STATUS_ORDER.get(job.status, 9)}{escape(job.status)}\">"
        f"<span class=\"badge {escape(job.status)}\">{escape(STATUS_LABELS.get(job.status, job.status))}</span></td>"
        f"<td>{escape(job.load_type)}</td>"
        f"<td class=\"num rows\" data-v=\"{job.rows}\">{job.rows:,}</td>"
        f"<td class=\"num duration\" data-v=\"{job.duration}\">{escape(seconds_text(job.duration))}</td>"
        f"<td class=\"num rate-cell\" data-v=\"{job.rows_per_second}\"><div class=\"rate\"><span>{_rate(job.rows_per_second)}"
        f"</span><span class=\"track\"><span class=\"bar\" style=\"width:{width:.1f}px\"></span></span></div></td>"
        f"<td class=\"num attempts{retried}\" data-v=\"{job.attempts}\" title=\"{escape(attempts_title)}\">{job.attempts}</td>"
        f"<td class=\"error\">{escape(job.error)}</td>"
        f"<td class=\"drift\" data-v=\"{job.drift_count}\">{escape(job.drift)}</td></tr>"
    )


def _tick_step(span: float) -> float:
    """A round tick interval giving 4-10 ticks over `span` seconds."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600):
        if span / step <= 10:
            return float(step)
    return 3600.0 * math.ceil(span / 36000)


def _tick_label(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:g} s"


def _timeline(view: RunView) -> str:
    span = view.span if view.span > 0 else 1.0
    step = _tick_step(span)
    first = ' class="first"'
    ticks = "".join(
        f"<span{first if k == 0 else ''} style=\"left:{100 * k * step / span:.2f}%\">{escape(_tick_label(k * step))}</span>"
        for k in range(int(span // step) + 1)
    )
    origin = view.origin.strftime("%H:%M:%S UTC") if view.origin else "-"
    order = sorted(range(len(view.jobs)), key=lambda k: (
        view.jobs[k].first_start is None, view.jobs[k].first_start or 0.0, view.jobs[k].job_id))
    lanes = "".join(_lane(k, view.jobs[k], span) for k in order)
    legend = ("<div class=\"legend\"><span><i style=\"background:var(--ok)\"></i>attempt succeeded</span>"
              "<span><i style=\"background:var(--failed)\"></i>attempt failed</span>"
              "<span><i style=\"background:var(--skipped)\"></i>skipped</span>"
              "<span><i style=\"background:var(--wait)\"></i>waiting to retry</span>"
              f"<span class=\"muted\">0 = {escape(origin)}, first attempt's start; span {escape(seconds_text(view.span))}</span></div>")
    grid = "".join(f"<span style=\"left:{100 * k * step / span:.2f}%\"></span>" for k in range(1, int(span // step) + 1))
    return ("<section id=\"timeline\"><h2>Timeline</h2>" + legend + _pager("lanes-pager")
            + f"<div class=\"timeline\"><div class=\"axis\">{ticks}</div><div class=\"grid\">{grid}</div>"
            + f"{_concurrency(view, span)}<div id=\"lanes\">{lanes}</div></div></section>")


def _lane(index: int, job: JobView, span: float) -> str:
    def x(seconds: float) -> float:
        return LANE_UNITS * seconds / span

    shapes = []
    for previous, attempt in zip((None, *job.timeline), job.timeline):
        if previous is not None and attempt.start > previous.end:
            wait = attempt.start - previous.end
            shapes.append(f"<rect class=\"wait\" x=\"{x(previous.end):.2f}\" y=\"4\" width=\"{x(wait):.2f}\" height=\"4\">"
                          f"<title>{escape(f'{job.job_id}: waiting {seconds_text(wait)} to retry (attempt {attempt.number})')}"
                          f"</title></rect>")
        length = attempt.end - attempt.start
        tip = f"{job.job_id}: attempt {attempt.number} {attempt.status}, {seconds_text(length)} from +{seconds_text(attempt.start)}"
        if attempt.error:
            tip += f": {attempt.error}"
        shapes.append(f"<rect class=\"attempt {escape(attempt.status)}\" data-attempt=\"{attempt.number}\" "
                      f"x=\"{x(attempt.start):.2f}\" y=\"0\" width=\"{max(2.0, x(length)):.2f}\" height=\"12\">"
                      f"<title>{escape(tip)}</title></rect>")
    note = " (earlier attempts not recorded)" if job.earlier_unrecorded else ("" if job.timeline else " (no times recorded)")
    total = seconds_text(job.timeline[-1].end - job.timeline[0].start) if job.timeline else "-"
    return (f"<div class=\"lane\" data-i=\"{index}\" data-job=\"{escape(job.job_id)}\">"
            f"<div class=\"label\" title=\"{escape(job.job_id + note)}\">{escape(job.job_id)}</div>"
            f"<svg viewBox=\"0 0 {LANE_UNITS} 12\" preserveAspectRatio=\"none\">{''.join(shapes)}</svg>"
            f"<div class=\"total\">{escape(total)}</div></div>")


def _concurrency(view: RunView, span: float) -> str:
    """A step chart of how many attempts ran at each moment: where the run was parallel."""
    events = sorted((t, d) for j in view.jobs for a in j.timeline for t, d in ((a.start, 1), (a.end, -1)))
    if not events or view.max_parallel == 0:
        return ""
    height, peak, running = 36, view.max_parallel, 0
    path = [f"M0,{height}"]
    for t, delta in events:
        xpos = LANE_UNITS * t / span
        path.append(f"L{xpos:.2f},{height - height * running / peak:.2f}")
        running += delta
        path.append(f"L{xpos:.2f},{height - height * running / peak:.2f}")
    path.append(f"L{LANE_UNITS},{height}Z")
    return (f"<div class=\"concurrency\"><div class=\"label\">running at once (max {peak})</div>"
            f"<svg viewBox=\"0 0 {LANE_UNITS} {height}\" preserveAspectRatio=\"none\"><path d=\"{' '.join(path)}\">"
            f"<title>at most {peak} attempts at once</title></path></svg><div class=\"total\"></div></div>")
