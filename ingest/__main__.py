"""`python -m ingest ...`: the command line (see `ingest.cli`)."""

from ingest.cli import main

main()
