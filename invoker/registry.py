"""Discovers functions in the functions folder: ``<name>.py`` or ``<name>/__init__.py``.

A caller's name is only ever looked up in the scanned listing, never joined onto a path.
The parent process never imports user code: it checks each file's syntax and that it
defines ``main`` (by reading its AST); import-time errors surface from the worker that
loads it.  Edits are seen on the next lookup: the folder is rescanned when its listing
changes and a file is re-read when its modification time or size changes.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from firehook.invoker.envelope import FunctionNotFound

__all__ = ["NAME_PATTERN", "FunctionInfo", "Registry", "valid_name"]

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    name: str
    path: Path  # the file that defines main: <name>.py or <name>/__init__.py
    is_package: bool
    error: str | None = None  # why it cannot run (syntax error, no main), or None

    @property
    def ok(self) -> bool:
        return self.error is None


def _fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


# CPython 3.11 can fail ast.parse run from several threads at once ("AST constructor
# recursion depth mismatch"); every registry in the process takes turns.
_PARSE_LOCK = threading.Lock()


def _check_source(path: Path) -> str | None:
    try:
        source = path.read_bytes()
    except OSError as e:
        return f"cannot read {path.name}: {e.strerror}"
    try:
        with _PARSE_LOCK:
            tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        return f"SyntaxError: {e.msg} ({path.name}, line {e.lineno})"
    except ValueError as e:  # null bytes
        return f"cannot parse {path.name}: {e}"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main":
            return None
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.ImportFrom | ast.Import):
            names = _bound_names(node)
            if "main" in names:
                return None
    return f"{path.name} defines no main(event)"


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


class Registry:
    """The functions in one folder, kept current without a restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._listing_key: tuple[int, int] | None = None
        self._paths: dict[str, tuple[Path, bool]] = {}
        self._checked: dict[str, tuple[tuple[int, int] | None, FunctionInfo]] = {}

    def _rescan_if_changed(self) -> None:
        key = _fingerprint(self.folder)
        if key is not None and key == self._listing_key:
            return
        paths: dict[str, tuple[Path, bool]] = {}
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            entries = []
        for entry in entries:
            if entry.is_file() and entry.name.endswith(".py"):
                name, path, package = entry.name[:-3], Path(entry.path), False
            elif entry.is_dir() and (Path(entry.path) / "__init__.py").is_file():
                name, path, package = entry.name, Path(entry.path) / "__init__.py", True
            else:
                continue
            if not valid_name(name) or name.startswith("_"):
                continue
            if name in paths:  # both foo.py and foo/: the file wins, as documented
                log.warning("both %s.py and %s/ in %s; using %s.py", name, name, self.folder, name)
                if package:
                    continue
            paths[name] = (path, package)
        self._paths = paths
        self._listing_key = key

    def get(self, name: str) -> FunctionInfo:
        """The function called ``name``; raises :class:`FunctionNotFound`."""
        if not valid_name(name):
            raise FunctionNotFound(name)
        with self._lock:
            self._rescan_if_changed()
            found = self._paths.get(name)
            if found is None:
                raise FunctionNotFound(name)
            path, package = found
            fp = _fingerprint(path)
            cached = self._checked.get(name)
            if cached is not None and cached[0] == fp and cached[1].path == path:
                return cached[1]
            info = FunctionInfo(name, path, package, _check_source(path))
            self._checked[name] = (fp, info)
            return info

    def names(self) -> list[str]:
        with self._lock:
            self._rescan_if_changed()
            return sorted(self._paths)

    def list(self) -> list[FunctionInfo]:
        """Every function found, with its load error if it has one."""
        infos = []
        for name in self.names():
            try:
                infos.append(self.get(name))
            except FunctionNotFound:  # removed between the two calls
                continue
        return infos
