"""What every CLI module shares: the Typer app, exit codes, user errors, settings."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from firehook.config import ConfigError, FirehookError, Settings
from firehook.config.envcheck import environment, explain, unknown_variables

__all__ = [
    "EXIT_FAILED_RUN",
    "EXIT_LISTEN",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "UsageError",
    "app",
    "fail",
    "load_settings",
    "parse_time",
    "warn_unknown_settings",
]

log = logging.getLogger("firehook.cli")

EXIT_OK = 0
EXIT_FAILED_RUN = 1  # the function ran and failed
EXIT_USAGE = 2  # the user's input is wrong (bad JSON, unknown function, missing file)
EXIT_UNAVAILABLE = 3  # the database or another service could not be used
EXIT_LISTEN = 4  # a server role cannot listen on its address (port in use, host not ours)

app = typer.Typer(
    name="firehook",
    help="Run small Python functions on demand, on data-change events and on schedules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # plain help: Typer's rich help shows every flag as taking a value (`--json <bool>`)
    rich_markup_mode=None,
)


class UsageError(FirehookError, ValueError):
    """A mistake in what the user typed."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"firehook: error: {message}", err=True)
    raise typer.Exit(code)


def _variable(loc: tuple[Any, ...]) -> str:
    """``("retry", "retry_on", 0)`` -> ``FIREHOOK_RETRY__RETRY_ON (item 1)``."""
    names: list[str] = []
    for part in loc:
        if isinstance(part, int):
            return f"FIREHOOK_{'__'.join(names).upper()} (item {part + 1})"
        names.append(str(part))
    return f"FIREHOOK_{'__'.join(names).upper()}"


def load_settings() -> Settings:
    """``Settings()`` with every mistake as one line naming the variables."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"{_variable(err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid setting {problems}") from None
    except SettingsError as e:  # a value that is not the JSON a list or group needs
        raise ConfigError(explain(e, environment(os.environ))) from None


def warn_unknown_settings() -> None:
    """Log a warning for each ``FIREHOOK_`` variable that names no setting (a typo)."""
    for unknown in unknown_variables(environment(os.environ)):
        log.warning("%s", unknown)


def parse_time(option: str, text: str | None) -> datetime | None:
    """An ISO 8601 time with a UTC offset, or a clear error naming the option."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise UsageError(f"{option} needs a UTC offset, e.g. 2026-12-01T20:00:00+08:00")
    return value
