"""One pool process as the pool sees it: its pipe, its liveness, how it is killed.

The pipe speaks pickle, like ``Connection.send``/``recv``, without their per-call costs.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import signal
import sys
import threading
import types
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from firehook.invoker import _reap

__all__ = ["Proc", "death_reason", "main_module_hidden"]


class Proc:
    __slots__ = ("_kill_lock", "_killed", "_poller", "conn", "process", "tasks")

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.tasks = 0
        self._killed = False
        self._kill_lock = threading.Lock()
        self._poller: select.poll | None = None

    # The pipe speaks pickle, like Connection.send/recv, without their per-call costs (a new
    # ForkingPickler per message, a new selector per poll): about 30 us a run.
    def send_bytes(self, payload: bytes) -> None:
        """Send a request the caller pickled (a value that fails to pickle fails before a
        worker is taken)."""
        self.conn.send_bytes(payload)

    def ready(self, timeout: float) -> bool:
        """An answer (or the end of the pipe) arrived within ``timeout`` seconds."""
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.conn.fileno(), select.POLLIN)
        return bool(self._poller.poll(max(0, math.ceil(timeout * 1000))))

    def recv(self) -> Any:
        return pickle.loads(self.conn.recv_bytes())

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def kill(self) -> None:
        """Kill the worker's process group and close its pipe, once (any thread may call)."""
        with self._kill_lock:
            if self._killed:
                return
            self._killed = True
        below = _reap.descendants(self.pid)  # before the kill orphans them
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in below:  # those in a session of their own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.join(5)
        self.conn.close()


def death_reason(worker: Proc) -> str:
    worker.process.join(1)
    code = worker.process.exitcode
    if code is None:
        return "the worker process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"the worker process was killed by {name}"
    return f"the worker process exited with code {code} while running the function"


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start a worker without multiprocessing re-running the parent's ``__main__`` in it.

    forkserver and spawn children import the parent's main script again (as ``__mp_main__``):
    an application script without an ``if __name__ == "__main__"`` guard would run again in
    every worker, and one that cannot be imported there would kill it.  Workers never need it
    (they load functions from their files), so the main module is hidden while one starts.
    """
    with _MAIN_LOCK:
        real = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = real
