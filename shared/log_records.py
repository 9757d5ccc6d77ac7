"""One log-record factory for the whole process, extended by named hooks.

Hooks run on every record as it is created, in the thread that logs it, whatever the logger
(ours, dlt's, the Azure SDK's), before any handler formats it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

RecordHook = Callable[[logging.LogRecord], None]

_hooks: dict[str, RecordHook] = {}
_lock = threading.Lock()
_installed = False


def add_record_hook(name: str, hook: RecordHook) -> None:
    """Run `hook` on every log record from now on; adding the same name again is a no-op."""
    global _installed
    with _lock:
        if name in _hooks:
            return
        _hooks[name] = hook
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        for each in list(_hooks.values()):
            each(record)
        return record

    logging.setLogRecordFactory(factory)
