"""Rule and event commands: ``apply``, ``triggers``, ``schema``, ``emit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from firehook.app import App
from firehook.apply import apply_file
from firehook.cli_common import UsageError, load_settings
from firehook.config.model import ConfigFile, OnHook
from firehook.config.rules import RulesStore
from firehook.triggers.events import InvalidEvent, change_event
from firehook.triggers.publisher import Publisher, topology_for

__all__ = ["register"]


def apply(
    file: Annotated[Path, typer.Argument(help="the config file (YAML)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the diff, write nothing")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="remove rules that are not in the file")
    ] = False,
) -> None:
    """Validate a config file and write its rules to the store in one transaction."""
    fh = App(load_settings()).open_db()
    diff, version = apply_file(
        file, RulesStore(fh.engine), fh.registry, fh.settings, prune=prune, dry_run=dry_run
    )
    for line in diff.lines():
        typer.echo(line)
    if dry_run:
        typer.echo(f"dry run: {diff.summary()}; nothing written (rules version {version})")
    elif diff.empty:
        typer.echo(f"no changes ({diff.summary()}); rules version {version}")
    else:
        typer.echo(f"applied rules version {version}: {diff.summary()}")


def triggers(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the trigger rules in the store."""
    fh = App(load_settings()).open_db(create=False)
    rules = RulesStore(fh.engine).load()
    if as_json:
        typer.echo(
            json.dumps([t.model_dump(mode="json") for t in rules.triggers], ensure_ascii=False)
        )
        return
    if not rules.triggers:
        typer.echo("no triggers (firehook apply FILE adds them)")
    for t in rules.triggers:
        on = (
            f"hook {t.on.hook}"
            if isinstance(t.on, OnHook)
            else f"{t.on.table} {','.join(t.on.events)}"
        )
        extras = []
        if t.delay:
            extras.append(f"delay {t.delay.total_seconds():g}s")
        if t.frequency.mode != "always":
            extras.append(t.frequency.mode)
        if not t.enabled:
            extras.append("disabled")
        suffix = f" ({', '.join(extras)})" if extras else ""
        typer.echo(f"{t.name:<32} on {on:<32} -> {t.invoke}{suffix}")
    typer.echo(f"rules version {rules.version}")


def _standard(node: Any) -> Any:
    """Drop what pydantic adds for duration bounds (``"gt": "PT0S"``): no JSON Schema word."""
    if isinstance(node, dict):
        return {
            k: _standard(v)
            for k, v in node.items()
            if not (k in ("gt", "ge", "lt", "le") and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_standard(v) for v in node]
    return node


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file."""
    doc: dict[str, Any] = _standard(ConfigFile.model_json_schema())
    for section in ("functions", "triggers", "schedules"):  # `functions:` with nothing under it
        prop = doc["properties"][section]
        doc["properties"][section] = {
            "anyOf": [prop, {"type": "null"}],
            "default": prop.pop("default", None),
        }
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "firehook config file"
    return doc


def schema() -> None:
    """Print the JSON Schema of the config file (for editors)."""
    typer.echo(json.dumps(config_schema(), indent=2))


def _json_option(name: str, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{name} is not valid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{name} must be a JSON object (the record), got {type(value).__name__}")
    return value


def emit(
    table: Annotated[str, typer.Argument(help="the table, e.g. orders")],
    event: Annotated[str, typer.Argument(help="on_create, on_update or on_delete")],
    after: Annotated[str | None, typer.Option("--after", help="the record after, as JSON")] = None,
    before: Annotated[
        str | None, typer.Option("--before", help="the record before, as JSON")
    ] = None,
    source: Annotated[str, typer.Option("--source", help="who produced it")] = "cli",
    subject: Annotated[str | None, typer.Option("--subject", help="the record's key")] = None,
) -> None:
    """Publish a data-change event to the broker (FIREHOOK_BROKER_URL)."""
    try:
        ev = change_event(
            table,
            event,
            after=_json_option("--after", after),
            before=_json_option("--before", before),
            source=source,
            subject=subject,
        )
    except InvalidEvent as e:
        raise UsageError(str(e)) from None
    settings = load_settings()
    with Publisher(settings.broker_url, topology_for(settings.triggers)) as pub:
        pub.publish(ev)
    typer.echo(ev.id)
    typer.echo(f"published {ev.routing_key}", err=True)


def register(app: typer.Typer) -> None:
    for command in (apply, triggers, schema, emit):
        app.command()(command)
