"""Queue and daemon commands: ``worker``, ``api``, ``serve``, ``cancel``, ``replay``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from firehook.app import App
from firehook.apply import apply_file
from firehook.cli_common import UsageError, load_settings, parse_time
from firehook.daemon import (
    ConsumerRole,
    Role,
    SchedulerRole,
    WorkerRole,
    run_roles,
    with_status,
)
from firehook.invoker.envelope import JobNotFound, NotCancellable, Status
from firehook.invoker.store import InvocationFilter

__all__ = ["register"]


def _app() -> App:
    return App(load_settings())


def _usage(message: str) -> UsageError:
    return UsageError(message)


def worker() -> None:
    """Run the queue worker: claim due runs and run them, until SIGTERM."""
    app = _app()
    sys.exit(run_roles(app, with_status(app, [WorkerRole(app)], broker=False), "worker"))


HostOption = Annotated[
    str | None, typer.Option("--host", help="listen address (FIREHOOK_HTTP__HOST)")
]
PortOption = Annotated[
    int | None, typer.Option("--port", min=0, max=65535, help="port (FIREHOOK_HTTP__PORT)")
]


def consumer() -> None:
    """Run the event consumer: turn broker events into queued runs, until SIGTERM."""
    app = _app()
    sys.exit(run_roles(app, with_status(app, [ConsumerRole(app)], broker=True), "consumer"))


def api(host: HostOption = None, port: PortOption = None) -> None:
    """Run the HTTP API alone (MinCloud invoke and sign-in, /v1/), until SIGTERM."""
    from firehook.api import ApiRole  # late: other commands need no web stack

    app = _app()
    sys.exit(run_roles(app, [ApiRole(app, host=host, port=port)], "api"))


def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="apply this config file before starting")
    ] = None,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Run firehook on one machine: every role in one process tree."""
    # imported before the schema is prepared: it declares the API's user tables
    from firehook.api import ApiRole

    app = _app()
    if config is not None:
        app.open_db()
        diff, version = apply_file(config, app.rules_store, app.registry, app.settings)
        typer.echo(f"applied {config}: rules version {version} ({diff.summary()})")
    roles: list[Role] = [
        WorkerRole(app),
        ConsumerRole(app),
        SchedulerRole(app),
        ApiRole(app, host=host, port=port),
    ]
    sys.exit(run_roles(app, roles, "serve"))


def cancel(
    job_id: Annotated[str | None, typer.Argument(help="the run's id")] = None,
    key: Annotated[str | None, typer.Option("--key", help="the run's idempotency key")] = None,
    function: Annotated[
        str | None,
        typer.Option("--function", "-f", help="with --key: the function the key belongs to"),
    ] = None,
) -> None:
    """Cancel a waiting run (by id, or by idempotency key [and function])."""
    if (job_id is None) == (key is None):
        raise _usage("name the run: firehook cancel ID, or firehook cancel --key K")
    fh = _app().open_db(create=False)
    try:
        cancelled = fh.dispatcher.cancel(job_id, key, function)
    except (JobNotFound, NotCancellable) as e:
        raise _usage(str(e)) from None
    for cid in cancelled:
        typer.echo(f"cancelled {cid}")


def replay(
    job_ids: Annotated[list[str] | None, typer.Argument(help="runs to queue again")] = None,
    function: Annotated[str | None, typer.Option("--function", "-f")] = None,
    status: Annotated[str | None, typer.Option("--status", "-s")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO time, e.g. 2026-11-29T00:00Z")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100000)] = 1000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would be queued")] = False,
) -> None:
    """Queue finished runs again: by id, or every run matching the filters."""
    ids = job_ids or []
    filtered = any(v is not None for v in (function, status, since, until))
    if not ids and not filtered:
        raise _usage("name runs to replay: IDs, or --function/--status/--since/--until")
    if status is not None and status not in {s.value for s in Status}:
        raise _usage(f"unknown status {status!r}")
    flt = None
    if filtered:
        flt = InvocationFilter(
            function=function,
            status=status,
            since=parse_time("--since", since),
            until=parse_time("--until", until),
            limit=limit,
        )
    fh = _app().open_db(create=False)
    try:
        done = fh.dispatcher.replay(ids, flt, dry_run=dry_run)
    except JobNotFound as e:
        raise _usage(str(e)) from None
    for old, new in done:
        if new is None:
            typer.echo(f"would replay {old.id} ({old.function}, {old.status})")
        else:
            typer.echo(f"replayed {old.id} ({old.function}, {old.status}) as {new}")
    verb = "would be queued (dry run: nothing changed)" if dry_run else "queued"
    typer.echo(f"{len(done)} run(s) {verb}", err=True)


def register(app: typer.Typer) -> None:
    for command in (worker, consumer, api, serve, cancel, replay):
        app.command()(command)
