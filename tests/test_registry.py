"""The function registry: discovery, name rules, load errors, edits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from firehook.invoker.envelope import FunctionNotFound
from firehook.invoker.registry import Registry, valid_name


def test_finds_modules_and_packages(functions_dir: Path) -> None:
    names = Registry(functions_dir).names()
    assert {"hello", "boom", "pkgFunc"} <= set(names)
    assert "util" not in names  # a module inside a package is not a function


@pytest.mark.parametrize(
    "name",
    [
        "../hello",
        "hello/../hello",
        "/etc/passwd",
        "hel lo",
        "1abc",
        "",
        "a" * 65,
        "hello.py",
        "héllo",
    ],
)
def test_invalid_names_are_refused_and_never_touch_the_disk(functions_dir: Path, name: str) -> None:
    assert not valid_name(name)
    with pytest.raises(FunctionNotFound):
        Registry(functions_dir).get(name)


@pytest.mark.parametrize("name", ["a", "_x", "helloWorld", "A" * 64, "cancel_unpaid_order2"])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


def test_unknown_function_is_not_found(functions_dir: Path) -> None:
    with pytest.raises(FunctionNotFound, match="'nope' not found"):
        Registry(functions_dir).get("nope")


def test_syntax_error_is_listed_with_its_error_and_others_still_load(functions_dir: Path) -> None:
    registry = Registry(functions_dir)
    infos = {i.name: i for i in registry.list()}
    assert infos["syntaxError"].error is not None
    assert "SyntaxError" in infos["syntaxError"].error and "line 1" in infos["syntaxError"].error
    assert infos["noMain"].error == "noMain.py defines no main(event)"
    assert infos["hello"].ok


def test_new_and_removed_files_are_seen_without_a_restart(functions_dir: Path) -> None:
    registry = Registry(functions_dir)
    assert "later" not in registry.names()
    (functions_dir / "later.py").write_text("def main(event):\n    return 1\n")
    assert registry.get("later").ok
    (functions_dir / "later.py").unlink()
    with pytest.raises(FunctionNotFound):
        registry.get("later")


def test_a_fixed_file_loses_its_error(functions_dir: Path) -> None:
    registry = Registry(functions_dir)
    path = functions_dir / "syntaxError.py"
    assert registry.get("syntaxError").error is not None
    path.write_text("def main(event):\n    return 1\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert registry.get("syntaxError").ok


def test_missing_folder_is_an_empty_registry(tmp_path: Path) -> None:
    assert Registry(tmp_path / "absent").names() == []


def test_file_wins_over_package_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "twin").mkdir()
    (tmp_path / "twin" / "__init__.py").write_text("def main(event):\n    return 'pkg'\n")
    (tmp_path / "twin.py").write_text("def main(event):\n    return 'file'\n")
    info = Registry(tmp_path).get("twin")
    assert info.path == tmp_path / "twin.py" and not info.is_package


def test_main_bound_by_import_or_assignment_counts(tmp_path: Path) -> None:
    (tmp_path / "aliased.py").write_text("def _impl(event):\n    return 1\nmain = _impl\n")
    (tmp_path / "imported.py").write_text("from os.path import basename as main\n")
    registry = Registry(tmp_path)
    assert registry.get("aliased").ok
    assert registry.get("imported").ok
