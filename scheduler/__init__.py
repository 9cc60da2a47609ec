"""scheduler: cron schedules from the rules store, misfire policies, retention (DESIGN 2, 4)."""

from scheduler.cron import CronError, CronSchedule, parse_cron, parse_timezone
from scheduler.retention import Retention
from scheduler.runner import Scheduler, StepResult
from scheduler.ticks import ScheduleState, StateStore, tick_key

__all__ = [
    "CronError",
    "CronSchedule",
    "Retention",
    "ScheduleState",
    "Scheduler",
    "StateStore",
    "StepResult",
    "parse_cron",
    "parse_timezone",
    "tick_key",
]
