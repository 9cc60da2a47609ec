"""What every CLI module shares: the Typer app, exit codes, user errors, settings."""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

import typer
from pydantic import ValidationError

from firehook.config import ConfigError, FirehookError, Settings

__all__ = [
    "EXIT_FAILED_RUN",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "UsageError",
    "app",
    "fail",
    "load_settings",
    "parse_time",
]

EXIT_OK = 0
EXIT_FAILED_RUN = 1  # the function ran and failed
EXIT_USAGE = 2  # the user's input is wrong (bad JSON, unknown function, missing file)
EXIT_UNAVAILABLE = 3  # the database or another service could not be used

app = typer.Typer(
    name="firehook",
    help="Run small Python functions on demand, on data-change events and on schedules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class UsageError(FirehookError, ValueError):
    """A mistake in what the user typed."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"firehook: error: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """``Settings()`` with validation errors as one line naming the variables."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"FIREHOOK_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"invalid setting {problems}") from None


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
