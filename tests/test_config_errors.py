"""A config file's mistakes, all of them at once; unknown function options; the JSON Schema
editors check the file with, against what ``firehook apply`` accepts."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import Engine

from firehook.apply import apply_file, check_config
from firehook.cli_rules import config_schema
from firehook.config import ConfigError, Settings, parse_duration
from firehook.config.loader import ConfigFileError, load_draft, parse_config
from firehook.config.rules import RulesStore
from firehook.invoker.registry import Registry
from firehook.templates import CONFIG

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "firehook.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_every_mistake_of_a_file_is_reported_in_one_go(
    engine: Engine, functions_dir: Path, tmp_path: Path
) -> None:
    # a typo (structure), an unknown function and an invalid hour (the parts' checks), in
    # three sections: the typo used to hide the other two until it was fixed
    path = write(
        tmp_path,
        """
        version: 1
        functions:
          hello: {timout: 5s}
        triggers:
          - name: t
            on: {table: orders}
            invoke: nope
        schedules:
          - name: s
            cron: "0 25 * * *"
            invoke: hello
        """,
    )
    store = RulesStore(engine)
    with pytest.raises(ConfigFileError) as info:
        apply_file(path, store, Registry(functions_dir), Settings())
    text = str(info.value)
    assert "3 problem(s) in the config file, nothing applied" in text
    lines = text.splitlines()[1:]
    assert lines[0].strip() == (
        f"{path}:3: functions.hello.timout: unknown field; did you mean 'timeout'?"
    )
    assert lines[1].strip() == f"{path}:7: triggers[0].invoke: no function 'nope' in " + (
        f"{functions_dir}/"
    )
    assert lines[2].strip().startswith(f"{path}:10: schedules[0].cron:") and "25" in lines[2]
    assert store.version() == 0


def test_a_field_with_a_wrong_type_is_reported_once(functions_dir: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        triggers:
          - name: t
            on: {table: orders}
            invoke: "not a name"
        """,
    )
    with pytest.raises(ConfigFileError) as info:
        check_config(load_draft(path), Registry(functions_dir), Settings())
    assert len(info.value.problems) == 1
    assert info.value.problems[0].field == "triggers[0].invoke"


def test_a_function_named_with_a_capital_keeps_its_name_in_the_error() -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_config("version: 1\nfunctions:\n  SendMail: {timout: 5s}\n", "f.yaml")
    assert "f.yaml:3: functions.SendMail.timout: unknown field" in str(info.value)


# --- unknown function options: refused, named, with the right spelling ------------------


@pytest.mark.parametrize(
    ("options", "field", "suggestion"),
    [
        ("{timout: 20s}", "functions.hello.timout", "timeout"),
        ("{retry: {bakoff: 10s}}", "functions.hello.retry.bakoff", "backoff"),
        ("{retry: {attempt: 5}}", "functions.hello.retry.attempt", "attempts"),
        ("{max_concurency: 2}", "functions.hello.max_concurency", "max_concurrency"),
        ("{allow_anonymus: true}", "functions.hello.allow_anonymus", "allow_anonymous"),
        ("{colour: red}", "functions.hello.colour", None),
    ],
)
def test_an_unknown_function_option_in_the_config_file_is_refused(
    options: str, field: str, suggestion: str | None
) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_config(f"version: 1\nfunctions:\n  hello: {options}\n", "f.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (3, field)
    if suggestion is None:
        assert problem.message == "unknown field (check the spelling)"
    else:
        assert problem.message == f"unknown field; did you mean {suggestion!r}?"


@pytest.mark.parametrize(
    "functions",
    ['{"hello": {"timout": "20s"}}', '{"hello": {"retry": {"bakoff": "10s"}}}'],
)
def test_an_unknown_function_option_in_the_settings_is_refused(
    monkeypatch: pytest.MonkeyPatch, functions: str
) -> None:
    from firehook.cli_common import load_settings

    monkeypatch.setenv("FIREHOOK_FUNCTIONS", functions)
    with pytest.raises(ConfigError, match=r"FIREHOOK_FUNCTIONS__HELLO__.*Extra inputs"):
        load_settings()


def test_an_unknown_function_option_as_its_own_variable_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from firehook.cli_common import load_settings

    monkeypatch.setenv("FIREHOOK_FUNCTIONS__HELLO__TIMOUT", "20s")
    with pytest.raises(ConfigError, match="FIREHOOK_FUNCTIONS__HELLO__TIMOUT"):
        load_settings()


# --- durations: the JSON Schema and apply agree --------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30S", timedelta(seconds=30)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("PT0.25S", timedelta(milliseconds=250)),
    ],
)
def test_iso_8601_durations_are_accepted(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1Y", "P1M", "PT1H30", "1h30", "99999999999999999d"])
def test_bad_or_ambiguous_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def _validator() -> jsonschema.protocols.Validator:
    schema = config_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def _with_delay(delay: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "functions": {"hello": {"timeout": delay, "retry": {"backoff": delay}}},
        "triggers": [{"name": "t", "on": {"table": "orders"}, "invoke": "hello", "delay": delay}],
    }


@pytest.mark.parametrize(
    "delay", ["30s", "5m", "1h30m", "250ms", "2d", "1h 30m", "10", 10, 1.5, "PT30S", "P1DT2H"]
)
def test_the_schema_and_apply_accept_the_same_durations(delay: Any) -> None:
    _validator().validate(_with_delay(delay))
    parse_duration(delay)  # and apply takes it


@pytest.mark.parametrize("delay", ["soon", "5x", "-5s", "P", "P1Y", "s5", -1, True])
def test_the_schema_and_apply_refuse_the_same_durations(delay: Any) -> None:
    assert list(_validator().iter_errors(_with_delay(delay)))
    with pytest.raises(ConfigError):
        parse_duration(delay)


def test_every_example_config_file_is_valid_against_the_schema() -> None:
    validator = _validator()
    files = [ROOT / "firehook.yaml", *sorted(ROOT.glob("examples/*/firehook.yaml"))]
    examples = [CONFIG, *(p.read_text() for p in files if p.is_file())]
    assert len(examples) >= 3
    for text in examples:
        loaded = parse_config(text)
        validator.validate(loaded.tree)  # the YAML as written, durations such as "30m"


def test_a_section_left_empty_is_valid_for_the_schema_and_apply() -> None:
    text = "version: 1\nfunctions:\n  # none yet\ntriggers:\nschedules:\n"
    _validator().validate(parse_config(text).tree)
