"""Where the CPU went during a benchmark run: whole machine and per group of processes.

Reads ``/proc`` (Linux only): ``/proc/stat`` for the machine's busy share, and
``/proc/<pid>/stat`` (user + system time) for every process, grouped by a caller-given
rule (our roles and their pool children, the peer's workers, PostgreSQL, RabbitMQ, the
benchmark process itself).  A process that exits between the two samples is not counted;
the roles, pools and servers measured here live through the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, cpu seconds) of one process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # fields after the name: state ppid ... utime(14th overall -> rest[11]) stime(rest[12])
    return name, int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK


def _machine() -> tuple[float, float]:
    """(busy, total) jiffies summed over all cores since boot."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return float(sum(parts) - idle), float(sum(parts))


@dataclass
class Snapshot:
    cpu: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    busy: float = 0.0
    total: float = 0.0

    @classmethod
    def take(cls) -> Snapshot:
        snap = cls()
        snap.busy, snap.total = _machine()
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                stat = _proc_stat(int(entry.name))
                if stat is not None:
                    snap.cpu[int(entry.name)] = stat
        return snap


Classifier = Callable[[int, str, dict[int, tuple[str, int, float]]], str | None]


def descends_from(pid: int, roots: set[int], table: dict[int, tuple[str, int, float]]) -> bool:
    """True if ``pid`` is one of ``roots`` or a child, grandchild, ... of one."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid in roots:
            return True
        entry = table.get(pid)
        if entry is None:
            return False
        pid = entry[1]
        seen += 1
    return False


def servers(name: str) -> str | None:
    """The shared services every setup uses, by command name."""
    if name == "postgres":
        return "PostgreSQL"
    if name in ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"):
        return "RabbitMQ"
    return None


@dataclass
class Usage:
    wall: float
    cores: int
    machine_busy: float  # share of all cores, 0..1
    groups: dict[str, float]  # cpu seconds per group

    def line(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(self.groups.items(), key=_by_cpu))
        return (
            f"CPU {self.machine_busy:.0%} of {self.cores} cores busy over {self.wall:.1f} s; "
            f"cpu seconds: {parts}"
        )


def _by_cpu(item: tuple[str, float]) -> float:
    return -item[1]


def usage(before: Snapshot, after: Snapshot, wall: float, classify: Classifier) -> Usage:
    groups: dict[str, float] = {}
    for pid, (name, _ppid, cpu) in after.cpu.items():
        group = classify(pid, name, after.cpu) or servers(name)
        if group is None:
            continue
        prior = before.cpu.get(pid)
        spent = cpu - (prior[2] if prior is not None and prior[0] == name else 0.0)
        groups[group] = groups.get(group, 0.0) + max(spent, 0.0)
    total = after.total - before.total
    busy = (after.busy - before.busy) / total if total else 0.0
    return Usage(wall, os.cpu_count() or 1, busy, groups)
