"""The invoker: function registry, worker pool, envelope, invocation records and dispatch."""

from firehook.invoker.dispatch import Dispatcher, InvokeRequest, Outcome
from firehook.invoker.envelope import (
    Envelope,
    ErrorType,
    FunctionNotFound,
    InvalidParams,
    InvokeError,
    Status,
)
from firehook.invoker.event import Event, EventType
from firehook.invoker.pool import Pool, PoolClosed, RunResult
from firehook.invoker.records import Invocation, new_job_id
from firehook.invoker.registry import FunctionInfo, Registry
from firehook.invoker.store import InvocationFilter, InvocationStore

__all__ = [
    "Dispatcher",
    "Envelope",
    "ErrorType",
    "Event",
    "EventType",
    "FunctionInfo",
    "FunctionNotFound",
    "InvalidParams",
    "Invocation",
    "InvocationFilter",
    "InvocationStore",
    "InvokeError",
    "InvokeRequest",
    "Outcome",
    "Pool",
    "PoolClosed",
    "Registry",
    "RunResult",
    "Status",
    "new_job_id",
]
