"""Draw the lottery: run by the ``nightly-lottery`` schedule (20:00 Asia/Shanghai).

Takes every entry made before the scheduled time and not yet drawn, picks ``winners`` of
them (params, default 1) with a seed derived from the schedule name and the scheduled time,
and records the draw (seed, entries in order, winners).  Fair: each entry has the same
chance.  Reproducible: ``_shop.pick(seed, entry_ids, n)`` gives the same winners again.
Idempotent: a retry or replay of the same tick returns the recorded draw, never redraws.
"""

from datetime import UTC, datetime

import _shop
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select


def _result(draw):
    return {
        "draw_id": draw.id,
        "schedule": draw.schedule,
        "scheduled_time": draw.scheduled_time,
        "prize": draw.prize,
        "seed": draw.seed,
        "entries": len(draw.entry_ids),
        "winners": draw.winners,
    }


def main(event):
    data = event.data or {}
    if data.get("subject") != "timer":
        raise ValueError("drawLottery runs from its schedule (event.data.subject == 'timer')")
    schedule, scheduled = data["name"], data["scheduled_time"]
    cutoff = datetime.fromisoformat(scheduled).astimezone(UTC)
    eng = _shop.engine()
    with Session(eng) as s:
        done = s.exec(
            select(_shop.LotteryDraw).where(
                _shop.LotteryDraw.schedule == schedule,
                _shop.LotteryDraw.scheduled_time == scheduled,
            )
        ).first()
        if done is not None:
            return _result(done)
        entries = s.exec(
            select(_shop.LotteryEntry)
            .where(col(_shop.LotteryEntry.draw_id).is_(None))
            .where(_shop.LotteryEntry.entered_at <= cutoff)
            .order_by(col(_shop.LotteryEntry.id))
        ).all()
        users = {e.id: e.user for e in entries}
        ids = [e.id for e in entries]
        seed = _shop.draw_seed(schedule, scheduled)
        winners = _shop.pick(seed, ids, int(data.get("winners", 1)))
        draw = _shop.LotteryDraw(
            schedule=schedule,
            scheduled_time=scheduled,
            prize=data.get("prize"),
            seed=seed,
            entry_ids=ids,
            winners=[{"entry_id": w, "user": users[w]} for w in winners],
            job_id=event.job_id,
        )
        s.add(draw)
        try:
            s.flush()
            if ids:
                s.execute(
                    update(_shop.LotteryEntry)
                    .where(col(_shop.LotteryEntry.id).in_(ids))
                    .values(draw_id=draw.id)
                )
            s.commit()
        except IntegrityError:  # the same tick drawn at the same moment elsewhere
            s.rollback()
            return main(event)
        s.refresh(draw)
        print(f"draw {draw.id}: {len(ids)} entries, winners {[w['user'] for w in draw.winners]}")
        return _result(draw)
