"""Smoke-test firehook as users install it: from the built wheel, in fresh virtualenvs.

Usage: python .ci/wheel_smoke.py DIST_DIR

Builds nothing itself: DIST_DIR holds the wheel (and sdist) that `python -m build` made on a
clean checkout.  One fresh venv, in a folder that is not the checkout (so nothing is imported
from the source tree), is tested as each extra is added to it:

- ``firehook``            : --version, init, a sync invoke, apply of init's config file,
                            serve (/healthz and a sync invoke over HTTP), worker, consumer
                            and scheduler start and exit 0 on SIGTERM, on the embedded
                            defaults;
- then ``firehook[redis]``: the consumer on a Redis broker (what kombu's redis extra brings
                            is all it needs);
- then ``firehook[postgres]``: serve and worker on PostgreSQL.

Only the standard library here: this runs before anything is installed.  Every wait is
bounded; every process started is stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/14"
CLIENT_ID = "smoke-client"
START_TIMEOUT = 30.0


def main() -> int:
    dist = Path(sys.argv[1]).resolve()
    wheels = sorted(dist.glob("firehook-*.whl"))
    if len(wheels) != 1:
        print(f"expected one firehook wheel in {dist}, found {wheels}", file=sys.stderr)
        return 1
    wheel = wheels[0]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="firehook-smoke-") as tmp:
        root = Path(tmp)
        bin_dir = install(root / "venv", str(wheel))
        print(f"installed {wheel.name} in {time.monotonic() - t0:.1f}s")
        base(bin_dir, root / "project")
        install(root / "venv", f"{wheel}[redis]", fresh=False)
        redis_consumer(bin_dir, root / "project-redis")
        install(root / "venv", f"{wheel}[postgres]", fresh=False)
        postgres_roles(bin_dir, root / "project-pg")
        docker_context_builds(Path(__file__).resolve().parent.parent, root / "image")
    print(f"wheel smoke test passed in {time.monotonic() - t0:.1f}s")
    return 0


def install(where: Path, requirement: str, fresh: bool = True) -> Path:
    if fresh:
        venv.EnvBuilder(with_pip=False).create(where)
    pip = [sys.executable, "-m", "pip", "--python", str(where / "bin" / "python")]
    run([*pip, "install", "--quiet", "--disable-pip-version-check", requirement], cwd=where)
    return where / "bin"


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def role_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def wait_until(what: str, check: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise SystemExit(f"{what}: exited {proc.returncode} before it was ready\n{out}\n{err}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    stop(proc, what, expect_zero=False)
    raise SystemExit(f"{what}: not ready within {START_TIMEOUT:.0f}s")


def healthy(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    return check


def stop(proc: subprocess.Popen[str], what: str, expect_zero: bool = True) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise SystemExit(f"{what}: still running 30 s after SIGTERM\n{out}\n{err}") from None
    if expect_zero and proc.returncode != 0:
        raise SystemExit(f"{what}: exited {proc.returncode} on SIGTERM\n{out}\n{err}")
    print(f"ok  {what}: ready, exited {proc.returncode} on SIGTERM")


def start(fh: Path, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(fh), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def role(fh: Path, name: str, cwd: Path, label: str = "", **env: str) -> None:
    """Start a role with its status listener, wait for /healthz, stop it with SIGTERM."""
    port = free_port()
    proc = start(fh, [name], cwd, role_env(FIREHOOK_METRICS__PORT=str(port), **env))
    what = f"{name}{label}"
    wait_until(what, healthy(port), proc)
    stop(proc, what)


def serve_and_invoke(fh: Path, cwd: Path, label: str = "", **env: str) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = role_env(
        FIREHOOK_AUTH__CLIENT_ID=CLIENT_ID, FIREHOOK_AUTH__ALLOW_ANONYMOUS_INVOKE="true", **env
    )
    proc = start(fh, ["serve", "--port", str(port)], cwd, settings)
    what = f"serve{label}"
    wait_until(what, healthy(port), proc)
    try:
        hdr = {"X-Hydrogen-Client-ID": CLIENT_ID}
        token = http("POST", f"{base_url}/hserve/v2.0/login/anonymous/", {}, hdr)["token"]
        hdr["Authorization"] = f"Hydrogen-r1 {token}"
        job = {"function_name": "helloWorld", "data": {"name": "wheel"}}
        answer = http("POST", f"{base_url}/hserve/v1/cloud-function/job/", job, hdr)
        if answer != {"code": 0, "data": "hello wheel", "error": {}}:
            raise SystemExit(f"{what}: sync invoke over HTTP answered {answer}")
        print(f"ok  {what}: /healthz, sync invoke over HTTP answered {answer['data']!r}")
    finally:
        stop(proc, what)


def base(bin_dir: Path, project: Path) -> None:
    fh = bin_dir / "firehook"
    project.mkdir()
    version = run([str(fh), "--version"], project, role_env()).strip()
    if not version.startswith("firehook "):
        raise SystemExit(f"--version printed {version!r}")
    print(f"ok  {version}")
    run([str(fh), "init", "."], project, role_env())
    out = run([str(fh), "invoke", "helloWorld", "--data", '{"name": "allen"}'], project, role_env())
    if "hello allen" not in out:
        raise SystemExit(f"invoke printed {out!r}")
    print("ok  init and a sync invoke from the CLI")
    # a user's own module named like one of firehook's folders is theirs, not firehook's
    (project / "functions" / "config.py").write_text('NAME = "the user\'s config"\n')
    (project / "functions" / "usesConfig.py").write_text(
        "import config\n\n\ndef main(event):\n    return config.NAME\n"
    )
    out = run([str(fh), "invoke", "usesConfig"], project, role_env())
    if "the user's config" not in out:
        raise SystemExit(f"a function's own config module was shadowed: {out!r}")
    print("ok  a function's own `config` module is not shadowed by firehook")
    run([str(fh), "apply", "firehook.yaml"], project, role_env())
    print("ok  apply of init's firehook.yaml")
    serve_and_invoke(fh, project)
    for name in ("worker", "consumer", "scheduler"):
        role(fh, name, project)


def redis_consumer(bin_dir: Path, project: Path) -> None:
    fh = bin_dir / "firehook"
    project.mkdir()
    run([str(fh), "init", "."], project, role_env())
    role(fh, "consumer", project, " (firehook[redis], Redis broker)", FIREHOOK_BROKER_URL=REDIS_URL)


def postgres_roles(bin_dir: Path, project: Path) -> None:
    fh = bin_dir / "firehook"
    project.mkdir()
    run([str(fh), "init", "."], project, role_env())
    schema = f"fh_smoke_{os.getpid()}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c"]
    run([*psql, f"CREATE SCHEMA {schema}"], project)
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        serve_and_invoke(fh, project, " (firehook[postgres])", FIREHOOK_DATABASE_URL=url)
        role(fh, "worker", project, " (firehook[postgres])", FIREHOOK_DATABASE_URL=url)
    finally:
        run([*psql, f"DROP SCHEMA {schema} CASCADE"], project)


def docker_context_builds(repo: Path, where: Path) -> None:
    """What the Dockerfile copies into /opt/firehook builds a complete wheel (no Docker
    engine here: the COPY lines are replayed as Docker does them, symlinks kept)."""
    opt = where / "opt"
    opt.mkdir(parents=True)
    workdir = None
    for line in (repo / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["WORKDIR"]:
            workdir = words[1]
        if words[:1] != ["COPY"] or workdir != "/opt/firehook":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        *sources, dest = args
        for src in sources:
            target = opt / dest if dest not in ("./", ".") else opt / Path(src).name
            if (repo / src).is_dir():
                shutil.copytree(repo / src, target, symlinks=True)
            else:
                shutil.copy2(repo / src, opt / Path(src).name)
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(where), str(opt)], where
    )
    names = zipfile.ZipFile(next(where.glob("firehook-*.whl"))).namelist()
    missing = [
        p
        for p in ("firehook/api/__init__.py", "firehook/config/settings.py", "firehook/py.typed")
        if p not in names
    ]
    if missing:
        raise SystemExit(f"the image's `pip install .` would miss {missing}")
    print(f"ok  the Dockerfile's COPY lines build a complete wheel ({len(names)} files)")


if __name__ == "__main__":
    sys.exit(main())
