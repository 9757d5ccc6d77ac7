"""The start request (HTTP body or queue message), validated against `config/start_request_schema.json`."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "start_request_schema.json"
DEFAULT_CONFIG = "config/ingestion_config.xlsx"
CONFIG_SETTING = "INGESTION_CONFIG"


class StartRequestError(ValueError):
    """A malformed start request; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

    def to_dict(self) -> dict[str, str]:
        """JSON error body."""
        return {"error": "invalid request", "field": self.field, "message": str(self)}


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def parse_start_request(body: Union[bytes, str, dict[str, Any], None]) -> dict[str, Any]:
    """Validate a start request and fill in defaults.

    Args:
        body: Raw JSON (bytes or text), an already-parsed object, or None/empty for all defaults.

    Returns:
        `{"config": str, "only": list[str], "dry_run": bool}`.

    Raises:
        StartRequestError: Not JSON, not an object, or a field breaks the schema.
    """
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if text.strip():
            try:
                body = json.loads(text)
            except json.JSONDecodeError as exc:
                raise StartRequestError("body", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        else:
            body = None
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise StartRequestError("body", f"expected a JSON object, got {type(body).__name__}")
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            unknown = sorted(set(body) - set(_validator().schema["properties"]))
            raise StartRequestError(unknown[0] if unknown else "body", f"unknown field; allowed: config, only, dry_run")
        path = ".".join(str(p) for p in error.absolute_path) or "body"
        raise StartRequestError(path, _message(error))
    return {
        "config": body.get("config") or os.environ.get(CONFIG_SETTING) or DEFAULT_CONFIG,
        "only": list(body.get("only") or []),
        "dry_run": bool(body.get("dry_run", False)),
    }


def _message(error: Any) -> str:
    field = error.absolute_path[0] if error.absolute_path else None
    if error.validator == "type":
        return f"{error.instance!r} is not of type {error.validator_value}"
    if field == "config" and error.validator == "pattern":
        return f"{error.instance!r} is not a workbook path ending in .xlsx"
    if field == "only" and error.validator == "pattern":
        return f"{error.instance!r} is not 'source', 'source.table' or 'source.schema.table'"
    return error.message
