"""The config file and the rules store: every kind of mistake, and apply's diff and versions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import Engine

from firehook.apply import apply_file
from firehook.config import Settings
from firehook.config.loader import ConfigFileError, parse_config
from firehook.config.rules import RulesStore, RulesView
from firehook.invoker.registry import Registry

GOOD = """
version: 1
functions:
  hello: {timeout: 20s, retry: {attempts: 5, backoff: 10s, max_backoff: 10m}}
triggers:
  - name: cancel-unpaid-orders
    on: {table: orders, events: [on_create]}
    when: {all: [{field: status, op: "=", value: unpaid}]}
    invoke: hello
    delay: 30m
schedules:
  - name: nightly-lottery
    cron: "0 20 * * *"
    timezone: Asia/Shanghai
    invoke: hello
    params: {prize: phone}
"""


def write(tmp_path: Path, text: str, name: str = "firehook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_the_design_example_parses_and_on_stays_a_string_key() -> None:
    cfg = parse_config(textwrap.dedent(GOOD)).config
    trig = cfg.triggers[0]
    assert trig.on.table == "orders"  # type: ignore[union-attr]
    assert trig.delay is not None and trig.delay.total_seconds() == 1800
    assert cfg.functions["hello"].retry is not None and cfg.functions["hello"].retry.attempts == 5
    assert cfg.schedules[0].params == {"prize": "phone"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\n", "f.yaml:1: version: expected 1"),
        ("triggers: []\n", "f.yaml: version: required field is missing"),
        ("version: 1\ntriggers: [\n", "f.yaml:3: not valid YAML"),
        ("- 1\n- 2\n", "f.yaml:1: expected a mapping with `version: 1`"),
        ("version: 1\nversion: 1\n", "not valid YAML"),
        (
            "version: 1\ntriggers:\n  - name: a\n    on: {table: t}\n    invoke: f\n    delai: 5m\n",
            "f.yaml:6: triggers[0].delai: unknown field; did you mean 'delay'?",
        ),
        (
            "version: 1\ntriggers:\n  - name: a\n    on: {table: t, events: [on_creat]}\n    invoke: f\n",
            "f.yaml:4: triggers[0].on.events[0]: expected 'on_create', 'on_update' or 'on_delete'",
        ),
        (
            "version: 1\ntriggers:\n  - name: a\n    on: {table: t}\n    invoke: f\n    delay: soon\n",
            "f.yaml:6: triggers[0].delay: expected a duration such as 30s, 5m or 1h30m, got 'soon'",
        ),
        (
            "version: 1\ntriggers:\n  - name: a\n    on: {tabel: t}\n    invoke: f\n",
            "f.yaml:4: triggers[0].on.tabel: unknown field",
        ),
        (
            "version: 1\ntriggers:\n  - name: a\n    on: {table: t}\n    invoke: f\n"
            "  - name: a\n    on: {table: t}\n    invoke: f\n",
            "two triggers are named 'a'",
        ),
        (
            "version: 1\nfunctions:\n  f: {retry: {attempts: 0}}\n",
            "f.yaml:3: functions.f.retry.attempts: Input should be greater than or equal to 1",
        ),
        (
            "version: 1\ntriggers:\n  - name: a\n    on: {table: t}\n    invoke: f\n"
            "    frequency: {cooldown: 0s}\n",
            "f.yaml:6: triggers[0].frequency: a cooldown needs a positive period",
        ),
        (
            "version: 1\nschedules:\n  - name: s\n    cron: '* * * * *'\n    invoke: f\n"
            "    misfire: sometimes\n",
            "f.yaml:6: schedules[0].misfire: expected 'skip', 'run_once' or 'run_all'",
        ),
    ],
)
def test_each_kind_of_mistake_names_file_line_field_and_expectation(
    text: str, expected: str
) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_config(text, "f.yaml")
    assert expected in str(info.value)
    assert "nothing applied" in str(info.value)


@pytest.fixture
def store(engine: Engine) -> RulesStore:
    return RulesStore(engine)


def test_semantic_mistakes_are_found_before_anything_is_written(
    store: RulesStore, functions_dir: Path, tmp_path: Path
) -> None:
    bad = write(
        tmp_path,
        """
        version: 1
        triggers:
          - name: t
            on: {table: orders}
            when: {all: [{field: status, op: "~", value: 1}]}
            invoke: nope
        schedules:
          - name: s
            cron: "61 * * * *"
            invoke: hello
          - name: z
            cron: "0 20 * * *"
            timezone: Mars/Olympus
            invoke: hello
        """,
    )
    with pytest.raises(ConfigFileError) as info:
        apply_file(bad, store, Registry(functions_dir), Settings())
    text = str(info.value)
    assert "firehook.yaml:6: triggers[0].invoke: no function 'nope'" in text
    assert "firehook.yaml:5: triggers[0].when.all[0].op: unknown operator '~'" in text
    assert "firehook.yaml:9: schedules[0].cron:" in text and "61" in text
    assert "firehook.yaml:13: schedules[1].timezone: unknown time zone 'Mars/Olympus'" in text
    assert store.version() == 0 and store.load().triggers == []


def test_apply_diff_versions_and_prune(
    store: RulesStore, functions_dir: Path, tmp_path: Path
) -> None:
    registry, settings = Registry(functions_dir), Settings()
    path = write(tmp_path, GOOD)
    planned, version = apply_file(path, store, registry, settings, dry_run=True)
    assert len(planned.added) == 3 and version == 0 and store.version() == 0
    diff, version = apply_file(path, store, registry, settings)
    assert version == 1 and sorted(diff.added) == [
        ("function", "hello"), ("schedule", "nightly-lottery"), ("trigger", "cancel-unpaid-orders"),
    ]  # fmt: skip
    again, version = apply_file(path, store, registry, settings)
    assert again.empty and again.unchanged == 3 and version == 1
    changed = write(tmp_path, GOOD.replace("delay: 30m", "delay: 10m").split("schedules:")[0])
    diff, version = apply_file(changed, store, registry, settings)
    assert diff.changed == [("trigger", "cancel-unpaid-orders")]
    assert diff.kept == [("schedule", "nightly-lottery")] and version == 2
    diff, version = apply_file(changed, store, registry, settings, prune=True)
    assert diff.removed == [("schedule", "nightly-lottery")] and version == 3
    rules = store.load()
    assert rules.version == 3 and rules.schedules == []
    assert rules.triggers[0].delay is not None and rules.triggers[0].delay.total_seconds() == 600


def test_a_running_view_sees_an_apply_without_a_restart(
    store: RulesStore, functions_dir: Path, tmp_path: Path
) -> None:
    from datetime import timedelta

    view = RulesView(store, refresh=timedelta(0))
    assert view.current().version == 0
    apply_file(write(tmp_path, GOOD), store, Registry(functions_dir), Settings())
    assert [t.name for t in view.current().triggers] == ["cancel-unpaid-orders"]
