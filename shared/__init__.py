"""Plain-Python library behind the ingestion service.

Data flows one way: workbook (``shared.workbook``) -> plan of jobs -> ``shared.runner`` runs
one dlt pipeline per job (``shared.sources`` -> ``shared.lake``) -> results ->
metrics and audit. Nothing here imports the Functions host, so every piece runs and is
tested without it.

May import: the standard library and third-party packages; never `function_app`, `starters`,
`orchestrations`, `activities` or `ingest` (tests/worker checks the deployed app without them).
"""
