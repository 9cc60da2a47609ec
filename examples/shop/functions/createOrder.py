"""Create an order: firehook invoke createOrder --data '{"customer": "bob", "amount_cents": 1999}'

Returns the order and the data-change event for it (``{table, event, before, after}``), the
payload a producer publishes so that the ``cancel-unpaid-orders`` trigger sees it.
"""

import _shop
from sqlmodel import Session


def main(event):
    data = event.data or {}
    with Session(_shop.engine()) as s:
        order = _shop.Order(
            customer=str(data.get("customer", "anonymous")),
            amount_cents=int(data.get("amount_cents", 0)),
            status="paid" if data.get("paid") else "unpaid",
        )
        s.add(order)
        s.commit()
        s.refresh(order)
        row = order.model_dump(mode="json")
    return {"table": "orders", "event": "on_create", "before": None, "after": row}
