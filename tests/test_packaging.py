"""What a user installs: one ``firehook`` package, no top-level ``config`` to shadow theirs.

The wheel itself is built and smoke-tested by ``.ci/wheel_smoke.py`` (from ``.ci/run``);
these tests hold the rules that keep it installable.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN = ("config", "invoker", "triggers", "scheduler")


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    env.pop("PYTHONPATH", None)
    return env


def test_our_code_imports_its_packages_only_under_the_firehook_name() -> None:
    """``import config`` in our code would load a second copy, or a user's ``config``."""
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(OWN)})(\.|\s|$)", re.MULTILINE)
    offenders = []
    for folder in (*OWN, "firehook", "tests", "benchmarks", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            if "node_modules" in path.parts or path.is_symlink():
                continue
            text = path.read_text(encoding="utf-8")
            found = [m.group(0).strip() for m in pattern.finditer(text)]
            offenders.extend(f"{path.relative_to(ROOT)}: {line}" for line in found)
    assert offenders == []


def test_the_top_level_folders_are_the_firehook_subpackages() -> None:
    import firehook.config
    import firehook.invoker
    import firehook.scheduler
    import firehook.triggers

    for name, module in zip(
        OWN,
        (firehook.config, firehook.invoker, firehook.triggers, firehook.scheduler),
        strict=True,
    ):
        assert Path(module.__file__ or "").resolve().parent == ROOT / name
    for name in OWN:
        assert name not in sys.modules, f"a top-level {name!r} was imported"


def test_a_functions_own_config_invoker_and_scheduler_modules_are_not_shadowed(
    tmp_path: Path,
) -> None:
    functions = tmp_path / "functions"
    (functions / "shop").mkdir(parents=True)
    (functions / "config.py").write_text('GREETING = "hello from the user\'s config"\n')
    (functions / "scheduler.py").write_text('WHO = "user scheduler"\n')
    (functions / "greet.py").write_text(
        "import config\nimport scheduler\n\n\n"
        "def main(event):\n    return [config.GREETING, scheduler.WHO]\n"
    )
    (functions / "shop" / "__init__.py").write_text(
        "from . import config\nfrom .invoker import kind\n\n\n"
        "def main(event):\n    return [config.CURRENCY, kind]\n"
    )
    (functions / "shop" / "config.py").write_text('CURRENCY = "CNY"\n')
    (functions / "shop" / "invoker.py").write_text('kind = "user invoker"\n')

    def invoke(name: str) -> str:
        done = subprocess.run(
            [sys.executable, "-P", "-m", "firehook", "invoke", name, "--json"],
            cwd=tmp_path,
            env=_user_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    assert '"hello from the user\'s config"' in invoke("greet")
    assert '"user scheduler"' in invoke("greet")
    assert '"CNY"' in invoke("shop")
    assert '"user invoker"' in invoke("shop")


def test_a_sigterm_while_the_worker_starts_stops_it_with_exit_0(tmp_path: Path) -> None:
    """The pool ignored SIGTERM while its processes started (a second or more): a role
    signalled then (say, by a supervisor as soon as /healthz answered) kept running forever."""
    (tmp_path / "functions").mkdir()
    env = _user_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "firehook", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _children(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[0]
        # the pool's first process (the forkserver) exists: its workers are starting now
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"firehook worker ignored a SIGTERM sent while it started:\n{out}")
    assert proc.returncode == 0, out


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
