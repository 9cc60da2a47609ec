"""Schema creation and evolution: a versioned approach, no Alembic.

The database holds one row in ``firehook_schema`` with the schema version it is at.  On first
use the tables are created from the SQLModel metadata and stamped with
:data:`SCHEMA_VERSION`.  A later release that changes a table bumps
:data:`SCHEMA_VERSION` and adds a step to :data:`MIGRATIONS` (``{2: upgrade_to_2}``), which
runs in the same transaction as the stamp and gets the code's metadata (the tables as they are
now).  A database newer than the code is refused.
Concurrent first starts are serialised (an advisory transaction lock on PostgreSQL, the
write lock on SQLite).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import Column, Engine, Integer, MetaData, Table, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from firehook.config.db import is_sqlite, write_tx
from firehook.config.errors import DatabaseError, NoDatabase, SchemaVersionError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ensure_schema",
    "existing_schema_version",
    "project_database_url",
    "require_database",
    "schema_version",
    "where",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2


def _upgrade_to_2(conn: Connection, metadata: MetaData) -> None:
    """Idempotency keys unique per function: (function, idempotency_key), not the key alone."""
    table = metadata.tables.get("invocation")
    if table is None or not conn.dialect.has_table(conn, "invocation"):
        return
    if is_sqlite(conn):  # SQLite cannot drop a table's constraint: build the table again
        conn.exec_driver_sql("ALTER TABLE invocation RENAME TO invocation_v1")
        old_indexes = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invocation_v1'"
            " AND sql IS NOT NULL"
        ).scalars()
        for name in list(old_indexes):
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        table.create(conn)
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        conn.exec_driver_sql(
            f"INSERT INTO invocation ({columns}) SELECT {columns} FROM invocation_v1"
        )
        conn.exec_driver_sql("DROP TABLE invocation_v1")
        return
    for unique in inspect(conn).get_unique_constraints("invocation"):
        if unique["column_names"] == ["idempotency_key"] and unique["name"]:
            conn.exec_driver_sql(f'ALTER TABLE invocation DROP CONSTRAINT "{unique["name"]}"')
    for index in table.indexes:
        if index.name == "ux_invocation_function_key":
            index.create(conn, checkfirst=True)


MIGRATIONS: Mapping[int, Callable[[Connection, MetaData], None]] = {2: _upgrade_to_2}

_LOCK_KEY = 0x66697265686F6F6B  # "firehook"
_version_meta = MetaData()
_version_table = Table(
    "firehook_schema",
    _version_meta,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)


def schema_version(engine: Engine) -> int | None:
    """The version stamped in the database, or None when firehook never ran there."""
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "firehook_schema"):
            return None
        return conn.execute(select(_version_table.c.version)).scalar_one_or_none()


def where(engine: Engine) -> str:
    """The database's URL for messages: a SQLite file as an absolute path, no password."""
    url = engine.url
    if is_sqlite(engine) and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(str(url.database)).resolve()))
    return url.render_as_string(hide_password=True)


def project_database_url(url: str, directory: Path) -> str:
    """``url`` with a relative SQLite file placed in ``directory`` (``firehook init DIR``)."""
    parsed = make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or database in (None, "", ":memory:")
        or Path(str(database)).is_absolute()
    ):
        return url
    return parsed.set(database=str(directory / str(database))).render_as_string(hide_password=False)


def existing_schema_version(engine: Engine) -> int | None:
    """:func:`schema_version`, creating nothing: None for a SQLite file that is not there."""
    database = engine.url.database
    on_disk = is_sqlite(engine) and database not in (None, "", ":memory:")
    if on_disk and not Path(str(database)).exists():
        return None
    try:
        return schema_version(engine)
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise DatabaseError(f"could not read the database {where(engine)}: {reason}") from e


def require_database(engine: Engine) -> None:
    """Refuse (:class:`NoDatabase`) a database firehook never used, creating nothing.

    For commands that only read: run in the wrong folder, or against the wrong URL, they
    must not leave an empty ``firehook.db`` or firehook's tables behind.
    """
    if existing_schema_version(engine) is None:
        raise NoDatabase(
            f"no firehook database at {where(engine)} (run `firehook init` or `firehook serve` "
            "there first, or set FIREHOOK_DATABASE_URL)"
        )


def ensure_schema(engine: Engine, metadata: MetaData) -> int:
    """Create or upgrade the tables in ``metadata``; return the version now in the database."""
    try:
        with write_tx(engine) as conn:
            if not is_sqlite(conn):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            return _ensure(conn, metadata)
    except SQLAlchemyError as e:
        raise DatabaseError(f"could not prepare the database schema: {e}") from e


def _ensure(conn: Connection, metadata: MetaData) -> int:
    _version_meta.create_all(conn, checkfirst=True)
    current = conn.execute(select(_version_table.c.version)).scalar_one_or_none()
    if current is None:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(_version_table.insert().values(id=1, version=SCHEMA_VERSION))
        log.info("created the firehook schema at version %d", SCHEMA_VERSION)
        return SCHEMA_VERSION
    if current > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database is at schema version {current}, newer than this firehook "
            f"({SCHEMA_VERSION}); upgrade firehook"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        step = MIGRATIONS.get(version)
        if step is None:
            raise SchemaVersionError(f"no migration to schema version {version}")
        log.info("migrating the firehook schema to version %d", version)
        step(conn, metadata)
    # tables added since (without a data change) are created here too
    metadata.create_all(conn, checkfirst=True)
    if current != SCHEMA_VERSION:
        conn.execute(_version_table.update().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
