"""Crash test (3): every RabbitMQ connection cut twice in the middle of a burst."""

from __future__ import annotations

import subprocess

import pytest

from tests.chaos.rig import Rig

EVENTS = 3000


def cut_all_connections() -> None:
    subprocess.run(
        ["rabbitmqctl", "close_all_connections", "firehook chaos test: cut"],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_event_is_fulfilled_exactly_once_when_broker_connections_are_cut(
    rig: Rig,
) -> None:
    roles = [rig.start("consumer"), rig.start("worker"), rig.start("worker")]
    cuts = 0

    def at(i: int) -> None:
        nonlocal cuts
        if i in (EVENTS // 3, 2 * EVENTS // 3):
            cut_all_connections()  # the publisher's own connection too: it reconnects
            cuts += 1

    rig.publish(EVENTS, seconds=10, at=at)
    c = rig.wait_done(EVENTS, timeout=120)
    print(
        f"{EVENTS} events published, all connections cut {cuts} times: {c.events} runs "
        f"recorded, {c.fulfilled_once} fulfilled once, {c.fulfilled_twice_or_more} more than "
        f"once, {c.unfinished} unfinished"
    )
    assert all(r.alive() for r in roles)
    assert c.events == EVENTS
    assert c.fulfilled_once == EVENTS
    assert c.fulfilled_twice_or_more == 0
