"""Run every benchmark script, one after the other, and write ``docs/benchmarks.md``.

Run: ``python benchmarks/run_all.py`` (about 15 minutes on 2 cores; RabbitMQ and PostgreSQL
on 127.0.0.1; the Celery/Dramatiq comparison needs ``pip install -e '.[bench]'``).
``--quick`` runs each script with small counts (a smoke run: figures not worth quoting),
``--only e2e,invoke`` picks scripts, ``--out`` writes elsewhere.  The page records the
machine, the versions, each command, how long it took and everything it printed; a script
that fails is recorded as failed, with its output, and the runner exits 1.
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: benchmarks/queue.py shadows the stdlib)

# isort: split
import argparse
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# script -> (full arguments, quick arguments); run in this order
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "invoke": ([], ["--n", "300", "--no-pebble"]),
    "queue": ([], ["--n", "2000", "--runs", "500"]),
    "events": ([], ["--n", "300"]),
    "http_invoke": ([], ["--n", "100", "--clients", "4"]),
    "scheduler": ([], ["--n", "300", "--group", "50"]),
    "e2e": (["--rounds", "3"], ["--n", "300", "--workers", "1,2", "--modes", "live"]),
}
PACKAGES = (
    "kombu",
    "SQLAlchemy",
    "psycopg",
    "APScheduler",
    "fastapi",
    "uvicorn",
    "celery",
    "dramatiq",
    "pika",
    "pebble",
)


@dataclass
class Outcome:
    name: str
    command: list[str]
    seconds: float
    code: int
    output: str


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _server_versions() -> list[str]:
    lines = []
    try:
        from sqlalchemy import text

        from benchmarks._common import PG, RABBIT
        from firehook.config import create_db_engine
        from firehook.triggers.broker import connect

        engine = create_db_engine(PG)
        with engine.connect() as conn:
            lines.append(f"PostgreSQL: {conn.execute(text('SHOW server_version')).scalar_one()}")
        engine.dispose()
        with connect(RABBIT) as conn:
            conn.connect()
            props = conn.connection.server_properties
            lines.append(f"RabbitMQ: {props.get('version', 'unknown')}")
    except Exception as e:  # a server that is down is named in the page, not fatal here
        lines.append(f"servers: could not ask ({type(e).__name__}: {e})")
    return lines


def _code() -> str:
    """The commit measured, and whether the work tree had changes beyond it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError as e:
        return f"unknown (git: {e})"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    changed = " plus uncommitted changes" if dirty.stdout.strip() else ""
    return f"commit {head.stdout.strip()}{changed}"


def machine() -> list[str]:
    versions = []
    for name in ("firehook", *PACKAGES):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores; memory {_memory_gib()}",
        f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python {platform.python_version()} ({sys.executable})",
        *(f"- {line}" for line in _server_versions()),
        "- packages: " + ", ".join(versions),
        f"- code: {_code()}",
    ]


def run(name: str, args: list[str]) -> Outcome:
    command = [sys.executable, str(HERE / f"{name}.py"), *args]
    shown = ["python", f"benchmarks/{name}.py", *args]
    print(f"== {' '.join(shown)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    seconds = time.perf_counter() - t0
    print(proc.stdout, end="", flush=True)
    print(f"== {name}: exit {proc.returncode} after {seconds:.0f} s", flush=True)
    return Outcome(name, shown, seconds, proc.returncode, proc.stdout)


def page(outcomes: list[Outcome], quick: bool, started: datetime) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run_all.py`"
        + (" --quick (small counts: a smoke run, not figures to quote)" if quick else "")
        + f" on {started:%Y-%m-%d %H:%M} UTC.  Each script prints its own baseline, run in the "
        "same process, and the ratio to it; `docs/operations.md` explains the set-ups.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Results",
        "",
        "| script | command | time | result |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        status = "ok" if o.code == 0 else f"**failed** (exit {o.code})"
        lines.append(f"| {o.name} | `{' '.join(o.command)}` | {o.seconds:.0f} s | {status} |")
    for o in outcomes:
        lines += ["", f"### {o.name}", "", f"`{' '.join(o.command)}`", "", "```text"]
        lines += [o.output.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--only", default="", help=f"comma list of: {', '.join(SCRIPTS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        parser.error(f"unknown script(s): {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    started = datetime.now(UTC)
    outcomes = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", flush=True)
        full, quick = SCRIPTS[name]
        outcomes.append(run(name, quick if args.quick else full))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page(outcomes, args.quick, started))
    failed = [o.name for o in outcomes if o.code != 0]
    print(f"wrote {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
