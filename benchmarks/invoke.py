"""Sync invoke of a trivial function: bare call vs our pool vs pebble, with and without records.

Run: ``python benchmarks/invoke.py [--n 5000]``.  Prints p50/p99 latency and invokes/s for
each case beside the bare in-process call measured in the same run, and the overhead of each
case over the bare call.  Targets (DESIGN issue 2): pool p50 at most 0.5 ms over the bare
call; at least 1,500 recorded sync invokes/s sequentially on SQLite.
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: benchmarks/queue.py shadows the stdlib)

# isort: split
import argparse
import importlib.util
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from benchmarks._common import Figures, header, measure, table
from firehook.app import App
from firehook.config import Settings
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.event import Event

TRIVIAL = "def main(event):\n    return {'ok': True, 'echo': event.data}\n"


def _pebble_call(path: str, data: object) -> object:
    spec = importlib.util.spec_from_file_location("trivial", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get("trivial")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["trivial"] = module
    return module.main(Event(data=data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="calls per case")
    parser.add_argument("--no-pebble", action="store_true", help="skip the pebble comparison")
    args = parser.parse_args()
    n = args.n
    header(f"benchmarks/invoke.py: sync invoke, n={n} per case, pool of 2")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "functions").mkdir()
        fn_path = root / "functions" / "trivial.py"
        fn_path.write_text(TRIVIAL)
        settings = Settings(
            database_url=f"sqlite:///{root / 'bench.db'}",
            functions_dir=root / "functions",
            invoker={"pool_size": 2},
        )
        spec = importlib.util.spec_from_file_location("trivial_bare", fn_path)
        assert spec is not None and spec.loader is not None
        bare_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bare_module)

        def bare() -> object:
            return bare_module.main(Event(data={"x": 1}))

        rows: list[Figures] = []
        baseline = measure("bare in-process call", bare, n)
        rows.append(baseline)
        with App(settings) as fh:
            info = fh.registry.get("trivial")
            timeout = timedelta(seconds=5)

            def pooled() -> object:
                return fh.pool.run(info, Event(data={"x": 1}), timeout)

            def recorded() -> object:
                return fh.dispatcher.run_sync(InvokeRequest("trivial", {"x": 1}))

            measure("warm-up", pooled, 200)
            rows.append(measure("firehook pool, sequential", pooled, n))
            rows.append(measure("firehook pool, 8 at once", pooled, n, concurrency=8))
            measure("warm-up", recorded, 200)
            rows.append(measure("firehook pool + record (SQLite), sequential", recorded, n))
            rows.append(measure("firehook pool + record (SQLite), 8 at once", recorded, n, 8))
        if not args.no_pebble:
            rows.extend(_pebble_rows(str(fn_path), n))
        table(rows, baseline)
        seq = rows[1]
        rec = rows[3]
        print()
        print(f"pool overhead p50 over bare: {seq.p50 - baseline.p50:.3f} ms (target <= 0.5 ms)")
        print(f"recorded sync invokes/s sequential: {rec.rate:.0f} (target >= 1500)")
        print(f"ratio pool/bare p50: {seq.p50 / baseline.p50:.1f}x")


def _pebble_rows(path: str, n: int) -> list[Figures]:
    try:
        import multiprocessing

        from pebble import ProcessPool
    except ImportError:
        print("pebble not installed: pip install pebble (skipped)")
        return []
    ctx = multiprocessing.get_context("forkserver")
    rows = []
    with ProcessPool(max_workers=2, context=ctx) as pp:

        def call() -> object:
            return pp.schedule(_pebble_call, args=(path, {"x": 1}), timeout=5).result()

        measure("warm-up", call, 200)
        rows.append(measure("pebble ProcessPool, sequential", call, n))
        rows.append(measure("pebble ProcessPool, 8 at once", call, n, concurrency=8))
    return rows


if __name__ == "__main__":
    main()
