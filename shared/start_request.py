"""The start request (HTTP body or queue message), validated against `config/start_request_schema.json`."""

from __future__ import annotations

import json
import reprlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from jsonschema import Draft202012Validator

from shared.workbook_ref import short

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "start_request_schema.json"
DEFAULT_CONFIG = "config/ingestion_config.xlsx"


MAX_BODY_BYTES = 64 * 1024
"""Largest accepted body (HTTP) or message (queue): a real request is a few hundred bytes."""
MAX_FIELD_CHARS = 64
"""Longest field name quoted back in an error."""


class StartRequestError(ValueError):
    """A start request that cannot be run; `field` names the offending field, `status` the HTTP code.

    Messages quote at most a short prefix of any value, so an error never echoes a large input.
    """

    status = 400

    def __init__(self, field: str, message: str) -> None:
        self.field = short(field, MAX_FIELD_CHARS)
        super().__init__(short(f"{self.field}: {message}", 400))

    def to_dict(self) -> dict[str, str]:
        """JSON error body."""
        return {"error": "invalid request", "field": self.field, "message": str(self)}


class RequestTooLarge(StartRequestError):
    """A body over `MAX_BODY_BYTES` (HTTP 413)."""

    status = 413

    def __init__(self, size: int) -> None:
        super().__init__("body", f"{size} bytes is over the {MAX_BODY_BYTES}-byte limit")


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _decode(body: Union[bytes, str]) -> Any:
    """Parse a raw body; None when it is empty."""
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(len(raw))
    text = raw.decode("utf-8", "replace")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StartRequestError("body", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise StartRequestError("body", "not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        raise StartRequestError("body", f"not valid JSON ({short(str(exc), 80)})") from None


def parse_start_request(body: Union[bytes, str, dict[str, Any], None]) -> dict[str, Any]:
    """Validate a start request and fill in defaults.

    Args:
        body: Raw JSON (bytes or text, at most `MAX_BODY_BYTES`), an already-parsed object, or
            None/empty for all defaults.

    Returns:
        `{"config": str, "only": list[str], "dry_run": bool}`. `config` is the reference as
        written (the starters canonicalise it, see `starters.admission`).

    Raises:
        RequestTooLarge: The raw body is over `MAX_BODY_BYTES`.
        StartRequestError: Not JSON, not an object, or a field breaks the schema.
    """
    if isinstance(body, (bytes, str)):
        body = _decode(body)
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise StartRequestError("body", f"expected a JSON object, got {type(body).__name__}")
    errors = sorted(_validator().iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            unknown = sorted(set(body) - set(_validator().schema["properties"]))
            raise StartRequestError(unknown[0] if unknown else "body", "unknown field; allowed: config, only, dry_run")
        path = ".".join(str(p) for p in error.absolute_path) or "body"
        raise StartRequestError(path, _message(error))
    from shared.settings import settings

    return {
        "config": body.get("config") or settings().config,
        "only": list(body.get("only") or []),
        "dry_run": bool(body.get("dry_run", False)),
    }


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 50, 50, 2, 3, 3


def quote(value: Any) -> str:
    """A short, bounded rendering of a user-supplied value (never the whole of a large one)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # pragma: no cover - repr of JSON values does not fail
        text = f"<{type(value).__name__}>"
    return short(text, 60)


def _message(error: Any) -> str:
    """The schema error in words; jsonschema's own messages quote the whole offending value."""
    field = error.absolute_path[0] if error.absolute_path else None
    value = quote(error.instance)
    if error.validator == "type":
        return f"{value} is not of type {error.validator_value}"
    if field == "config" and error.validator == "pattern":
        return f"{value} is not a workbook path ending in .xlsx"
    if field == "only" and error.validator == "pattern":
        return f"{value} is not 'source', 'source.table' or 'source.schema.table'"
    if error.validator == "minLength":
        return "must not be empty"
    if error.validator == "maxLength":
        return f"{value} is longer than {error.validator_value} characters"
    if error.validator == "maxItems":
        return f"has more than {error.validator_value} items"
    return f"{value} is not valid ({error.validator})"
