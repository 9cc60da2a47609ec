"""Schedule commands: ``scheduler`` (the role) and ``schedules`` (what is scheduled)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Annotated, Any

import typer

from firehook.app import App
from firehook.cli_common import load_settings
from firehook.config.db import utcnow
from firehook.config.model import ScheduleSpec
from firehook.daemon import SchedulerRole, run_roles, with_status
from firehook.scheduler.cron import CronError, CronSchedule
from firehook.scheduler.ticks import StateStore

__all__ = ["register"]


def scheduler() -> None:
    """Run a cron scheduler until SIGTERM (run as many as you like: all active, no duplicates)."""
    app = App(load_settings())
    sys.exit(run_roles(app, with_status(app, [SchedulerRole(app)], broker=False), "scheduler"))


def _compact(value: timedelta) -> str:
    """``2h``, ``1m30s``, ``45s``."""
    seconds = int(value.total_seconds())
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or f"{value.total_seconds():g}s"


def _describe(spec: ScheduleSpec, default_tz: str, last: Any, count: int) -> dict[str, Any]:
    tz = spec.timezone or default_tz
    row: dict[str, Any] = {
        "name": spec.name,
        "cron": spec.cron,
        "timezone": tz,
        "invoke": spec.invoke,
        "enabled": spec.enabled,
        "misfire": spec.misfire,
        "misfire_grace": _compact(spec.misfire_grace),
        "max_instances": spec.max_instances,
        "last_tick": None,
        "next": [],
        "error": None,
    }
    try:
        cron = CronSchedule(spec.cron, tz, start_date=spec.start_date, end_date=spec.end_date)
    except CronError as e:
        row["error"] = str(e)
        return row
    if last is not None:
        row["last_tick"] = last.astimezone(cron.tz).isoformat()
    if spec.enabled:
        row["next"] = [t.isoformat() for t in cron.upcoming(utcnow(), count)]
    return row


def schedules(
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=100)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the schedules with their next fire times, each in its own time zone."""
    fh = App(load_settings()).open_db(create=False)
    rules = fh.rules_store.load()
    last = StateStore(fh.engine).load()
    rows = [_describe(s, fh.settings.timezone, last.get(s.name), count) for s in rules.schedules]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no schedules (firehook apply FILE adds them)")
    for r in rows:
        flags = [f"misfire {r['misfire']} within {r['misfire_grace']}"]
        if r["max_instances"]:
            flags.append(f"max_instances {r['max_instances']}")
        if not r["enabled"]:
            flags.append("paused")
        typer.echo(
            f"{r['name']}: {r['cron']!r} {r['timezone']} -> {r['invoke']} ({', '.join(flags)})"
        )
        if r["error"]:
            typer.echo(f"  ERROR: {r['error']}")
        if r["last_tick"]:
            typer.echo(f"  last tick  {r['last_tick']}")
        for i, t in enumerate(r["next"]):
            typer.echo(f"  {'next' if i == 0 else '':<10} {t}")
        if r["enabled"] and not r["next"] and not r["error"]:
            typer.echo("  no more ticks (past its end_date)")
    typer.echo(f"rules version {rules.version}")


def register(app: typer.Typer) -> None:
    for command in (scheduler, schedules):
        app.command()(command)
