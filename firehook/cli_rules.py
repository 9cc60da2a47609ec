"""Rule commands: ``apply``, ``triggers``, ``schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from config.model import ConfigFile, OnHook
from config.rules import RulesStore
from firehook.app import App
from firehook.apply import apply_file
from firehook.cli_common import load_settings

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
    fh = App(load_settings()).open_db()
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


def schema() -> None:
    """Print the JSON Schema of the config file (for editors)."""
    doc = ConfigFile.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "firehook config file"
    typer.echo(json.dumps(doc, indent=2))


def register(app: typer.Typer) -> None:
    for command in (apply, triggers, schema):
        app.command()(command)
