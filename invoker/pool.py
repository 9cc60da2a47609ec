"""A pool of pre-started worker processes with hard deadlines.

Each worker has its own duplex pipe (no lock shared between processes, so a killed worker
cannot wedge the pool).  A run that passes its deadline has its worker's process group
SIGKILLed; a worker that dies (``os._exit``, a segfault, the OOM killer) is reported as
``worker_lost``.  Either way a replacement is started in the background and the pool stays
at full size.  Measured against pebble in ``benchmarks/invoke.py``; see
``docs/decisions.md`` for why this pool and not pebble or billiard.

What cannot reach a pool process never takes one: params that :func:`jsonsafe.problem`
refuses, or that fail to pickle, are ``invalid_params`` before a worker is acquired.  Each
request carries a sequence number and each answer must hold it: a worker that answers for
another run (a function writing on its pipe) is replaced and the run is ``worker_lost``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import multiprocessing.forkserver
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from firehook.config.errors import FirehookError
from firehook.invoker import _child, handoff
from firehook.invoker._proc import Proc, death_reason, main_module_hidden
from firehook.invoker.envelope import ErrorType
from firehook.invoker.event import Event
from firehook.invoker.handoff import RunResult
from firehook.invoker.registry import FunctionInfo

__all__ = ["Pool", "PoolClosed", "RunResult"]

log = logging.getLogger(__name__)


class PoolClosed(FirehookError, RuntimeError):
    """The pool was closed or never started."""


class Pool:
    """``size`` killable worker processes for running functions apart from the service."""

    def __init__(
        self,
        functions_dir: Path,
        *,
        size: int = 2,
        memory_limit_mb: int = 512,
        log_limit_bytes: int = 64 * 1024,
        result_limit_bytes: int = _child.RESULT_LIMIT_BYTES,
        acquire_timeout: timedelta = timedelta(seconds=5),
        max_tasks_per_worker: int = 0,
        start_method: str = "forkserver",
    ) -> None:
        self.functions_dir = functions_dir
        self.size = size
        self.memory_limit_mb = memory_limit_mb
        self.log_limit = log_limit_bytes
        self.result_limit = result_limit_bytes
        self.acquire_timeout = acquire_timeout
        self.max_tasks = max_tasks_per_worker
        self.start_method = start_method
        self._idle: queue.Queue[Proc] = queue.Queue()
        self._ctx: Any = None
        self._closed = True
        self._spawners: set[threading.Thread] = set()
        self._live: set[Proc] = set()  # every started worker not yet killed
        self._lock = threading.Lock()
        self._seq = itertools.count(1)  # tags each request; its answer must carry the same
        self.replaced = 0  # workers replaced after a kill or death, for status lines and tests

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> Pool:
        if not self._closed:
            return self
        self._ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            self._ctx.set_forkserver_preload(["firehook.invoker._child"])
        self._closed = False
        # The forkserver inherits an ignored SIGTERM (it already ignores SIGINT): a signal sent
        # to the whole process group (systemd's default KillMode, `timeout`, Ctrl-C) then stops
        # the service gracefully instead of killing the forkserver and, with it, every worker
        # mid-run.  SIGTERM is ignored only while the forkserver is forked, not while the
        # workers start (a second or more): a SIGTERM sent then used to be lost, and the role
        # kept running.
        if self.start_method == "forkserver" and (
            threading.current_thread() is threading.main_thread()
        ):
            previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                signal.signal(signal.SIGTERM, previous)
        for _ in range(self.size):
            self._idle.put(self._spawn())
        log.info("pool started: %d workers (%s)", self.size, self.start_method)
        return self

    def close(self, grace: timedelta = timedelta(seconds=5)) -> None:
        """Stop every worker; runs in flight get ``grace`` to finish before they are killed."""
        if self._closed:
            return
        self._closed = True
        for t in list(self._spawners):
            t.join(grace.total_seconds())
        deadline = time.monotonic() + grace.total_seconds()
        stopped = 0
        while stopped < self.size:
            try:
                worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            worker.process.join(max(0.1, deadline - time.monotonic()))
            self._kill(worker)
            stopped += 1
        with self._lock:
            busy = list(self._live)
        for worker in busy:  # still running a function after the grace period
            log.warning(
                "killing worker %d: its run did not finish within the grace period", worker.pid
            )
            self._kill(worker)
        log.info("pool closed")

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # running ---------------------------------------------------------------------------
    def run(
        self,
        info: FunctionInfo,
        event: Event,
        timeout: timedelta,
        *,
        wait_for_worker: bool = False,
    ) -> RunResult:
        """Run ``info``'s main in a worker; never raises for what the function does.

        A run waits the pool's ``acquire_timeout`` for a free worker and is ``rejected``
        past it; with ``wait_for_worker`` (queued runs) it waits as long as it takes.
        """
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        spec = self._spec(info, event)
        payload = handoff.payload(("run", spec), event)
        if isinstance(payload, str):
            return handoff.failed(ErrorType.INVALID_PARAMS, payload, started, t0)
        try:
            wait = None if wait_for_worker else self.acquire_timeout
            worker = self._acquire_and_send(payload, wait)
        except queue.Empty:
            message = f"no worker free within {self.acquire_timeout.total_seconds():g}s"
            return handoff.failed(ErrorType.REJECTED, message, started, t0)
        results: list[RunResult] = []
        runs = [(0, timeout, spec["seq"])]
        self._answers(worker, runs, lambda _, result: results.append(result))
        return results[0]

    def run_many(
        self,
        runs: Sequence[tuple[FunctionInfo, Event, timedelta]],
        on_result: Callable[[int, RunResult], None],
    ) -> None:
        """Run ``runs`` one after another in one worker, handing each ``(index, result)`` to
        ``on_result`` as it finishes; waits as long as it takes for a free worker.

        The worker gets the whole batch in one message and answers run by run, so it goes
        from one run to the next without waiting for this process (queued trivial runs spent
        most of their time in those hand-offs).  Each run keeps its own time limit, counted
        from the previous answer.  A run that passes it, or a worker that dies, ends that run
        as with :meth:`run`; the runs behind it never started and go to another worker.
        """
        todo: list[int] = []
        for i, (_, event, _) in enumerate(runs):  # refused params never reach a worker
            reason = handoff.refused(event)
            if reason is None:
                todo.append(i)
            else:
                on_result(i, handoff.failed(ErrorType.INVALID_PARAMS, reason))
        while todo:
            worker = self._acquire()
            room = self.max_tasks - worker.tasks if self.max_tasks else len(todo)
            take = todo[: max(1, room)]
            specs = [self._spec(runs[i][0], runs[i][1]) for i in take]
            try:
                payload = handoff.dumps(("batch", specs))
            except Exception:  # one of them does not pickle: fail it alone, send the rest
                self._idle.put(worker)  # it took nothing
                todo = self._pickling(runs, todo, on_result)
                continue
            try:
                worker.send_bytes(payload)
            except OSError:
                log.warning("worker %d died while idle; replacing it", worker.pid)
                self._replace(worker)
                continue
            except BaseException:
                self._replace(worker)  # what it read of the batch is unknown
                raise
            sent = [(i, runs[i][2], spec["seq"]) for i, spec in zip(take, specs, strict=True)]
            done = self._answers(worker, sent, on_result)
            todo = todo[done:]

    def _pickling(
        self,
        runs: Sequence[tuple[FunctionInfo, Event, timedelta]],
        todo: list[int],
        on_result: Callable[[int, RunResult], None],
    ) -> list[int]:
        """The runs of ``todo`` whose requests pickle; the others fail as ``invalid_params``."""
        kept = []
        for i in todo:
            payload = handoff.payload(("run", self._spec(runs[i][0], runs[i][1])), None)
            if isinstance(payload, str):
                on_result(i, handoff.failed(ErrorType.INVALID_PARAMS, payload))
            else:
                kept.append(i)
        return kept

    def _answers(
        self,
        worker: Proc,
        runs: list[tuple[int, timedelta, int]],
        on_result: Callable[[int, RunResult], None],
    ) -> int:
        """Read a batch's answers (``(index, time limit, seq)`` each); how many of ``runs``
        ended (the rest never started)."""
        t0, started = time.perf_counter(), datetime.now(UTC)
        for ended, (index, timeout, seq) in enumerate(runs, 1):
            limit = timeout.total_seconds()
            try:
                if not worker.ready(limit - (time.perf_counter() - t0)):
                    self._replace(worker)
                    message = f"the function ran past its {limit:g}s limit and was killed"
                    failed = handoff.failed(ErrorType.DEADLINE_EXCEEDED, message, started, t0)
                    on_result(index, failed)
                    return ended
                answer = worker.recv()
            except (EOFError, OSError):
                reason = death_reason(worker)
                self._replace(worker)
                on_result(index, handoff.failed(ErrorType.WORKER_LOST, reason, started, t0))
                return ended
            result = handoff.result_of(answer, seq)
            if result is None:
                self._foreign(worker, seq)
                message = "the worker process answered for another run and was replaced"
                on_result(index, handoff.failed(ErrorType.WORKER_LOST, message, started, t0))
                return ended
            on_result(index, result)
            t0, started = time.perf_counter(), datetime.now(UTC)
        self._release(worker, len(runs))
        return len(runs)

    def check(self, info: FunctionInfo, timeout: timedelta = timedelta(seconds=5)) -> str | None:
        """Import the function in a worker; the load error, or None when it loads."""
        seq = next(self._seq)
        spec = {"seq": seq, "name": info.name, "path": str(info.path)}
        spec["is_package"] = info.is_package
        request = handoff.dumps(("check", spec))
        try:
            worker = self._acquire_and_send(request, self.acquire_timeout)
        except queue.Empty:
            return "no worker free to check it"
        try:
            if not worker.ready(timeout.total_seconds()):
                self._replace(worker)
                return f"importing it took longer than {timeout.total_seconds():g}s"
            answer = worker.recv()
        except (EOFError, OSError):
            reason = death_reason(worker)
            self._replace(worker)
            return f"importing it killed the worker: {reason}"
        if not isinstance(answer, dict) or answer.get("seq") != seq:
            self._foreign(worker, seq)
            return "importing it made the worker answer for another request"
        self._release(worker)
        error: str | None = answer.get("error")
        return error

    # internals -------------------------------------------------------------------------
    def _spec(self, info: FunctionInfo, event: Event) -> dict[str, Any]:
        return {
            "seq": next(self._seq),
            "name": info.name,
            "path": str(info.path),
            "is_package": info.is_package,
            "event": event.to_dict(),
            "log_limit": self.log_limit,
            "result_limit": self.result_limit,
        }

    def _foreign(self, worker: Proc, seq: int) -> None:
        log.error("worker %d answered for another request than %d; replacing it", worker.pid, seq)
        self._replace(worker)

    def _acquire(self, wait: timedelta | None = None) -> Proc:
        if self._closed:
            raise PoolClosed("the pool is not running")
        if wait is None:
            return self._get_idle_or_closed()
        return self._idle.get(timeout=max(0.0, wait.total_seconds()))

    def _acquire_and_send(self, payload: bytes, wait: timedelta | None) -> Proc:
        """A free worker that took ``payload`` (a pickled request).  A worker that died while
        idle (the OOM killer, say) fails the send (its end of the pipe is closed): it is
        replaced and the message goes to another, so a run that never started is never
        reported lost.  Whatever else fails while sending, the worker is replaced."""
        while True:
            worker = self._acquire(wait)
            try:
                worker.send_bytes(payload)
                return worker
            except OSError:
                log.warning("worker %d died while idle; replacing it", worker.pid)
                self._replace(worker)
            except BaseException:
                self._replace(worker)  # what it read of the message is unknown
                raise

    def _get_idle_or_closed(self) -> Proc:
        while True:
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                if self._closed:
                    raise PoolClosed("the pool was closed") from None

    def _release(self, worker: Proc, tasks: int = 1) -> None:
        worker.tasks += tasks
        if self._closed or (self.max_tasks and worker.tasks >= self.max_tasks):
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            self._replace(worker)
        else:
            self._idle.put(worker)

    def _spawn(self) -> Proc:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        with main_module_hidden():
            return self._start(parent_conn, child_conn)

    def _start(self, parent_conn: Connection, child_conn: Connection) -> Proc:
        process = self._ctx.Process(
            target=_child.serve,
            args=(child_conn, str(self.functions_dir.resolve()), self.memory_limit_mb),
            name="firehook-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker = Proc(process, parent_conn)
        with self._lock:
            self._live.add(worker)
        return worker

    def _kill(self, worker: Proc) -> None:
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def _replace(self, worker: Proc) -> None:
        """Kill ``worker`` and start its replacement in the background."""
        self.replaced += 1
        thread = threading.Thread(target=self._respawn, args=(worker,), name="firehook-respawn")
        with self._lock:
            self._spawners.add(thread)
        thread.start()

    def _respawn(self, dead: Proc) -> None:
        try:
            self._kill(dead)
            delay = 0.05
            while not self._closed:
                try:
                    self._idle.put(self._spawn())
                    return
                except OSError as e:
                    log.error("could not start a worker process: %s; retrying in %.1fs", e, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            with self._lock:
                self._spawners.discard(threading.current_thread())
