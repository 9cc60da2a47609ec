"""Settings, the database engine, schema versioning and (later) the rules store."""

from firehook.config.db import UTCDateTime, create_db_engine, is_sqlite, utcnow, write_tx
from firehook.config.durations import Duration, format_duration, parse_duration
from firehook.config.errors import ConfigError, DatabaseError, FirehookError, SchemaVersionError
from firehook.config.functions import FunctionOptions, RetryPolicy
from firehook.config.schema import SCHEMA_VERSION, ensure_schema, schema_version
from firehook.config.settings import InvokerSettings, Settings, WorkerSettings

__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "DatabaseError",
    "Duration",
    "FirehookError",
    "FunctionOptions",
    "InvokerSettings",
    "RetryPolicy",
    "SchemaVersionError",
    "Settings",
    "UTCDateTime",
    "WorkerSettings",
    "create_db_engine",
    "ensure_schema",
    "format_duration",
    "is_sqlite",
    "parse_duration",
    "schema_version",
    "utcnow",
    "write_tx",
]
