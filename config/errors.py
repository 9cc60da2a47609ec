"""The one rooted exception tree of firehook.

Every error firehook raises on purpose derives from :class:`FirehookError`, and each also
subclasses the builtin it resembles, so callers can catch either.  Driver errors
(SQLAlchemy, kombu, OS) are translated at the boundary that meets them.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "FirehookError",
    "ListenError",
    "NoDatabase",
    "SchemaVersionError",
]


class FirehookError(Exception):
    """Root of every error firehook raises on purpose."""


class ConfigError(FirehookError, ValueError):
    """Settings or a config file are not valid; the message says where and what was expected."""


class DatabaseError(FirehookError, RuntimeError):
    """The database could not be reached or answered with an error."""


class SchemaVersionError(DatabaseError):
    """The database schema is newer than this firehook, or cannot be migrated."""


class NoDatabase(ConfigError):
    """A command that only reads found no firehook database where the settings point."""


class ListenError(FirehookError, OSError):
    """A role could not listen on its address (the port is in use, or the host is not ours)."""
