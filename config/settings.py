"""One settings tree for every role, read from ``FIREHOOK_*`` variables and ``.env``.

Nested groups use ``__``: ``FIREHOOK_INVOKER__SYNC_TIMEOUT=5s``.  Durations accept ``30s``,
``5m``, ``1h30m`` or a number of seconds.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from firehook.config.durations import Duration
from firehook.config.functions import FunctionOptions, RetryPolicy
from firehook.config.http_settings import AdminSettings, AuthSettings, HttpSettings

__all__ = [
    "InvokerSettings",
    "MetricsSettings",
    "RetentionSettings",
    "SchedulerSettings",
    "Settings",
    "TriggerSettings",
    "WorkerSettings",
]


class InvokerSettings(BaseModel):
    """The process pool that runs functions."""

    sync_timeout: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    async_timeout: Duration = Field(default=timedelta(seconds=300), gt=timedelta(0))
    pool_size: int = Field(default=2, ge=1, le=256)
    memory_limit_mb: int = Field(default=512, ge=32, description="address-space cap per worker")
    log_limit_bytes: int = Field(
        default=64 * 1024, ge=1024, description="captured stdout/stderr/logging per run"
    )
    result_limit_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="largest result a run may return (its JSON, UTF-8); past it, execution_failed",
    )
    acquire_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="how long a run waits for a free worker before it is schedule_failed",
    )
    max_tasks_per_worker: int = Field(
        default=0, ge=0, description="recycle a worker after this many runs; 0 never"
    )
    start_method: Literal["forkserver", "spawn"] = "forkserver"


class WorkerSettings(BaseModel):
    """The queue worker that claims due runs (``firehook worker``)."""

    concurrency: int = Field(
        default=0,
        ge=0,
        description="most runs a worker holds at once (running or claimed ahead); 0 = 256 x pool",
    )
    batch_size: int = Field(default=256, ge=1, le=1000, description="runs per claim")
    poll_interval: Duration = Field(default=timedelta(seconds=1), gt=timedelta(0))
    lease: Duration = Field(default=timedelta(seconds=30), ge=timedelta(seconds=1))
    grace_period: Duration = Field(default=timedelta(seconds=10), ge=timedelta(0))


class TriggerSettings(BaseModel):
    """The event consumer (``firehook consumer``) and publishers."""

    exchange: str = Field(default="firehook.events", min_length=1, max_length=200)
    queue: str = Field(
        default="firehook.events",
        min_length=1,
        max_length=200,
        description="the consumers' queue; dead letters go to <queue>.dead",
    )
    batch_size: int = Field(default=200, ge=1, le=5000, description="events per transaction")
    flush_interval: Duration = Field(
        default=timedelta(milliseconds=20), gt=timedelta(0), description="longest a batch waits"
    )
    visibility_timeout: Duration = Field(
        default=timedelta(seconds=60), description="embedded/redis: redeliver unacked after this"
    )
    record_skipped: bool = Field(
        default=False, description="record events no rule matched, and why, in trigger_skip"
    )
    source_keys: dict[str, str] = Field(
        default={}, description='POST /v1/events keys per source: {"shop": "<key>"}'
    )
    hook_secrets: dict[str, str] = Field(
        default={}, description='secrets of incoming webhooks: {"payment-ok": "<secret>"}'
    )


class SchedulerSettings(BaseModel):
    """The cron scheduler (``firehook scheduler``, and inside ``firehook serve``)."""

    lead: Duration = Field(
        default=timedelta(seconds=1),
        ge=timedelta(0),
        le=timedelta(seconds=30),
        description="insert a tick this early (due at its exact time) so it starts on time",
    )
    refresh: Duration = Field(
        default=timedelta(seconds=2),
        gt=timedelta(0),
        description="how often the scheduler checks the rules store for applied changes",
    )
    max_catchup: int = Field(
        default=1000,
        ge=1,
        description="missed ticks recorded (or run, for run_all) one by one after a downtime",
    )


class MetricsSettings(BaseModel):
    """``/metrics``, ``/healthz`` and ``/readyz`` of the roles without the HTTP API."""

    port: int | None = Field(
        default=None, ge=0, le=65535, description="listen here; 0 = a free port; unset = off"
    )
    host: str = "127.0.0.1"
    check_timeout: Duration = Field(
        default=timedelta(seconds=2), gt=timedelta(0), description="per /readyz check"
    )


class RetentionSettings(BaseModel):
    """How long finished runs are kept, per status; 0 keeps them forever."""

    enabled: bool = True
    interval: Duration = Field(default=timedelta(minutes=10), gt=timedelta(0))
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    fulfilled: Duration = timedelta(days=7)
    cancelled: Duration = timedelta(days=7)
    execution_failed: Duration = timedelta(days=30)
    deadline_exceeded: Duration = timedelta(days=30)
    schedule_failed: Duration = timedelta(days=30)
    execution_rejected: Duration = timedelta(days=30)
    worker_lost: Duration = timedelta(days=30)
    retrying: Duration = timedelta(days=30)
    dead: Duration = timedelta(days=30)

    def ages(self) -> dict[str, timedelta]:
        """Status -> age past which its runs are deleted (statuses kept forever left out)."""
        statuses = (
            "fulfilled",
            "cancelled",
            "execution_failed",
            "deadline_exceeded",
            "schedule_failed",
            "execution_rejected",
            "worker_lost",
            "retrying",
            "dead",
        )
        ages = {s: getattr(self, s) for s in statuses}
        return {s: a for s, a in ages.items() if a > timedelta(0)}


class Settings(BaseSettings):
    """Everything firehook reads from its environment, with embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="FIREHOOK_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = "sqlite:///firehook.db"
    timezone: str = Field(default="UTC", description="default time zone of cron schedules")
    database_busy_timeout: Duration = timedelta(seconds=10)
    functions_dir: Path = Path("functions")
    broker_url: str = "sqla+sqlite:///firehook-events.db"
    invoker: InvokerSettings = InvokerSettings()
    worker: WorkerSettings = WorkerSettings()
    triggers: TriggerSettings = TriggerSettings()
    retry: RetryPolicy = RetryPolicy()
    scheduler: SchedulerSettings = SchedulerSettings()
    retention: RetentionSettings = RetentionSettings()
    metrics: MetricsSettings = MetricsSettings()
    log_format: Literal["text", "json"] = "text"
    functions: dict[str, FunctionOptions] = {}
    http: HttpSettings = HttpSettings()
    auth: AuthSettings = AuthSettings()
    admin: AdminSettings = AdminSettings()
