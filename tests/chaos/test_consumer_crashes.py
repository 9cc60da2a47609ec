"""Crash test (2): the consumer SIGKILLed and restarted while 3,000 events flow through."""

from __future__ import annotations

import pytest

from tests.chaos.rig import Rig, every

EVENTS = 3000


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_event_is_fulfilled_exactly_once_while_the_consumer_is_killed_every_3s(
    rig: Rig,
) -> None:
    consumer = [rig.start("consumer")]
    workers = [rig.start("worker"), rig.start("worker")]

    def kill_and_restart() -> None:
        rig.crash(consumer[0])
        consumer[0] = rig.start("consumer")

    publisher = rig.publish_in_background(EVENTS, seconds=20)
    kills = every(3.0, publisher, kill_and_restart)
    c = rig.wait_done(EVENTS, timeout=120)
    print(
        f"{EVENTS} events published, consumer SIGKILLed {kills} times: {c.events} runs "
        f"recorded, {c.fulfilled_once} fulfilled once, {c.fulfilled_twice_or_more} more than "
        f"once, {c.unfinished} unfinished; {c.attempts} attempts"
    )
    assert all(w.alive() for w in workers)
    assert kills >= 4
    assert c.events == EVENTS  # an event acked was recorded; one recorded twice is one run
    assert c.fulfilled_once == EVENTS
    assert c.fulfilled_twice_or_more == 0
