"""The declarative config file (DESIGN 3.5): functions, triggers, schedules.

Pydantic models validate structure and types; what needs other parts (that a function
exists, that a condition compiles, that a cron expression parses) is checked by
``firehook apply`` before anything is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from firehook.config.durations import Duration
from firehook.config.functions import FunctionOptions

__all__ = [
    "ConfigFile",
    "Frequency",
    "OnHook",
    "OnTable",
    "ScheduleSpec",
    "TriggerSpec",
]

FunctionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
RuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]
RecordEvent = Literal["on_create", "on_update", "on_delete"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OnTable(_Strict):
    """Fire on data-change events of a table."""

    table: TableName
    events: list[RecordEvent] = Field(default=["on_create", "on_update", "on_delete"], min_length=1)


class OnHook(_Strict):
    """Fire on an incoming webhook: ``POST /v1/hooks/{hook}``."""

    hook: RuleName


class Frequency(_Strict):
    """How often a trigger fires: every time, once per cool-down window, or only once."""

    mode: Literal["always", "cooldown", "once"] = "always"
    cooldown: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str) and value in ("always", "once"):
            return {"mode": value}
        if isinstance(value, dict) and set(value) == {"cooldown"}:
            return {"mode": "cooldown", "cooldown": value["cooldown"]}
        return value

    @model_validator(mode="after")
    def _cooldown_needs_a_period(self) -> Frequency:
        if self.mode == "cooldown" and (self.cooldown is None or self.cooldown <= timedelta(0)):
            raise ValueError("a cooldown needs a positive period, e.g. {cooldown: 10m}")
        return self


def _on_kind(value: Any) -> str:
    if isinstance(value, OnHook) or (isinstance(value, dict) and "hook" in value):
        return "OnHook"
    return "OnTable"


On = Annotated[
    Annotated[OnTable, Tag("OnTable")] | Annotated[OnHook, Tag("OnHook")],
    Discriminator(_on_kind),
]


class TriggerSpec(_Strict):
    """A rule: on these events, when the condition holds, run this function."""

    name: RuleName
    on: On
    when: dict[str, Any] | None = None  # compiled and checked by triggers.conditions
    invoke: FunctionName
    params: dict[str, Any] = {}
    delay: Duration | None = None
    frequency: Frequency = Frequency()
    enabled: bool = True


class ScheduleSpec(_Strict):
    """A cron schedule (5 fields, or 6 with leading seconds) in an IANA time zone."""

    name: RuleName
    cron: Annotated[str, StringConstraints(min_length=9, max_length=200)]
    timezone: str | None = None
    invoke: FunctionName
    params: dict[str, Any] = {}
    enabled: bool = True
    start_date: datetime | None = None
    end_date: datetime | None = None
    max_instances: int | None = Field(default=None, ge=1)
    misfire: Literal["skip", "run_once", "run_all"] = "run_once"
    misfire_grace: Duration = timedelta(minutes=1)


class ConfigFile(_Strict):
    """The whole file: ``version: 1`` and three optional sections."""

    version: Literal[1]
    functions: dict[FunctionName, FunctionOptions] = {}
    triggers: list[TriggerSpec] = []
    schedules: list[ScheduleSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        """A section with nothing under it (``functions:`` then comments) is YAML null."""
        if isinstance(value, dict):
            empty: dict[str, Any] = {"functions": {}, "triggers": [], "schedules": []}
            return {k: empty[k] if v is None and k in empty else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _names_are_unique(self) -> ConfigFile:
        for kind, items in (("trigger", self.triggers), ("schedule", self.schedules)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"two {kind}s are named {item.name!r}")
                seen.add(item.name)
        return self
