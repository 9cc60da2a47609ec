"""Settings from the environment and .env, and durations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from firehook.config import ConfigError, Settings, parse_duration


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.database_url == "sqlite:///firehook.db"
    assert s.functions_dir == Path("functions")
    assert s.invoker.sync_timeout == timedelta(seconds=5)
    assert s.invoker.async_timeout == timedelta(seconds=300)


def test_env_prefix_and_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREHOOK_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("FIREHOOK_INVOKER__SYNC_TIMEOUT", "2s")
    monkeypatch.setenv("FIREHOOK_INVOKER__POOL_SIZE", "3")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.invoker.sync_timeout == timedelta(seconds=2)
    assert s.invoker.pool_size == 3


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("FIREHOOK_INVOKER__ASYNC_TIMEOUT=10m\n")
    assert Settings().invoker.async_timeout == timedelta(minutes=10)


def test_bad_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREHOOK_INVOKER__SYNC_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="sync_timeout"):
        Settings()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("5s", timedelta(seconds=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("2d", timedelta(days=2)),
        ("1.5s", timedelta(seconds=1.5)),
        ("10", timedelta(seconds=10)),
        (7, timedelta(seconds=7)),
        (timedelta(seconds=3), timedelta(seconds=3)),
    ],
)
def test_durations(text: str | int | timedelta, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m", "5x", "-5s", "5 minutes", "s5", True, -1])
def test_bad_durations_say_what_was_expected(text: str | int) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)
