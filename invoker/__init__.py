"""The invoker: function registry, worker pool, envelope, invocation records and dispatch."""

from invoker.dispatch import Dispatcher, InvokeRequest, Outcome
from invoker.envelope import (
    Envelope,
    ErrorType,
    FunctionNotFound,
    InvalidParams,
    InvokeError,
    Status,
)
from invoker.event import Event, EventType
from invoker.pool import Pool, PoolClosed, RunResult
from invoker.records import Invocation, new_job_id
from invoker.registry import FunctionInfo, Registry
from invoker.store import InvocationFilter, InvocationStore

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
