"""Settings: environment names, Docker-secret files, refusal of default secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from apimirror.config import DEFAULT_DEV_TOKEN, Settings, get_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "APIMIRROR_ENV",
        "APIMIRROR_API_TOKENS",
        "APIMIRROR_API_TOKENS_FILE",
        "MONGODB_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values come from the documented environment variable names."""
    monkeypatch.setenv("MONGODB_DB", "elsewhere")
    monkeypatch.setenv("APIMIRROR_LIMIT_MINUTE", "7")
    settings = Settings()
    assert settings.mongodb_db == "elsewhere"
    assert settings.limits()["minute"] == 7


def test_secret_file_stands_in_for_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A `*_FILE` variable (a Docker secret) provides the secret's value."""
    secret = tmp_path / "tokens"
    secret.write_text("alpha, beta\n", encoding="utf-8")
    monkeypatch.setenv("APIMIRROR_API_TOKENS_FILE", str(secret))
    assert Settings().tokens() == ["alpha", "beta"]


def test_default_token_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production mode will not start with the development token."""
    monkeypatch.setenv("APIMIRROR_ENV", "production")
    with pytest.raises(ValidationError, match="APIMIRROR_API_TOKENS"):
        Settings()
    monkeypatch.setenv("APIMIRROR_API_TOKENS", "a-real-secret")
    assert Settings().tokens() == ["a-real-secret"]


def test_development_accepts_default_token() -> None:
    """Development mode runs with the built-in token so the demo needs no set-up."""
    assert Settings().tokens() == [DEFAULT_DEV_TOKEN]


def test_hard_limit_must_exceed_soft_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hard task limit at or below the soft one is a configuration error."""
    monkeypatch.setenv("APIMIRROR_TASK_SOFT_LIMIT", "30")
    monkeypatch.setenv("APIMIRROR_TASK_HARD_LIMIT", "30")
    with pytest.raises(ValidationError, match="HARD_LIMIT"):
        Settings()


def test_get_settings_is_cached() -> None:
    """`get_settings()` reads the environment once and returns the same object."""
    assert get_settings() is get_settings()
