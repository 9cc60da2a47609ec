"""The queue worker: claims due runs with a lease, runs them in the pool, records results.

One loop thread does every database write of the worker (claims, completions, lease
renewals, takeovers), so completions that finish close together are recorded in one
transaction.  Runs execute on one runner thread per pool process: a runner hands its pool
process up to ``BATCH_WORK`` of claimed runs in one message (``Pool.run_many``), so a quick
function's runs follow each other in the pool process without waiting for this one.  How
many runs a worker claims ahead adapts to how long they take: about 50 ms of work beyond
what the pool is running (so quick functions are claimed in large batches, slow ones one
per free process), never more than ``concurrency``.

Each claim and each completion is a transaction, so the loop spends them on batches: it
claims again when half of what it may hold has finished (or a pool process is about to
idle), and records finished runs when half have gathered, when the pool runs dry, or at
the latest ``MAX_GATHER`` after the first of them finished.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from firehook.config.errors import FirehookError
from firehook.config.settings import WorkerSettings
from firehook.invoker.dispatch import Dispatcher
from firehook.invoker.envelope import ErrorType, FunctionNotFound, RunError
from firehook.invoker.event import Event, EventType
from firehook.invoker.pool import RunResult
from firehook.invoker.queue import Claimed, Completion
from firehook.invoker.registry import FunctionInfo
from firehook.invoker.wakeup import Wakeup

__all__ = ["Worker"]

log = logging.getLogger(__name__)

MAX_GATHER = 0.02  # seconds a finished run may wait to be recorded together with others
CONTENDED = 0.02  # seconds before claiming again when another worker holds the due runs
BATCH_WORK = 0.01  # seconds of work a runner hands its pool process at once
MAX_BATCH = 16  # runs a runner hands its pool process at once


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


class Worker:
    """Claims and runs due invocations until stopped."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: WorkerSettings,
        *,
        wakeup: Wakeup | None = None,
        name: str | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.queue = dispatcher.queue
        self.settings = settings
        self.wakeup = wakeup or Wakeup()
        self.name = name or worker_name()
        self.concurrency = settings.concurrency or dispatcher.pool.size * 256
        self._avg_run = 0.05  # seconds, a moving average of recent runs
        self._inflight: dict[str, Claimed] = {}  # held: claimed and not yet recorded
        self._pending: deque[tuple[Claimed, FunctionInfo | FunctionNotFound]] = deque()
        self._done: list[Completion] = []
        self._first_done_at = 0.0
        self._threads = 1
        self._flush_at = 1  # completions worth a transaction (set by the loop)
        self._lock = threading.Lock()
        self._has_pending = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._went_round = False  # the loop got through once since it last (re)started
        self._closed = False  # runners stop taking runs
        self._thread: threading.Thread | None = None
        self._runners: list[threading.Thread] = []
        self.completed = 0  # runs recorded by this worker, for status lines and tests
        self.largest_batch = 0  # most runs handed to a pool process at once, likewise

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> Worker:
        # one runner per pool process; claimed runs beyond that wait in _pending
        self._threads = min(self.concurrency, self.dispatcher.pool.size)
        self._runners = [
            threading.Thread(target=self._runner, name=f"firehook-run_{i}", daemon=True)
            for i in range(self._threads)
        ]
        for t in self._runners:
            t.start()
        self._thread = threading.Thread(target=self._loop_guarded, name="firehook-worker")
        self._thread.start()
        log.info("worker %s started (concurrency %d)", self.name, self.concurrency)
        return self

    def stop(self, grace: timedelta | None = None) -> None:
        """Stop claiming; let runs in flight finish within ``grace``, then release the rest."""
        grace = self.settings.grace_period if grace is None else grace
        self._grace_deadline = time.monotonic() + grace.total_seconds()
        self._stopping.set()
        self.wakeup.notify()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._has_pending.notify_all()
        log.info("worker %s stopped", self.name)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # the loop ------------------------------------------------------------------------------
    def _loop_guarded(self) -> None:
        """The loop, restarted after any error: nothing one run or the database does ends
        the worker.  Claimed and finished runs are kept; the back-off grows while errors
        follow each other and starts again once the loop went round without one."""
        backoff = 0.1
        while not self._stopping.is_set():
            self._went_round = False
            try:
                self._loop()
                break
            except Exception as e:
                if self._went_round:
                    backoff = 0.1
                if isinstance(e, FirehookError):  # the database went away: try again
                    log.error("worker %s: %s; retrying in %.1fs", self.name, e, backoff)
                else:  # a bug of ours: on record with its stack, and go on
                    log.exception("worker %s failed; retrying in %.1fs", self.name, backoff)
                self.wakeup.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._drain()

    def _loop(self) -> None:
        s = self.settings
        lease = s.lease
        renew_every = lease.total_seconds() / 3
        next_renew = time.monotonic() + renew_every
        next_sweep = 0.0
        while not self._stopping.is_set():
            limit = self._claim_limit()
            self._flush_at = max(self._threads, limit // 2)
            if self._worth_flushing():
                self._flush()
            now = time.monotonic()
            if now >= next_renew:
                self._renew()
                next_renew = now + renew_every
            if now >= next_sweep:
                self.queue.take_over_expired(self.dispatcher.retry_policy)
                next_sweep = now + max(1.0, lease.total_seconds() / 6)
            with self._lock:
                held, running = len(self._inflight), len(self._inflight) - len(self._done)
            free = limit - held
            claimed, tried = [], False
            if free > 0 and (free >= limit // 2 or running < self._threads):
                tried = True
                claimed = self.queue.claim(self.name, min(free, s.batch_size), lease)
                functions = self._functions({run.function for run in claimed})
                for run in claimed:
                    self._submit(run, functions[run.function])
            if claimed and len(claimed) == min(free, s.batch_size):
                self._went_round = True
                continue  # there may be more due right now
            wait = min(s.poll_interval.total_seconds(), next_renew - time.monotonic())
            if tried and not claimed:
                due = self.queue.next_due()
                if due is not None:
                    # A run already due that the claim skipped is being claimed by another
                    # worker right now (SKIP LOCKED): look again shortly, do not spin.
                    ahead = (due - self.queue.clock()).total_seconds()
                    wait = min(wait, ahead if ahead > 0 else CONTENDED)
            with self._lock:
                if self._done:
                    wait = min(wait, self._first_done_at + MAX_GATHER - time.monotonic())
            self._went_round = True
            self.wakeup.wait(wait)

    def _worth_flushing(self) -> bool:
        """A batch is ready, or the first finished run has waited ``MAX_GATHER``."""
        with self._lock:
            return bool(self._done) and (
                self._batch_ready_locked() or time.monotonic() - self._first_done_at >= MAX_GATHER
            )

    def _batch_ready_locked(self) -> bool:
        """(Lock held.) Enough finished runs for one transaction, or the pool running dry."""
        done = len(self._done)
        return done >= self._flush_at or len(self._inflight) - done < self._threads

    def _claim_limit(self) -> int:
        """Runs to hold: the pool's processes plus about 50 ms of work queued behind them."""
        size = self.dispatcher.pool.size
        ahead = size * max(1, math.ceil(0.05 / max(self._avg_run, 1e-4)))
        return max(size, min(self.concurrency, size + ahead))

    def _functions(self, names: set[str]) -> dict[str, FunctionInfo | FunctionNotFound]:
        """Each claimed function looked up once per claim (not once per run); an unknown one
        as its ``FunctionNotFound``, which its runs are recorded with."""
        found: dict[str, FunctionInfo | FunctionNotFound] = {}
        for name in names:
            try:
                found[name] = self.dispatcher.registry.get(name)
            except FunctionNotFound as e:
                found[name] = e
        return found

    def _submit(self, run: Claimed, info: FunctionInfo | FunctionNotFound) -> None:
        with self._lock:
            self._inflight[run.id] = run
            self._pending.append((run, info))
            self._has_pending.notify()

    def _runner(self) -> None:
        """Hand claimed runs to a pool process in batches until the worker is closed."""
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._has_pending.wait()
                if self._closed:
                    return
                size = max(1, min(MAX_BATCH, int(BATCH_WORK / max(self._avg_run, 1e-4))))
                size = min(size, math.ceil(len(self._pending) / self._threads))
                batch = [self._pending.popleft() for _ in range(size)]
                self.largest_batch = max(self.largest_batch, size)
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Claimed, FunctionInfo | FunctionNotFound]]) -> None:
        ready: list[tuple[Claimed, FunctionInfo, Event]] = []
        for run, info in batch:
            if isinstance(info, FunctionInfo) and info.error is None:
                ready.append((run, info, self._event(run)))
            else:
                self._finished(self._run_safely(run, info))
        if not ready:
            return

        ended: set[int] = set()

        def on_result(index: int, result: RunResult) -> None:
            run = ready[index][0]
            ended.add(index)
            try:
                completion = self._completion(run, result)
            except Exception as e:  # a bug of ours must not lose the run: record it as failed
                completion = self._crashed(run, e)
            self._finished(completion)

        runs = [(info, event, timedelta(milliseconds=run.timeout_ms)) for run, info, event in ready]
        try:
            self.dispatcher.pool.run_many(runs, on_result)
        except Exception as e:  # the pool was closed under it: record what did not run
            for index, (run, _, _) in enumerate(ready):
                if index not in ended:
                    self._finished(self._crashed(run, e))

    def _finished(self, completion: Completion) -> None:
        with self._lock:
            self._done.append(completion)
            if len(self._done) == 1:
                self._first_done_at = time.monotonic()
            worth = self._batch_ready_locked()
        if worth:  # otherwise the loop comes back within MAX_GATHER on its own
            self.wakeup.notify()

    def _run_safely(self, run: Claimed, info: FunctionInfo | FunctionNotFound) -> Completion:
        try:
            return self._run_one(run, info)
        except Exception as e:  # a bug of ours must not lose the run: record it as failed
            return self._crashed(run, e)

    def _crashed(self, run: Claimed, e: Exception) -> Completion:
        log.exception("worker %s: running %s failed", self.name, run.id)
        error = RunError(ErrorType.EXECUTION_FAILED, f"firehook error: {e}")
        return Completion(run, None, error, "", datetime.now(UTC), timedelta())

    def run_due(self, limit: int = 100) -> int:
        """Claim, run and record what is due now, in the caller's thread (tests, scripts)."""
        claimed = self.queue.claim(self.name, limit, self.settings.lease)
        if not claimed:
            return 0
        functions = self._functions({run.function for run in claimed})
        with ThreadPoolExecutor(min(len(claimed), self.concurrency)) as ex:
            done = list(ex.map(lambda r: self._run_safely(r, functions[r.function]), claimed))
        self.queue.complete(self.name, done, self.dispatcher.retry_policy)
        self.completed += len(done)
        return len(claimed)

    def _run_one(self, run: Claimed, info: FunctionInfo | FunctionNotFound) -> Completion:
        timeout = timedelta(milliseconds=run.timeout_ms)
        if isinstance(info, FunctionNotFound):
            return Completion(
                run,
                None,
                RunError(ErrorType.NOT_FOUND, str(info)),
                "",
                datetime.now(UTC),
                timedelta(),
            )
        if info.error is not None:
            error = RunError(
                ErrorType.EXECUTION_FAILED, f"{info.name} failed to load: {info.error}"
            )
            return Completion(run, None, error, "", datetime.now(UTC), timedelta())
        result = self.dispatcher.pool.run(info, self._event(run), timeout, wait_for_worker=True)
        return self._completion(run, result)

    def _event(self, run: Claimed) -> Event:
        return Event(
            data=run.params,
            event_type=run.event_type,
            job_id=run.id,
            attempt=run.attempt,
            time_limit_ms=run.timeout_ms,
            memory_limit_mb=self.dispatcher.settings.memory_limit_mb,
            request=run.request,
            trigger=run.source if run.event_type == EventType.TRIGGER else None,
        )

    @staticmethod
    def _completion(run: Claimed, result: RunResult) -> Completion:
        """What the pool answered (its process refused results ``jsonsafe`` refuses; the
        queue checks again and makes the log and error texts storable)."""
        value, error = None, result.error
        if result.result_json is not None:
            try:
                value = json.loads(result.result_json)
            except (ValueError, RecursionError) as e:
                error = RunError(ErrorType.EXECUTION_FAILED, f"the result cannot be read: {e}")
        return Completion(run, value, error, result.logs, result.started_at, result.duration)

    def _flush(self) -> None:
        with self._lock:
            done, self._done = self._done, []
            for c in done:
                self._inflight.pop(c.run.id, None)
        if not done:
            return
        for c in done:
            self._avg_run = 0.9 * self._avg_run + 0.1 * c.duration.total_seconds()
        try:
            self.queue.complete(self.name, done, self.dispatcher.retry_policy)
        except Exception:
            with self._lock:  # keep them; the loop retries after a back-off
                self._done[:0] = done
                for c in done:
                    self._inflight[c.run.id] = c.run
            raise
        self.completed += len(done)

    def _renew(self) -> None:
        with self._lock:
            ids = list(self._inflight)
        if ids:
            held = self.queue.renew(self.name, ids, self.settings.lease)
            lost = set(ids) - held - {c.run.id for c in self._done}
            if lost:
                log.warning("worker %s lost the lease of %s", self.name, ", ".join(sorted(lost)))

    def _drain(self) -> None:
        """After stop: wait for runs in flight until the grace deadline, then release them."""
        deadline = getattr(self, "_grace_deadline", time.monotonic())
        while self._inflight and time.monotonic() < deadline:
            with self._lock:
                unfinished = len(self._inflight) - len(self._done)
            if not unfinished and not self._done:
                break
            self.wakeup.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            try:
                self._flush()
            except Exception as e:
                log.error("worker %s could not record finished runs: %s", self.name, e)
        try:
            self._flush()
            with self._lock:
                left = list(self._inflight)
            if left:
                released = self.queue.release(self.name, left)
                log.warning("worker %s released %d unfinished run(s)", self.name, released)
        except Exception as e:
            log.error(
                "worker %s could not release its runs (their leases will expire): %s", self.name, e
            )
