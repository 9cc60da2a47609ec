"""The ``firehook`` command line (Typer)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import SQLModel

from firehook import cli_queue, cli_rules, cli_schedule, output
from firehook import version as firehook_version
from firehook.app import App
from firehook.cli_common import (
    EXIT_FAILED_RUN,
    EXIT_LISTEN,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    UsageError,
    app,
    fail,
    load_settings,
    parse_time,
    warn_unknown_settings,
)
from firehook.config import FirehookError, create_db_engine, ensure_schema, parse_duration
from firehook.config.errors import ConfigError, ListenError
from firehook.config.schema import existing_schema_version, project_database_url, where
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.envelope import InvokeError, Status
from firehook.invoker.store import InvocationFilter
from firehook.logfmt import setup_logging
from firehook.templates import CONFIG, HELLO_WORLD

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"firehook {firehook_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error")
    ] = "warning",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        fail(f"unknown log level {log_level!r}")
    try:
        fmt = load_settings().log_format
    except ConfigError:
        fmt = "text"  # the command itself reports the bad setting
    setup_logging(level, fmt)
    warn_unknown_settings()


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="where to create the project")] = Path("."),
) -> None:
    """Create functions/helloWorld.py, a commented firehook.yaml and the database."""
    files = {
        directory / "functions" / "helloWorld.py": HELLO_WORLD,
        directory / "firehook.yaml": CONFIG,
    }
    for path, content in files.items():
        if path.exists():
            typer.echo(f"kept     {path} (exists)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        typer.echo(f"created  {path}")
    _init_database(directory)
    typer.echo(f'next: cd {directory} && firehook invoke helloWorld --data \'{{"name": "allen"}}\'')


def _init_database(directory: Path) -> None:
    """Prepare the database the settings name; a relative SQLite file goes in ``directory``."""
    settings = load_settings()
    url = project_database_url(settings.database_url, directory)
    engine = create_db_engine(url, busy_timeout=settings.database_busy_timeout)
    try:
        existed = existing_schema_version(engine) is not None
        ensure_schema(engine, SQLModel.metadata)
        verb = "kept    " if existed else "created "
        typer.echo(f"{verb} database {where(engine)}{' (exists)' if existed else ''}")
    finally:
        engine.dispose()


@app.command()
def functions(
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="import each one in a worker")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the functions found, with their load errors."""
    fh = App(load_settings(), pool_size=1)
    infos = fh.registry.list()
    errors: dict[str, str | None] = {i.name: i.error for i in infos}
    if check and any(i.ok for i in infos):
        with fh.pool:
            for info in infos:
                if info.ok:
                    errors[info.name] = fh.pool.check(info)
    rows = [{"name": i.name, "path": str(i.path), "error": errors[i.name]} for i in infos]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no functions in {fh.settings.functions_dir}/ (firehook init creates one)")
    for row in rows:
        typer.echo(
            f"{row['name']:<32} {'ok' if row['error'] is None else 'ERROR: ' + row['error']}"
        )


def _read_params(data: str | None, data_file: Path | None) -> Any:
    if data is not None and data_file is not None:
        raise UsageError("give --data or --data-file, not both")
    option = "--data"
    if data_file is not None:
        option = f"--data-file {data_file}"
        try:
            data = data_file.read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot read --data-file {data_file}: {e.strerror}") from None
    if data is None:
        return None
    return _parse_json(data, option)


def _parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{option} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None


@app.command()
def invoke(
    name: Annotated[str, typer.Argument(help="the function's name")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="params as JSON")] = None,
    data_file: Annotated[
        Path | None, typer.Option("--data-file", help="read params (JSON) from a file")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line")] = False,
    queued: Annotated[
        bool, typer.Option("--async", help="queue it and print the job id; a worker runs it")
    ] = False,
    delay: Annotated[
        str | None, typer.Option("--delay", help="queue it to run after 30s, 30m, 1h30m ...")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="queue it for a time: 2026-12-01T20:00:00+08:00")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="idempotency key: a second call returns the first run"),
    ] = None,
) -> None:
    """Run a function now and print its envelope, or queue it (--async, --delay, --at)."""
    params = _read_params(data, data_file)
    if queued or delay is not None or at is not None or key is not None:
        _enqueue(name, params, parse_delay(delay), parse_time("--at", at), key, as_json)
        return
    with App(load_settings(), pool_size=1) as fh:
        outcome = fh.dispatcher.run_sync(InvokeRequest(name, params, event_type="cli"))
    env = outcome.envelope.to_dict()
    if outcome.job_id is None:  # nothing ran: unknown function or bad params
        fail(env["error"]["message"])
    if as_json:
        typer.echo(json.dumps(env, ensure_ascii=False))
    else:
        typer.echo(json.dumps(env, ensure_ascii=False, indent=2))
        typer.echo(f"job {outcome.job_id}: {outcome.status}", err=True)
    if outcome.status is not Status.FULFILLED:
        raise typer.Exit(EXIT_FAILED_RUN)


def _enqueue(
    name: str,
    params: Any,
    delay: timedelta | None,
    at: datetime | None,
    key: str | None,
    as_json: bool,
) -> None:
    if at is not None and at <= datetime.now(UTC):
        typer.echo(
            f"firehook: warning: --at {at.isoformat()} is in the past: the run is due now",
            err=True,
        )
    fh = App(load_settings()).open_db()
    event_type = "delayed" if delay is not None or at is not None else "cli"
    try:
        queued = fh.dispatcher.enqueue(
            InvokeRequest(name, params, event_type=event_type), delay=delay, at=at, key=key
        )
    except InvokeError as e:
        raise UsageError(str(e)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "job_id": queued.job_id,
                    "created": queued.created,
                    "status": queued.status,
                    "due_at": queued.due_at.isoformat(),
                }
            )
        )
        return
    typer.echo(queued.job_id)
    what = "queued" if queued.created else f"already queued with key {key!r} ({queued.status})"
    typer.echo(f"{what}, due {queued.due_at.isoformat()}", err=True)


def parse_delay(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ConfigError as e:
        raise UsageError(f"--delay: {e}") from None


@app.command()
def logs(
    job_id: Annotated[str | None, typer.Argument(help="show one run in full")] = None,
    function: Annotated[str | None, typer.Option("--function", "-f")] = None,
    status: Annotated[str | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List recent runs, or show one run with its captured output."""
    if status is not None and status not in {s.value for s in Status}:
        raise UsageError(f"unknown status {status!r}; one of: {', '.join(s.value for s in Status)}")
    fh = App(load_settings()).open_db(create=False)
    if job_id is not None:
        row = fh.store.get(job_id)
        if row is None:
            hint = " (--json takes no value)" if job_id.lower() in ("true", "false") else ""
            raise UsageError(f"no run with id {job_id!r}{hint}")
        typer.echo(output.record_json(row) if as_json else output.record_text(row))
        return
    rows = fh.store.find(InvocationFilter(function=function, status=status, limit=limit))
    if as_json:
        typer.echo(
            json.dumps([output.record_dict(r, with_logs=False) for r in rows], ensure_ascii=False)
        )
        return
    typer.echo(output.table(rows))


cli_queue.register(app)
cli_rules.register(app)
cli_schedule.register(app)


def main() -> None:
    """Entry point: user mistakes and service errors are one line on stderr, never a traceback."""
    try:
        app()  # standalone mode: Typer handles its own usage errors (exit 2)
    except (UsageError, ConfigError) as e:
        typer.echo(f"firehook: error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except ListenError as e:
        hint = "is another firehook running there? choose another port"
        typer.echo(f"firehook: error: {e} ({hint})", err=True)
        sys.exit(EXIT_LISTEN)
    except FirehookError as e:
        typer.echo(f"firehook: error: {e}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
