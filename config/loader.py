"""Reading the config file: YAML 1.2 (``on:`` stays a string), errors with file, line, field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from firehook.config.errors import ConfigError
from firehook.config.model import ConfigFile

__all__ = ["ConfigFileError", "LoadedConfig", "Problem", "load_config", "parse_config"]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigFileError(ConfigError):
    """A config file with one or more mistakes; nothing from it was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{len(problems)} problem(s) in the config file, nothing applied:\n{lines}"
        )


@dataclass(frozen=True)
class LoadedConfig:
    """A valid config file and where each of its fields is written."""

    config: ConfigFile
    filename: str
    tree: Any

    def line(self, field: str) -> int | None:
        """The line of ``triggers[0].when.all[1].op`` (the deepest part that exists)."""
        node, line = self.tree, None
        for token in re.findall(r"[^.\[\]]+|\[\d+\]", field):
            part: str | int = int(token[1:-1]) if token.startswith("[") else token
            found = _line_of(node, part)
            if found is None:
                break
            line, node = found, node[part]
        return line

    def problem(self, field: str, message: str) -> Problem:
        return Problem(self.filename, self.line(field), field, message)


def load_config(path: Path) -> LoadedConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigFileError(
            [Problem(str(path), None, "", f"cannot read it: {e.strerror}")]
        ) from None
    return parse_config(text, str(path))


def parse_config(text: str, filename: str = "<config>") -> LoadedConfig:
    yaml = YAML(typ="rt")  # YAML 1.2: `on`, `yes`, `no` stay strings; keeps line numbers
    try:
        data = yaml.load(text)
    except MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else None
        raise ConfigFileError(
            [Problem(filename, line, "", f"not valid YAML: {e.problem}")]
        ) from None
    except YAMLError as e:
        raise ConfigFileError([Problem(filename, None, "", f"not valid YAML: {e}")]) from None
    if not isinstance(data, dict):
        raise ConfigFileError(
            [Problem(filename, 1, "", "expected a mapping with `version: 1` at the top")]
        )
    try:
        return LoadedConfig(ConfigFile.model_validate(_plain(data)), filename, data)
    except ValidationError as e:
        raise ConfigFileError([_problem(filename, data, err) for err in e.errors()]) from None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _line_of(node: Any, part: str | int) -> int | None:
    """The 1-based line of ``node[part]`` in the file, if the loader recorded it."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    if isinstance(node, dict) and part in node:
        return int(lc.key(part)[0]) + 1
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return int(lc.item(part)[0]) + 1
    return None


def _problem(filename: str, data: Any, err: Any) -> Problem:
    node, line, parts = data, None, []
    for part in err["loc"]:
        if isinstance(part, str) and part[:1].isupper():
            continue  # a union member's tag, not a key in the file
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        found = _line_of(node, part)
        if found is None:
            node = None
        else:
            line, node = found, node[part]
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field (check the spelling)"
    elif err["type"] == "missing":
        message = "required field is missing"
    elif err["type"] == "literal_error" and "expected" in err.get("ctx", {}):
        message = f"expected {err['ctx']['expected']}"
    return Problem(filename, line, "".join(parts).lstrip("."), message)
