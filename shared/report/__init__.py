"""The HTML run report: one self-contained page per run (summary, jobs, timeline, trend).

`render_report` turns a metrics document (and recent runs' summaries) into the page;
`shared.report.store` finds the documents, in a file or in the metrics store the runs publish to.
The same renderer serves `python -m ingest report` and `GET /api/ingestions/{instance_id}/report`.

May import: of the library, only what reads runs (`shared.history`, `shared.storage`,
`shared.settings`); nothing of the runner or the Functions modules.
"""

from shared.report.render import render_report

__all__ = ["render_report"]
