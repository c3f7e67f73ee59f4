"""429 arithmetic: Retry-After, Open-Meteo's reason windows, backoff and jitter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apimirror.ratelimit import (
    backoff,
    jitter,
    parse_retry_after,
    throttle_wait,
    wait_for_window,
    window_bounds,
)

NOW = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)


def test_retry_after_in_seconds() -> None:
    """A delta-seconds Retry-After is taken as it is."""
    assert parse_retry_after("7", now=NOW) == 7.0


def test_retry_after_as_http_date() -> None:
    """An HTTP-date Retry-After becomes the seconds until that date."""
    assert parse_retry_after("Thu, 31 Dec 2026 23:59:50 GMT", now=NOW) == 20.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    """A missing or unparsable Retry-After gives None so other rules apply."""
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_date_in_the_past_means_no_wait() -> None:
    """A Retry-After date already passed asks for no wait."""
    assert parse_retry_after("Thu, 31 Dec 2026 23:00:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize(
    ("window", "expected"),
    [("minute", 30.0), ("hour", 30.0), ("day", 30.0), ("month", 30.0)],
)
def test_windows_reset_on_utc_calendar_boundaries(window: str, expected: float) -> None:
    """Each window ends at the next UTC minute, full hour, midnight or month start."""
    assert wait_for_window(window, now=NOW) == expected


def test_window_bounds_mid_month() -> None:
    """Windows start at the calendar boundary containing the instant."""
    now = datetime(2026, 2, 14, 10, 17, 45, tzinfo=UTC)
    assert window_bounds("hour", now) == (
        datetime(2026, 2, 14, 10, tzinfo=UTC),
        datetime(2026, 2, 14, 11, tzinfo=UTC),
    )
    assert window_bounds("month", now)[1] == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown window"):
        window_bounds("week", now)


def test_throttle_wait_prefers_retry_after_then_reason_then_backoff() -> None:
    """Retry-After wins; else the named window's reset; else exponential backoff."""
    now = datetime(2026, 5, 1, 12, 0, 15, tzinfo=UTC)
    assert throttle_wait(retry_after="3", window="day", attempt=0, now=now) == 3.0
    assert throttle_wait(retry_after=None, window="minute", attempt=0, now=now) == 45.0
    assert throttle_wait(retry_after=None, window="hour", attempt=0, now=now) == 3600 - 15
    assert throttle_wait(retry_after=None, window=None, attempt=2, now=now) == backoff(2)


def test_backoff_grows_and_is_capped() -> None:
    """Backoff doubles per attempt up to its cap."""
    assert [backoff(i, base=1, cap=10) for i in range(6)] == [1, 2, 4, 8, 10, 10]


def test_jitter_is_positive_and_bounded() -> None:
    """Jitter always adds a positive delay no larger than the configured maximum."""
    samples = [jitter(2.0) for _ in range(200)]
    assert all(0 < s <= 2.0 for s in samples)
    assert jitter(0) == 0.0
