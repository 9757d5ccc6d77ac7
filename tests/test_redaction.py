"""Secret masking in strings and in every log record."""

from __future__ import annotations

import logging

import pytest

from shared.redaction import clear_secrets, install_log_redaction, redact, register_secret


@pytest.fixture(autouse=True)
def _fresh() -> None:
    clear_secrets()
    yield
    clear_secrets()


def test_raw_and_url_encoded_forms_are_masked() -> None:
    register_secret("p@ss:w/rd#1")
    text = "postgresql://u:p%40ss%3Aw%2Frd%231@h/db and p@ss:w/rd#1 and p%40ss%3Aw/rd%231"
    assert redact(text) == "postgresql://u:***@h/db and *** and ***"


def test_short_secrets_only_as_whole_tokens() -> None:
    register_secret("ab")
    assert redact("token ab in table_abc") == "token *** in table_abc"


def test_nothing_registered_is_identity() -> None:
    assert redact("plain text") == "plain text"


def test_every_logger_is_scrubbed_including_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    register_secret("s3cr3t-value")
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        logger.info("connecting with %s", "s3cr3t-value")
        try:
            raise RuntimeError("bad password s3cr3t-value")
        except RuntimeError:
            logger.exception("failed")
    text = caplog.text
    assert "s3cr3t-value" not in text
    assert "connecting with ***" in text and "bad password ***" in text


def test_error_line_is_the_one_capped_redacted_line() -> None:
    from shared.redaction import MAX_ERROR_CHARS, clip, error_line, first_line, register_secret

    register_secret("Hunter2-secret")
    assert first_line("\n  \n  first  \nsecond") == "first"
    assert first_line("", "fallback") == "fallback"
    assert error_line(ValueError("\nbad password Hunter2-secret\nstack")) == "bad password ***"
    assert error_line(KeyError("k"), "lookup: ", with_type=True) == "lookup: KeyError: 'k'"
    assert error_line(RuntimeError()) == "RuntimeError"
    long = error_line(OSError("x" * 2_000))
    assert len(long) == MAX_ERROR_CHARS and long.endswith("...")
    assert clip("short") == "short"
