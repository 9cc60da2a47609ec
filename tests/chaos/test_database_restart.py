"""Crash test (4): PostgreSQL restarted in the middle of a burst; the roles recover alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chaos.rig import Rig

EVENTS = 3000


def restart_postgres() -> None:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions:
        pytest.skip("no local PostgreSQL cluster to restart")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_event_is_fulfilled_exactly_once_when_postgres_restarts_mid_burst(
    rig: Rig,
) -> None:
    if not Path("/etc/postgresql").is_dir():
        pytest.skip("PostgreSQL is not a local cluster here")
    roles = [rig.start("consumer"), rig.start("worker"), rig.start("worker")]

    def at(i: int) -> None:
        if i == EVENTS // 2:
            restart_postgres()

    rig.publish(EVENTS, seconds=10, at=at)
    c = rig.wait_done(EVENTS, timeout=150)
    print(
        f"{EVENTS} events published, PostgreSQL restarted once at {EVENTS // 2}: {c.events} "
        f"runs recorded, {c.fulfilled_once} fulfilled once, {c.fulfilled_twice_or_more} more "
        f"than once, {c.unfinished} unfinished; {c.attempts} attempts, {c.worker_lost} taken over"
    )
    felt = [sum(" ERROR " in ln or " WARNING " in ln for ln in r.lines) for r in roles]
    print(f"warnings and errors logged by consumer, worker, worker: {felt}")
    assert all(r.alive() for r in roles), [r.output()[-2000:] for r in roles if not r.alive()]
    assert sum(felt) > 0  # the restart was felt, and got over
    assert c.events == EVENTS
    assert c.fulfilled_once == EVENTS
    assert c.fulfilled_twice_or_more == 0
