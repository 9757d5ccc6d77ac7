"""`BreakerSettings` and `BreakerState` validation."""

from __future__ import annotations

import pytest

from shared.breakers import BreakerSettings, BreakerState


def test_defaults() -> None:
    assert BreakerSettings() == BreakerSettings(
        failure_threshold=5, open_timeout_seconds=30.0, half_open_successes=2
    )


def test_from_env_reads_every_variable() -> None:
    settings = BreakerSettings.from_env(
        {
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3",
            "CIRCUIT_BREAKER_TIMEOUT_SECONDS": "12.5",
            "CIRCUIT_BREAKER_HALF_OPEN_SUCCESSES": " 4 ",
        }
    )
    assert settings == BreakerSettings(3, 12.5, 4)


def test_from_env_keeps_defaults_for_unset_or_blank_variables() -> None:
    assert BreakerSettings.from_env({"CIRCUIT_BREAKER_TIMEOUT_SECONDS": ""}) == BreakerSettings()


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "9")
    assert BreakerSettings.from_env().failure_threshold == 9


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "abc"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "2.5"),
        ("CIRCUIT_BREAKER_TIMEOUT_SECONDS", "-1"),
        ("CIRCUIT_BREAKER_TIMEOUT_SECONDS", "soon"),
        ("CIRCUIT_BREAKER_TIMEOUT_SECONDS", "inf"),
        ("CIRCUIT_BREAKER_HALF_OPEN_SUCCESSES", "-2"),
    ],
)
def test_from_env_names_the_bad_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        BreakerSettings.from_env({name: value})
    assert name in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"half_open_successes": True}, {"open_timeout_seconds": -0.5}],
)
def test_direct_construction_is_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BreakerSettings(**kwargs)


def test_state_rejects_unknown_state_and_empty_source() -> None:
    with pytest.raises(ValueError, match="'BROKEN' is not one of CLOSED, OPEN, HALF_OPEN"):
        BreakerState(source_name="crm", state="BROKEN")
    with pytest.raises(ValueError, match="source_name"):
        BreakerState(source_name="")
