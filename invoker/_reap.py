"""What a run leaves behind in its pool process: forked copies and child processes.

A function may fork (``os.fork()``, ``subprocess.Popen``, a daemon's double fork).  Two rules
keep that from reaching other runs:

- a forked copy of the pool process never answers on its pipe: :func:`exit_if_forked` ends
  it where the pool process would answer (it would otherwise answer for the run, or read the
  next run's request from the shared pipe);
- nothing a run started outlives it: the pool process is a child subreaper (orphaned
  descendants become its children, whatever session they moved to) and
  :func:`end_descendants` kills and reaps every child after each run; when the parent kills
  a pool process (its deadline), it kills :func:`descendants` too.

Standard library only: this runs inside the pool process (``invoker/_child.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

__all__ = ["descendants", "end_descendants", "exit_if_forked", "start_serving"]

_PR_SET_CHILD_SUBREAPER = 36
_serving_pid = 0
_forked = False


def _mark_forked() -> None:
    global _forked
    _forked = True


def start_serving() -> None:
    """(The pool process, once.) Note who answers, mark forked copies, adopt orphans."""
    global _serving_pid
    _serving_pid = os.getpid()
    os.register_at_fork(after_in_child=_mark_forked)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)


def exit_if_forked() -> None:
    """End this process if it is a fork of the pool process, not the pool process itself."""
    if _forked or os.getpid() != _serving_pid:
        os._exit(0)


def _children(pid: int | str = "self") -> list[int]:
    """A process's children (with the orphans it adopted), from ``/proc``."""
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for tid in tasks:  # a child is listed under the thread that started it
        with contextlib.suppress(OSError, ValueError):
            pids.extend(map(int, _read(f"/proc/{pid}/task/{tid}/children").split()))
    return pids


def descendants(pid: int, most: int = 10_000) -> list[int]:
    """(The parent, before it kills a pool process.) Every process below ``pid``, also those
    that moved to a session of their own, which a kill of its process group misses."""
    found: list[int] = []
    todo = _children(pid)
    while todo and len(found) < most:
        child = todo.pop()
        found.append(child)
        todo.extend(_children(child))
    return found


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while chunk := os.read(fd, 65536):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def end_descendants(wait: float = 2.0) -> int:
    """SIGKILL every process this one started (and their descendants) and reap them.

    Killing a child orphans its own children, who come back here (the subreaper) for the
    next pass; so a few passes end a whole tree.  Bounded by ``wait`` seconds.  Returns how
    many processes were ended.
    """
    children = _children()
    if not children:  # the usual case: one listdir and one read
        return 0
    ended = 0
    deadline = time.monotonic() + wait
    while children and time.monotonic() < deadline:
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            ended += _reap(pid, deadline)
        children = _children()
    return ended


def _reap(pid: int, deadline: float) -> int:
    delay = 0.0005
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped already (by the function's own Popen, say)
            return 1
        if done or time.monotonic() >= deadline:
            return 1 if done else 0
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
