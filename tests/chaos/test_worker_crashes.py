"""Crash test (1): workers SIGKILLed and restarted while 3,000 events flow through."""

from __future__ import annotations

import pytest

from tests.chaos.rig import Rig, every

EVENTS = 3000


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_event_is_fulfilled_exactly_once_while_a_worker_is_killed_every_3s(
    rig: Rig,
) -> None:
    rig.start("consumer")
    steady = rig.start("worker")
    victim = [rig.start("worker")]

    def kill_and_restart() -> None:
        rig.crash(victim[0])
        victim[0] = rig.start("worker")

    publisher = rig.publish_in_background(EVENTS, seconds=20)
    kills = every(3.0, publisher, kill_and_restart)
    kill_and_restart()  # once more, in the drain
    c = rig.wait_done(EVENTS, timeout=120)
    print(
        f"{EVENTS} events published, worker SIGKILLed {kills + 1} times: {c.events} runs "
        f"recorded, {c.fulfilled_once} fulfilled once, {c.fulfilled_twice_or_more} more than "
        f"once, {c.unfinished} unfinished; {c.attempts} attempts, {c.worker_lost} taken over"
    )
    assert steady.alive()
    assert c.events == EVENTS
    assert c.fulfilled_once == EVENTS
    assert c.fulfilled_twice_or_more == 0
    assert c.worker_lost > 0  # the kills did hit runs in flight
