"""Per-function options: time limit, retry policy, who may invoke.

They come from ``Settings`` (``FIREHOOK_RETRY__*`` for the default policy,
``FIREHOOK_FUNCTIONS='{"name": {...}}'`` per function) and, once applied, from the config
file's ``functions:`` section; the config file wins.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_settings import NoDecode

from firehook.config.durations import Duration
from firehook.config.envlists import comma_list

__all__ = ["RETRYABLE", "FunctionOptions", "RetryPolicy"]

RetryableError = Literal["execution_failed", "deadline_exceeded", "worker_lost"]
RETRYABLE: tuple[RetryableError, ...] = ("execution_failed", "deadline_exceeded", "worker_lost")
_MAX_SECONDS = timedelta.max.total_seconds()


class RetryPolicy(BaseModel):
    """How often a queued run is tried and how long to wait between tries.

    ``attempts`` counts the first try: 3 means one run and up to two retries.  The wait
    before retry n (n = 1, 2, ...) is ``backoff * 2**(n-1)``, capped at ``max_backoff``, then
    spread by up to ``jitter`` (a fraction) either way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=3, ge=1, le=100)
    backoff: Duration = Field(default=timedelta(seconds=10), ge=timedelta(0))
    max_backoff: Duration = Field(default=timedelta(minutes=10), ge=timedelta(0))
    jitter: float = Field(default=0.2, ge=0, le=1)
    # FIREHOOK_RETRY__RETRY_ON=execution_failed,worker_lost (or a JSON list)
    retry_on: Annotated[tuple[RetryableError, ...], NoDecode, BeforeValidator(comma_list)] = (
        RETRYABLE
    )

    @model_validator(mode="after")
    def _cap_at_least_base(self) -> RetryPolicy:
        if self.max_backoff < self.backoff:
            raise ValueError("max_backoff must not be shorter than backoff")
        return self

    def delay(self, retry: int, rng: random.Random | None = None) -> timedelta:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        base = self._capped(retry - 1)
        if self.jitter == 0 or base == timedelta(0):
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        seconds = base.total_seconds() * (1 + spread)
        return timedelta.max if seconds >= _MAX_SECONDS else timedelta(seconds=seconds)

    def _capped(self, doublings: int) -> timedelta:
        """``backoff * 2**doublings`` capped at ``max_backoff``, compared before it is
        computed: the product overflows ``timedelta`` long before ``attempts`` runs out."""
        if doublings <= 0 or self.backoff == timedelta(0):
            return min(self.backoff, self.max_backoff)
        if doublings >= math.log2(self.max_backoff / self.backoff):
            return self.max_backoff
        try:
            return min(self.backoff * (1 << doublings), self.max_backoff)
        except OverflowError:  # only at the edge of the float comparison, near timedelta.max
            return self.max_backoff

    def retries(self, error_type: str, attempt: int) -> bool:
        """Whether a run that failed with ``error_type`` on ``attempt`` is tried again."""
        return attempt < self.attempts and error_type in self.retry_on


class FunctionOptions(BaseModel):
    """Options of one function; unset fields fall back to the settings' defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: Duration | None = Field(default=None, gt=timedelta(0))
    retry: RetryPolicy | None = None
    allow_anonymous: bool | None = None
    max_concurrency: int | None = Field(
        default=None, ge=1, description="most runs executing at once over the whole cluster"
    )
    rate: float | None = Field(
        default=None, gt=0, description="most runs started per second over the whole cluster"
    )

    @property
    def limited(self) -> bool:
        return self.max_concurrency is not None or self.rate is not None
