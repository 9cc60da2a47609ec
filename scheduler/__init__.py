"""scheduler: cron schedules from the rules store, misfire policies, retention (DESIGN 2, 4)."""

from firehook.scheduler.cron import CronError, CronSchedule, parse_cron, parse_timezone
from firehook.scheduler.retention import Retention
from firehook.scheduler.runner import Scheduler, StepResult
from firehook.scheduler.ticks import ScheduleState, StateStore, tick_key

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
