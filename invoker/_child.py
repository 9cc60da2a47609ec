"""The code that runs inside a pool worker process: load a function, run it, answer.

Kept free of firehook's heavier imports so that the forkserver preloads it cheaply.  The
parent talks to each worker over its own duplex pipe: it sends ``("run", spec)``,
``("batch", [spec, ...])`` or ``("check", spec)`` and gets one dict back per spec, holding
the spec's ``seq`` (the parent refuses an answer for another run).  The parent enforces the
deadline by killing the worker's process group, so nothing here needs to watch the clock.

Whatever a function does, the worker answers for its run and goes on: a result that cannot
be stored (:func:`firehook.invoker.jsonsafe.problem`) or is over the size limit fails the
run; logs and error texts are cut and made storable; a forked copy of the worker never
answers and the processes a run started end with it (``_reap.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib.util
import inspect
import io
import json
import logging
import os
import pickle
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from firehook.invoker import _jsonfast, _reap, jsonsafe
from firehook.invoker.event import Event

# firehook's own frames (the whole package: sdk.py too) are left out of a function's stack;
# not resolved, so that a checkout's firehook/invoker symlink path matches its frames.
_OWN_DIR = str(Path(__file__).parent.parent) + os.sep
IN_WORKER = False  # True inside a pool worker process
_MODULE_PREFIX = "firehook_fn_"
RESULT_LIMIT_BYTES = 1024 * 1024
"""The largest result (its JSON, UTF-8) a run may return, unless the pool says otherwise."""


class _Capture(io.TextIOBase):
    """A text sink that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            room = self.limit - self.size
            if room > 0:
                kept = s[:room]
                self.parts.append(kept)
                self.size += len(kept)
                self.dropped += len(s) - len(kept)
            else:
                self.dropped += len(s)
        return len(s)

    def text(self) -> str:
        out = "".join(self.parts)
        if self.dropped:
            out += (
                f"\n[firehook: output cut at {self.limit} characters,"
                f" {self.dropped} more dropped]\n"
            )
        return out


class _LogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sink: _Capture | None = None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self.sink is not None:
            self.sink.write(self.format(record) + "\n")


_modules: dict[str, tuple[tuple[int, ...], ModuleType | BaseException]] = {}


def _fingerprint(path: Path, is_package: bool) -> tuple[int, ...]:
    if not is_package:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    stamps = []
    for root, _dirs, files in os.walk(path.parent):
        for f in files:
            if f.endswith(".py"):
                st = os.stat(os.path.join(root, f))
                stamps.append(st.st_mtime_ns ^ st.st_size)
    return (len(stamps), max(stamps, default=0), sum(stamps) & 0xFFFFFFFFFFFF)


def _load(name: str, path: Path, is_package: bool) -> ModuleType:
    """Import the function's module, again whenever its files changed."""
    key = str(path)
    fp = _fingerprint(path, is_package)
    cached = _modules.get(key)
    if cached is not None and cached[0] == fp:
        if isinstance(cached[1], BaseException):
            raise cached[1]
        return cached[1]
    modname = _MODULE_PREFIX + name
    for loaded in [m for m in sys.modules if m == modname or m.startswith(modname + ".")]:
        del sys.modules[loaded]
    importlib.invalidate_caches()
    spec = importlib.util.spec_from_file_location(
        modname, path, submodule_search_locations=[str(path.parent)] if is_package else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
        if not callable(getattr(module, "main", None)):
            raise AttributeError(f"{path.name} defines no callable main(event)")
    except BaseException as e:
        sys.modules.pop(modname, None)
        err = _LoadError(f"{name} failed to load: {type(e).__name__}: {e}", _stack(e))
        _modules[key] = (fp, err)
        raise err from None
    _modules[key] = (fp, module)
    return module


class _LoadError(Exception):
    def __init__(self, message: str, stack: str) -> None:
        super().__init__(message)
        self.stack = stack


def _stack(exc: BaseException) -> str:
    """The traceback without firehook's own frames: only the function's code is shown."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [
            f
            for f in te.stack
            if not f.filename.startswith(_OWN_DIR) and "importlib" not in f.filename
        ]
    )
    return "".join(te.format())


@functools.lru_cache(maxsize=256)  # inspect.signature costs more than a trivial run
def _positional_count(main: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(main).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)


class _Failed(Exception):
    """main reported an error through callback(err, ...)."""


def _call(main: Callable[..., Any], event: Event) -> Any:
    if _positional_count(main) < 2:
        result = main(event)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result
    done = threading.Event()
    box: dict[str, Any] = {}

    def callback(err: Any = None, data: Any = None) -> None:
        if not done.is_set():
            box["err"], box["data"] = err, data
            done.set()

    returned = main(event, callback)
    if inspect.isawaitable(returned):
        returned = asyncio.run(_await(returned))
    done.wait()  # MinCloud: a function that never calls back runs until its deadline
    err = box["err"]
    if err is not None:
        if isinstance(err, BaseException):
            raise err
        raise _Failed(str(err))
    return box["data"]


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _run(spec: dict[str, Any], handler: _LogHandler) -> dict[str, Any]:
    limit = spec["log_limit"]
    sink = _Capture(limit)
    handler.sink = sink
    started = time.time()
    t0 = time.perf_counter()
    answer: dict[str, Any] = {"result": None, "error": None, "started": started}
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                module = _load(spec["name"], Path(spec["path"]), spec["is_package"])
                value = _call(module.main, Event.from_dict(spec["event"]))
            except _LoadError as e:
                _reap.exit_if_forked()
                answer["error"] = _error("execution_failed", str(e), e.stack, limit)
            except _Failed as e:
                _reap.exit_if_forked()
                answer["error"] = _error("execution_failed", str(e), "", limit)
            except BaseException as e:  # the function's own failure, SystemExit included
                _reap.exit_if_forked()
                answer["error"] = _error("execution_failed", _describe(e), _stack(e), limit)
            else:
                _reap.exit_if_forked()  # a forked copy that returned: never answers
                result_limit = spec.get("result_limit", RESULT_LIMIT_BYTES)
                answer["result"] = _encode(value, answer, result_limit)
    finally:
        handler.sink = None
    with contextlib.suppress(Exception):  # nothing it started outlives the run
        _reap.end_descendants()
    answer["duration_ms"] = (time.perf_counter() - t0) * 1000
    answer["logs"] = jsonsafe.storable_text(_utf8(sink.text()))
    return answer


def _describe(e: BaseException) -> str:
    """The exception's message; its type's name when it has none (or ``str()`` fails)."""
    if isinstance(e, MemoryError):
        return f"MemoryError: {e}".rstrip(": ")
    try:
        return str(e) or type(e).__name__
    except Exception:
        return type(e).__name__


def _encode(value: Any, answer: dict[str, Any], limit: int = RESULT_LIMIT_BYTES) -> str | None:
    """``value`` as JSON, or None with ``answer["error"]`` saying why it cannot be returned."""
    encoded = reason = None
    try:
        encoded = _jsonfast.encode(value)  # refuses what jsonsafe.problem() refuses
    except _jsonfast.Refused as e:
        reason = f"the result of main() cannot be stored: {e}"
    except Exception as e:  # TypeError, a default() or __str__ that raised
        reason = f"the result of main() is not JSON-serialisable: {_describe(e)}"
    if encoded is not None and len(encoded) * 4 > limit:  # may be over: count its bytes
        size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))
        if size > limit:
            encoded = None
            reason = f"the result is {size} bytes of JSON, over the limit of {limit} bytes"
    if encoded is None:
        answer["error"] = _error("execution_failed", reason or "", "", limit)
    return encoded


def _error(type_: str, message: str, stack: str, limit: int = 64 * 1024) -> dict[str, str]:
    return {"type": type_, "message": _storable(message, limit), "stack": _storable(stack, limit)}


def _storable(text: str, limit: int) -> str:
    """An error text cut to ``limit`` characters (with a note) and made storable."""
    if len(text) > limit:
        text = f"{text[:limit]}\n[firehook: cut {len(text) - limit} more characters]"
    return jsonsafe.storable_text(_utf8(text))


def _utf8(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (``"\\ud800"``, which Python strings may
    hold and no database or JSON reader accepts) is written out as its escape."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _check(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        _load(spec["name"], Path(spec["path"]), spec["is_package"])
    except _LoadError as e:
        return {"error": _storable(str(e), 64 * 1024)}
    finally:
        _reap.exit_if_forked()  # a module that forks when imported
    return {"error": None}


def _answer(kind: str, spec: dict[str, Any], handler: _LogHandler) -> dict[str, Any]:
    """The answer to one request, tagged with its ``seq``; never raises."""
    try:
        answer = _run(spec, handler) if kind == "run" else _check(spec)
    except Exception as e:  # a bug of ours (or a file gone): the run fails, the worker serves on
        message = f"firehook could not run it: {type(e).__name__}: {_describe(e)}"
        if kind != "run":
            answer = {"error": _storable(message, 64 * 1024)}
        else:
            answer = {"result": None, "error": _error("execution_failed", message, "")}
            answer.update(started=time.time(), duration_ms=0.0, logs="")
    answer["seq"] = spec.get("seq")
    return answer


def _harden(memory_limit_mb: int) -> None:
    os.setsid()  # our own process group: a deadline kill takes grandchildren too
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if memory_limit_mb > 0:
        limit = memory_limit_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def call_here(name: str, path: Path, is_package: bool, event: Event) -> dict[str, Any]:
    """Run a function in this process (a function calling another): ``{data, error}``."""
    try:
        value = _call(_load(name, path, is_package).main, event)
    except _LoadError as e:
        return {"data": None, "error": _error("execution_failed", str(e), e.stack)}
    except Exception as e:
        return {"data": None, "error": _error("execution_failed", _describe(e), _stack(e))}
    answer: dict[str, Any] = {"error": None}
    encoded = _encode(value, answer)
    return {"data": None if encoded is None else json.loads(encoded), "error": answer["error"]}


def serve(conn: Connection, functions_dir: str, memory_limit_mb: int) -> None:
    """The worker's main loop: answer requests until the pipe closes or ``None`` arrives."""
    global IN_WORKER
    IN_WORKER = True
    _harden(memory_limit_mb)
    if functions_dir not in sys.path:
        sys.path.append(functions_dir)  # after the stdlib: a function named json.py can't shadow it
    handler = _LogHandler()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    _reap.start_serving()
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message is None:
            return
        kind, spec = message
        if kind == "batch":  # runs one after another, each answered as it ends
            answers: Iterator[dict[str, Any]] = (_answer("run", one, handler) for one in spec)
        else:
            answers = iter([_answer(kind, spec, handler)])
        for answer in answers:
            _reap.exit_if_forked()
            try:
                conn.send_bytes(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
            except (BrokenPipeError, OSError):
                return
