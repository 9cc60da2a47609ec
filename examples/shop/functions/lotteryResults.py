"""The recorded draws, newest first: firehook invoke lotteryResults"""

import _shop
from sqlmodel import Session, col, select


def main(event):
    limit = int((event.data or {}).get("limit", 10))
    with Session(_shop.engine()) as s:
        draws = s.exec(
            select(_shop.LotteryDraw).order_by(col(_shop.LotteryDraw.id).desc()).limit(limit)
        ).all()
        return [
            {
                "draw_id": d.id,
                "scheduled_time": d.scheduled_time,
                "prize": d.prize,
                "entries": len(d.entry_ids),
                "winners": [w["user"] for w in d.winners],
                "seed": d.seed,
            }
            for d in draws
        ]
