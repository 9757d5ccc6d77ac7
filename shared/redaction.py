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


MAX_ERROR_CHARS = 500
"""The one cap on an error text we write anywhere: results, metrics, audit, breaker state, logs."""


def first_line(text: object, default: str = "") -> str:
    """The first non-blank line of `text`, stripped (`default` when there is none).

    SDK and driver messages span lines (error codes, request ids, quoted SQL); one line is what
    a result, a breaker or a console shows.
    """
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return default


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` cut to at most `limit` characters, ending in `...` when it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_line(exc: object, prefix: str = "", *, with_type: bool = False) -> str:
    """An error as one capped, redacted line: `prefix` + first line of its message.

    Args:
        exc: The exception (or message).
        prefix: Text before the message, e.g. `"storage: "`.
        with_type: Start the message with the exception's type name (`KeyError: 'x'`).

    Returns:
        The line, secrets masked, at most `MAX_ERROR_CHARS` characters; an exception without a
        message shows its type name.
    """
    name = type(exc).__name__
    line = first_line(exc)
    if with_type and isinstance(exc, BaseException):
        line = f"{name}: {line}" if line else name
    elif not line and isinstance(exc, BaseException):
        line = name
    return clip(redact(prefix + line))


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
