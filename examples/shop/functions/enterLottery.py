"""Enter tonight's draw: firehook invoke enterLottery --data '{"user": "alice"}'"""

import _shop
from sqlmodel import Session


def main(event):
    user = (event.data or {}).get("user")
    if not user:
        raise ValueError("give a user: {\"user\": \"alice\"}")
    with Session(_shop.engine()) as s:
        entry = _shop.LotteryEntry(user=str(user))
        s.add(entry)
        s.commit()
        s.refresh(entry)
        return {"entry_id": entry.id, "user": entry.user}
