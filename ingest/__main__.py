"""`python -m ingest ...`: the command line (see `ingest.cli`)."""

import gc

# Start-up imports make about a million objects and no garbage: the cyclic collector's passes over
# them were ~15 % of the import time. `main` freezes what was imported and turns it back on.
gc.disable()

from ingest.cli import exit_now, main  # noqa: E402

try:
    main()
except SystemExit as exc:  # the command's end (typer always ends with one): exit without the teardown
    exit_now(exc.code)
