"""Keep secret values out of every log line, error message and output file.

Secrets resolved by `shared.secrets` are registered here; `redact()` replaces every known
secret (and its URL-encoded forms, since connection URLs carry them encoded) with `***`.
`install_log_redaction()` hooks the logging record factory so that *every* logger, including
dlt's and the Azure SDK's, is scrubbed before any handler formats the record.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from urllib.parse import quote, quote_plus

from shared.log_records import add_record_hook

MASK = "***"
_MIN_SUBSTRING_LEN = 4
"""Secrets shorter than this are only masked as whole tokens, so `redact` does not shred text."""

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Remember a secret value so that `redact` masks it from now on.

    Args:
        value: The secret; `None` and empty values are ignored. Its URL-encoded forms are
            registered too.
    """
    global _pattern
    if value is None:
        return
    text = str(value)
    if not text:
        return
    forms = {text, quote(text, safe=""), quote_plus(text), quote(text)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        _pattern = _compile(_secrets)


def _compile(values: set[str]) -> re.Pattern[str]:
    parts = []
    # Longest first so that an encoded form is not half-replaced by a shorter raw one.
    for v in sorted(values, key=len, reverse=True):
        escaped = re.escape(v)
        parts.append(escaped if len(v) >= _MIN_SUBSTRING_LEN else rf"(?<![\w]){escaped}(?![\w])")
    return re.compile("|".join(parts))


def redact(text: object) -> str:
    """Return `text` as a string with every registered secret replaced by `***`."""
    message = str(text)
    pattern = _pattern
    if pattern is None or not message:
        return message
    return pattern.sub(MASK, message)


def clear_secrets() -> None:
    """Forget every registered secret (tests only)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def install_log_redaction() -> None:
    """Scrub secrets from every log record created from now on, whatever the logger.

    The record's message is rendered, redacted and frozen (`args` cleared), and exception
    text is redacted as well.
    """
    add_record_hook("redaction", _redact_record)


def _redact_record(record: logging.LogRecord) -> None:
    if _pattern is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not hide the log line
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        record.exc_info = None
