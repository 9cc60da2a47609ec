"""What the ``FIREHOOK_*`` variables name: misspelled ones, and values that cannot be read.

pydantic-settings ignores a variable that names no setting (``FIREHOOK_HTTP__PROT=9000``
runs on port 8000), and a value it cannot decode is a traceback that names only the group
(``error parsing value for field "triggers"``).  Here both get a sentence naming the
variable: :func:`unknown_variables` (with the closest real name) and :func:`explain`.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel
from pydantic_settings import NoDecode

from firehook.config.settings import Settings

__all__ = ["Unknown", "environment", "explain", "setting_names", "unknown_variables"]

PREFIX = "FIREHOOK_"
DELIMITER = "__"
# firehook's own test and benchmark tooling reads these; they are not settings
NOT_SETTINGS = ("FIREHOOK_TEST_", "FIREHOOK_BENCH_")


@dataclass(frozen=True, slots=True)
class Unknown:
    """A ``FIREHOOK_`` variable that names no setting, and the closest real one."""

    name: str
    suggestion: str | None

    def __str__(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.name} is not a firehook setting and is ignored{hint}"


def environment(environ: Mapping[str, str], env_file: Path | None = Path(".env")) -> dict[str, str]:
    """The ``FIREHOOK_`` variables Settings reads: ``environ`` over the ``.env`` file."""
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged |= {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    merged |= dict(environ)
    return {k: v for k, v in merged.items() if k.upper().startswith(PREFIX)}


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``Annotated[X, ...]`` is already plain in ``FieldInfo``."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_dict(annotation: Any) -> bool:
    return annotation is dict or get_origin(annotation) is dict


def _names(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        yield env
        inner = _unwrap(field.annotation)
        if _is_model(inner):
            yield from _names(inner, env + DELIMITER)


def setting_names() -> list[str]:
    """Every variable name of a setting, nested groups included (``FIREHOOK_HTTP__PORT``)."""
    return list(_names(Settings, PREFIX))


@dataclass(frozen=True, slots=True)
class _Target:
    annotation: Any
    no_decode: bool
    known: bool  # False: the name leaves the settings tree
    prefix: str  # the deepest name that exists
    children: tuple[str, ...]  # real names just below ``prefix``


def _resolve(name: str) -> _Target:
    """Follow ``FIREHOOK_A__B__C`` through the settings' models and dicts."""
    parts = name.upper().removeprefix(PREFIX).split(DELIMITER)
    model: type[BaseModel] | None = Settings
    annotation: Any = Settings
    no_decode = False
    prefix = PREFIX.rstrip("_")
    for i, part in enumerate(parts):
        sep = "_" if i == 0 else DELIMITER
        if model is not None:
            fields = {n.upper(): f for n, f in model.model_fields.items()}
            children = tuple(f"{prefix}{sep}{n}" for n in fields)
            field = fields.get(part)
            if field is None:
                return _Target(annotation, no_decode, False, prefix, children)
            annotation = _unwrap(field.annotation)
            no_decode = NoDecode in field.metadata
        elif _is_dict(annotation):
            args = get_args(annotation)
            annotation = _unwrap(args[-1]) if args else Any
            no_decode = False
        else:  # a scalar or a list has nothing below it
            return _Target(annotation, no_decode, False, prefix, ())
        prefix = f"{prefix}{sep}{part}"
        model = annotation if _is_model(annotation) else None
    return _Target(annotation, no_decode, True, prefix, ())


def unknown_variables(variables: Mapping[str, str]) -> list[Unknown]:
    """The variables among ``variables`` that name no setting, each with a suggestion."""
    names = setting_names()
    out = []
    for var in sorted(variables):
        upper = var.upper()
        if not upper.startswith(PREFIX) or upper.startswith(NOT_SETTINGS):
            continue
        target = _resolve(upper)
        if target.known:
            continue
        close = difflib.get_close_matches(upper, [*target.children, *names], n=1, cutoff=0.6)
        out.append(Unknown(var, close[0] if close else None))
    return out


def _complex(target: _Target) -> bool:
    if target.no_decode:
        return False
    annotation = target.annotation
    return (
        _is_model(annotation)
        or _is_dict(annotation)
        or get_origin(annotation) in (list, tuple, set, frozenset)
        or annotation in (list, tuple, set, frozenset)
    )


def _example(target: _Target) -> str:
    if _is_model(target.annotation):
        return f"a JSON object, or one variable per field ({target.prefix}{DELIMITER}<FIELD>=...)"
    if _is_dict(target.annotation):
        return (
            'a JSON object such as {"name": "value"}, '
            f"or one variable per entry ({target.prefix}{DELIMITER}<NAME>=value)"
        )
    return 'a JSON list such as ["a", "b"]'


_FIELD = re.compile(r'field "([^"]+)"')
_SECRET = re.compile(r"KEY|SECRET|PASSWORD|TOKEN")


def _shown(name: str, value: str) -> str:
    """The value for an error message; never that of a setting that may hold a secret."""
    if _SECRET.search(name):
        return f"a value of {len(value)} characters (not shown: it may be a secret)"
    return repr(value if len(value) <= 40 else value[:37] + "...")


def explain(error: ValueError, variables: Mapping[str, str]) -> str:
    """One line for pydantic-settings' ``SettingsError``: which variable, what it expects."""
    found = _FIELD.search(str(error))
    group = f"{PREFIX}{found.group(1).upper()}" if found else PREFIX
    problems = []
    for var, value in sorted(variables.items()):
        upper = var.upper()
        if upper != group and not upper.startswith(group + DELIMITER):
            continue
        target = _resolve(upper)
        if not target.known or not _complex(target):
            continue
        try:
            json.loads(value)
        except ValueError:
            problems.append(f"{var}: expected {_example(target)}, got {_shown(upper, value)}")
    if not problems:
        return f"cannot read the {group}* settings: {error}"
    return "invalid setting " + "; ".join(problems)
