"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class Figures:
    name: str
    n: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return self.pct(0.99)


def measure(name: str, call: Callable[[], object], n: int, concurrency: int = 1) -> Figures:
    """Run ``call`` n times (from ``concurrency`` threads) and keep each latency."""
    latencies: list[float] = []

    def one(_: int) -> None:
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(concurrency) as ex:
            list(ex.map(one, range(n)))
    return Figures(name, n, time.perf_counter() - start, latencies)


def header(title: str) -> None:
    print(f"# {title}")
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")


def table(rows: list[Figures], baseline: Figures) -> None:
    print(f"{'case':<44} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>9} {'p50-base':>9}")
    for r in rows:
        print(
            f"{r.name:<44} {r.n:>6} {r.p50:>8.3f} {r.p99:>8.3f} {r.rate:>9.0f} "
            f"{r.p50 - baseline.p50:>+9.3f}"
        )
