"""Retry policy: backoff shape, deterministic jitter, settings."""

from __future__ import annotations

import pytest

from shared.retry import DEFAULT_POLICIES, RetryPolicy, policies_from_env, policy_kind


def test_defaults_match_the_seed() -> None:
    assert DEFAULT_POLICIES["database"].max_number_of_attempts == 3
    assert DEFAULT_POLICIES["database"].first_retry_interval_in_milliseconds == 2000
    assert DEFAULT_POLICIES["api"].max_number_of_attempts == 5
    assert DEFAULT_POLICIES["api"].first_retry_interval_in_milliseconds == 1000
    assert policy_kind("api") == "api" and policy_kind("oracle") == "database"


def test_backoff_grows_is_capped_and_jitter_stays_in_bounds() -> None:
    policy = RetryPolicy(10, 1000, backoff_coefficient=2, max_retry_interval_in_milliseconds=5000, jitter=0.2)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = {policy.delay_seconds(attempt, f"job{i}") for i in range(50)}
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(delays) > 10  # jitter spreads jobs apart


def test_jitter_is_deterministic_per_seed() -> None:
    policy = DEFAULT_POLICIES["api"]
    assert policy.delay_seconds(2, "run/3") == policy.delay_seconds(2, "run/3")
    assert policy.delay_seconds(2, "run/3") != policy.delay_seconds(2, "run/4")


def test_settings_override_and_bad_values_name_the_setting() -> None:
    policies = policies_from_env({"RETRY_DATABASE_MAX_ATTEMPTS": "4", "RETRY_API_FIRST_INTERVAL_MS": "10", "RETRY_JITTER": "0"})
    assert policies["database"].max_number_of_attempts == 4 and policies["api"].first_retry_interval_in_milliseconds == 10
    assert policies["api"].jitter == 0 and policies["api"].delay_seconds(1, "x") == 0.01
    with pytest.raises(ValueError, match="RETRY_API_MAX_ATTEMPTS: 'many'"):
        policies_from_env({"RETRY_API_MAX_ATTEMPTS": "many"})
    with pytest.raises(ValueError, match="max_number_of_attempts must be >= 1"):
        policies_from_env({"RETRY_API_MAX_ATTEMPTS": "0"})
    assert RetryPolicy.from_dict(policies["api"].to_dict()) == policies["api"]
