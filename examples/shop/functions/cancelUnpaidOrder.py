"""Cancel an order that is still unpaid: run 30 minutes after it was created.

The ``cancel-unpaid-orders`` trigger queues it on each ``orders`` ``on_create`` event whose
status is ``unpaid``, with ``delay: 30m``.  The event is 30 minutes old by then, so the
order is read again: only an order that is *still* unpaid is cancelled, in one conditional
UPDATE (a payment landing at the same moment wins or loses cleanly, never half).
"""

from datetime import UTC, datetime

import _shop
from sqlalchemy import update
from sqlmodel import Session


def main(event):
    after = (event.data or {}).get("after") or {}
    order_id = after.get("id")
    if order_id is None:
        raise ValueError("expected an orders event: event.data.after.id is missing")
    with Session(_shop.engine()) as s:
        cancelled = s.execute(
            update(_shop.Order)
            .where(_shop.Order.id == order_id, _shop.Order.status == "unpaid")
            .values(
                status="cancelled",
                cancelled_at=datetime.now(UTC),
                cancel_reason="unpaid 30 minutes after it was created",
            )
        ).rowcount
        s.commit()
        order = s.get(_shop.Order, order_id)
    if order is None:
        return {"order": order_id, "action": "not found"}
    action = "cancelled" if cancelled else f"left alone ({order.status})"
    print(f"order {order_id}: {action}")
    return {"order": order_id, "action": action, "status": order.status}
