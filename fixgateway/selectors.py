from __future__ import annotations

from orders.models import Order


def order_for_cancel(*, user, order_id: str | None, client_order_id: str | None) -> Order | None:
    """The user's order named by OrderID (37) or OrigClOrdID (41); never another user's."""
    orders = Order.objects.filter(user=user)
    if order_id and order_id.isdigit():
        return orders.filter(pk=int(order_id)).first()
    if client_order_id:
        return orders.filter(client_order_id=client_order_id).first()
    return None
