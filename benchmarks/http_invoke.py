"""Sync invoke over HTTP: firehook's MinCloud route vs a bare FastAPI endpoint.

Run: ``python benchmarks/http_invoke.py [--n 1000] [--clients 16]``.  Both servers run on
uvicorn in their own process on 127.0.0.1 and are measured from this process with keep-alive
connections (httpx): ``n`` sequential calls, then ``n`` calls from ``clients`` threads at once.
The baseline endpoint calls the same trivial function in-process (``async def`` and ``def``);
firehook checks the client id and the session, runs the function in its pool and commits the
record (SQLite) before it answers.  Targets (issue 4): p50 at most 1 ms above the baseline,
p99 under 10 ms, faster than a Celery ``delay().get()`` round trip (p50 3.3 ms, p99 5.6 ms).
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: benchmarks/queue.py shadows the stdlib)

# isort: split
import argparse
import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from fastapi import FastAPI, Request

from benchmarks._common import Figures, header, measure, table

TRIVIAL = "def main(event):\n    return {'ok': True, 'echo': event.data}\n"
CLIENT_ID = "bench-client"
CELERY = {"p50": 3.3, "p99": 5.6}


def serve_baseline(port: int, function_file: str) -> None:
    """The bare FastAPI server (run in a child process of this script)."""
    import uvicorn

    from firehook.invoker.event import Event

    spec = importlib.util.spec_from_file_location("trivial", function_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    api = FastAPI()

    @api.post("/async")
    async def call_async(request: Request) -> dict[str, object]:
        body = await request.json()
        return {"code": 0, "data": module.main(Event(data=body.get("data"))), "error": {}}

    @api.post("/sync")
    def call_sync(body: dict[str, object]) -> dict[str, object]:
        return {"code": 0, "data": module.main(Event(data=body.get("data"))), "error": {}}

    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def start_firehook(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    env.update(
        FIREHOOK_DATABASE_URL=f"sqlite:///{root / 'bench.db'}",
        FIREHOOK_FUNCTIONS_DIR=str(root / "functions"),
        FIREHOOK_INVOKER__POOL_SIZE="2",
        FIREHOOK_AUTH__CLIENT_ID=CLIENT_ID,
        FIREHOOK_HTTP__INVOKE_RATE_PER_USER="0",
        FIREHOOK_HTTP__INVOKE_RATE_PER_IP="0",
    )
    cmd = [sys.executable, "-m", "firehook", "api", "--port", str(port)]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL)


def sign_up(base: str) -> str:
    res = httpx.post(
        f"{base}/hserve/v2.1/register/username/",
        json={"username": "bench", "password": "bench-password"},
        headers={"X-Hydrogen-Client-ID": CLIENT_ID},
    )
    res.raise_for_status()
    token: str = res.json()["token"]
    return token


class KeepAliveCall:
    """POST one body over a keep-alive connection per thread (stdlib http.client: the
    lightest client at hand, so the figures are the servers', not the client's)."""

    def __init__(self, port: int, path: str, body: dict[str, object], headers: dict[str, str]):
        self.port = port
        self.path = path
        self.body = json.dumps(body).encode()
        self.headers = {**headers, "Content-Type": "application/json"}
        self.local = threading.local()
        self.connections: list[http.client.HTTPConnection] = []

    def __call__(self) -> object:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port)
            self.connections.append(conn)
        conn.request("POST", self.path, self.body, self.headers)
        res = conn.getresponse()
        data = res.read()
        if res.status != 200 or json.loads(data)["code"] != 0:
            raise SystemExit(f"{self.path}: {res.status} {data!r}")
        return data

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


def cases(name: str, call: KeepAliveCall, n: int, clients: int) -> list[Figures]:
    try:
        measure("warm-up", call, 200)
        return [
            measure(f"{name}, sequential", call, n),
            measure(f"{name}, {clients} clients", call, n, concurrency=clients),
        ]
    finally:
        call.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="calls per case")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--serve-baseline", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1])
        return
    n, k = args.n, args.clients
    header(f"benchmarks/http_invoke.py: sync invoke over HTTP, n={n} per case, pool of 2")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "functions").mkdir()
        fn = root / "functions" / "trivial.py"
        fn.write_text(TRIVIAL)
        base_port, fh_port = free_port(), free_port()
        script = str(Path(__file__).resolve())
        procs = [
            subprocess.Popen([sys.executable, script, "--serve-baseline", str(base_port), str(fn)]),
            start_firehook(root, fh_port),
        ]
        try:
            base_url, fh_url = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{fh_port}"
            wait_up(f"{base_url}/docs")
            wait_up(f"{fh_url}/docs")
            token = sign_up(fh_url)
            body: dict[str, object] = {"data": {"x": 1}}
            rows: list[Figures] = []
            rows += cases(
                "bare FastAPI, async def", KeepAliveCall(base_port, "/async", body, {}), n, k
            )
            rows += cases(
                "bare FastAPI, def (threadpool)", KeepAliveCall(base_port, "/sync", body, {}), n, k
            )
            headers = {"X-Hydrogen-Client-ID": CLIENT_ID, "Authorization": f"Hydrogen-r1 {token}"}
            fh_body: dict[str, object] = {"function_name": "trivial", "data": {"x": 1}}
            url = "/hserve/v1/cloud-function/job/"
            fh_call = KeepAliveCall(fh_port, url, fh_body, headers)
            rows += cases("firehook invoke (session, pool, record)", fh_call, n, k)
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
    baseline_seq, baseline_conc = rows[0], rows[1]
    fh_seq, fh_conc = rows[4], rows[5]
    table(rows, baseline_seq)
    print()
    print(
        "firehook p50 over the bare async endpoint: "
        f"sequential {fh_seq.p50 - baseline_seq.p50:+.3f} ms, "
        f"{k} clients {fh_conc.p50 - baseline_conc.p50:+.3f} ms (target <= +1 ms)"
    )
    print(
        f"firehook p99: sequential {fh_seq.p99:.3f} ms, "
        f"{k} clients {fh_conc.p99:.3f} ms (target < 10 ms)"
    )
    print(
        f"Celery delay().get() measured here: p50 {CELERY['p50']} ms, p99 {CELERY['p99']} ms; "
        f"firehook sequential p50 {fh_seq.p50:.3f} ms, p99 {fh_seq.p99:.3f} ms"
    )


if __name__ == "__main__":
    main()
