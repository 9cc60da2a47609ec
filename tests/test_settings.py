"""Settings from the environment and .env, and durations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from firehook.config import ConfigError, Settings, parse_duration
from firehook.config.envcheck import Unknown, environment, setting_names, unknown_variables


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


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("FIREHOOK_RETRY__RETRY_ON", "execution_failed", ("execution_failed",)),
        ("FIREHOOK_RETRY__RETRY_ON", "worker_lost, execution_failed", ("worker_lost", "execution_failed")),
        ("FIREHOOK_RETRY__RETRY_ON", '["worker_lost"]', ("worker_lost",)),
        ("FIREHOOK_HTTP__CORS_ORIGINS", "https://shop.example", ["https://shop.example"]),
        ("FIREHOOK_HTTP__CORS_ORIGINS", "", []),
        ("FIREHOOK_AUTH__JWT_ALGORITHMS", "HS256,RS256", ["HS256", "RS256"]),
        ("FIREHOOK_AUTH__JWT_ALGORITHMS", '["RS256"]', ["RS256"]),
    ],
)  # fmt: skip
def test_list_settings_take_plain_comma_separated_or_json_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, expected: object
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    s = Settings()
    got = {
        "FIREHOOK_RETRY__RETRY_ON": s.retry.retry_on,
        "FIREHOOK_HTTP__CORS_ORIGINS": s.http.cors_origins,
        "FIREHOOK_AUTH__JWT_ALGORITHMS": s.auth.jwt_algorithms,
    }[name]
    assert got == expected


def test_a_list_in_a_groups_json_takes_a_plain_value_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREHOOK_RETRY", '{"attempts": 2, "retry_on": "worker_lost"}')
    assert Settings().retry.retry_on == ("worker_lost",)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("FIREHOOK_HTTP__PROT", "FIREHOOK_HTTP__PORT"),
        ("FIREHOOK_DATABASE__URL", "FIREHOOK_DATABASE_URL"),
        ("FIREHOOK_DATABSE_URL", "FIREHOOK_DATABASE_URL"),
        ("FIREHOOK_TRIGERS__QUEUE", "FIREHOOK_TRIGGERS__QUEUE"),
        ("FIREHOOK_WORKER__LEASE_TIME", "FIREHOOK_WORKER__LEASE"),
        ("FIREHOOK_HTTP__CORS_ORIGINS__X", "FIREHOOK_HTTP__CORS_ORIGINS"),
        ("firehook_invoker__pool_sise", "FIREHOOK_INVOKER__POOL_SIZE"),
        ("FIREHOOK_ZZZZZZZZZZZZ", None),
    ],
)
def test_a_misspelled_variable_is_found_with_the_closest_setting(
    name: str, suggestion: str | None
) -> None:
    assert unknown_variables({name: "1"}) == [Unknown(name, suggestion)]


@pytest.mark.parametrize(
    "name",
    [
        "FIREHOOK_HTTP__PORT",
        "FIREHOOK_DATABASE_URL",
        "firehook_http__port",
        "FIREHOOK_TRIGGERS__SOURCE_KEYS__SHOP",  # an entry of a dict setting
        "FIREHOOK_FUNCTIONS__HELLO",
        "FIREHOOK_FUNCTIONS__HELLO__RETRY__ATTEMPTS",
        "FIREHOOK_TEST_POSTGRES_URL",  # the test suite's own
        "FIREHOOK_BENCH_AMQP_URL",
        "OTHER_THING",
    ],
)
def test_real_settings_and_other_variables_are_not_reported(name: str) -> None:
    assert unknown_variables({name: "1"}) == []


def test_every_setting_name_resolves() -> None:
    names = setting_names()
    assert "FIREHOOK_HTTP__PORT" in names and "FIREHOOK_RETRY__RETRY_ON" in names
    assert unknown_variables(dict.fromkeys(names, "1")) == []


def test_the_env_file_is_checked_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("FIREHOOK_HTTP__PROT=9000\nOTHER=1\n")
    found = environment({"FIREHOOK_HTTP__PORT": "1"}, env_file)
    assert found == {"FIREHOOK_HTTP__PROT": "9000", "FIREHOOK_HTTP__PORT": "1"}
    assert [u.name for u in unknown_variables(found)] == ["FIREHOOK_HTTP__PROT"]
