"""Pay an order: firehook invoke payOrder --data '{"id": 1}' (only an unpaid one)."""

from datetime import UTC, datetime

import _shop
from sqlalchemy import update
from sqlmodel import Session


def main(event):
    order_id = (event.data or {}).get("id")
    with Session(_shop.engine()) as s:
        paid = s.execute(
            update(_shop.Order)
            .where(_shop.Order.id == order_id, _shop.Order.status == "unpaid")
            .values(status="paid", paid_at=datetime.now(UTC))
        ).rowcount
        s.commit()
        order = s.get(_shop.Order, order_id)
    if order is None:
        raise ValueError(f"no order {order_id}")
    return {"order": order_id, "paid": bool(paid), "status": order.status}
