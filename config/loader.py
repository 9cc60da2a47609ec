"""Reading the config file: YAML 1.2 (``on:`` stays a string), errors with file, line, field."""

from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from firehook.config.errors import ConfigError
from firehook.config.model import ConfigFile

__all__ = [
    "ConfigFileError",
    "Draft",
    "LoadedConfig",
    "Problem",
    "load_config",
    "load_draft",
    "parse_config",
    "parse_draft",
]


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


class _Located:
    """Where each field of a config file is written (``tree`` keeps the YAML's lines)."""

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


@dataclass(frozen=True)
class LoadedConfig(_Located):
    """A valid config file and where each of its fields is written."""

    config: ConfigFile
    filename: str
    tree: Any


@dataclass(frozen=True)
class Draft(_Located):
    """A config file read as YAML, valid or not: its structural problems, all of them.

    ``config`` is None when there is any; ``data`` is the plain tree, for the checks of
    ``firehook apply`` that need other parts and run on whatever parses.
    """

    filename: str
    tree: Any
    data: dict[str, Any]
    config: ConfigFile | None
    problems: list[Problem]

    def loaded(self) -> LoadedConfig:
        if self.config is None:
            raise ConfigFileError(self.problems)
        return LoadedConfig(self.config, self.filename, self.tree)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigFileError(
            [Problem(str(path), None, "", f"cannot read it: {e.strerror}")]
        ) from None


def load_config(path: Path) -> LoadedConfig:
    return parse_config(_read(path), str(path))


def load_draft(path: Path) -> Draft:
    return parse_draft(_read(path), str(path))


def parse_config(text: str, filename: str = "<config>") -> LoadedConfig:
    """A valid config file, or :class:`ConfigFileError` listing every structural problem."""
    return parse_draft(text, filename).loaded()


def parse_draft(text: str, filename: str = "<config>") -> Draft:
    """Read YAML and validate its structure; only a file that is not YAML raises here."""
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
    plain = _plain(data)
    try:
        return Draft(filename, data, plain, ConfigFile.model_validate(plain), [])
    except ValidationError as e:
        problems = [_problem(filename, data, err) for err in e.errors()]
        return Draft(filename, data, plain, None, problems)


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


def _members(annotation: Any) -> list[Any]:
    """The types a field may hold: ``Annotated`` and unions flattened."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _step(annotation: Any, part: str | int) -> tuple[Any, bool]:
    """The type below ``part``, and whether ``part`` was a union member's tag (no key)."""
    members = _members(annotation)
    for member in members:
        if isinstance(part, str) and getattr(member, "__name__", None) == part:
            return member, True  # pydantic names the union member it tried
    for model in _models(annotation):
        if isinstance(part, str) and part in model.model_fields:
            return model.model_fields[part].annotation, False
    for member in members:
        origin, args = get_origin(member), get_args(member)
        if origin is dict and args:
            return args[-1], False
        if origin in (list, tuple) and args:
            return args[0], False
    return None, False


def _unknown_field(annotation: Any, name: str) -> str:
    fields = [f for m in _models(annotation) for f in m.model_fields]
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    return (
        f"unknown field; did you mean {close[0]!r}?"
        if close
        else "unknown field (check the spelling)"
    )


def _problem(filename: str, data: Any, err: Any) -> Problem:
    node, line, parts = data, None, []
    annotation: Any = ConfigFile
    parent: Any = None
    for part in err["loc"]:
        parent = annotation
        annotation, tag = _step(annotation, part)
        if tag:
            continue  # a union member's tag, not a key in the file
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        found = _line_of(node, part)
        if found is None:
            node = None
        else:
            line, node = found, node[part]
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = _unknown_field(parent, str(err["loc"][-1]))
    elif err["type"] == "missing":
        message = "required field is missing"
    elif err["type"] == "literal_error" and "expected" in err.get("ctx", {}):
        message = f"expected {err['ctx']['expected']}"
    return Problem(filename, line, "".join(parts).lstrip("."), message)
