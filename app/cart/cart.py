"""A cart is ``{product id: quantity}`` in the session."""

from __future__ import annotations

from decimal import Decimal

from catalog import datacache

SESSION_KEY = "cart"
MAX_QUANTITY = 99


def get(session) -> dict[int, int]:
    return {int(k): v for k, v in session.get(SESSION_KEY, {}).items()}


def count(session) -> int:
    return sum(session.get(SESSION_KEY, {}).values())


def _store(session, items: dict[int, int]) -> None:
    session[SESSION_KEY] = {str(k): v for k, v in items.items() if v > 0}


def add(session, product_id: int, quantity: int = 1) -> None:
    items = get(session)
    items[product_id] = min(MAX_QUANTITY, items.get(product_id, 0) + quantity)
    _store(session, items)


def remove(session, product_id: int) -> None:
    items = get(session)
    items.pop(product_id, None)
    _store(session, items)


def clear(session) -> None:
    session.pop(SESSION_KEY, None)


def lines(session) -> tuple[list[dict], Decimal]:
    """Cart lines with the products' cached view data, and the total."""
    items = get(session)
    lines, total = [], Decimal("0")
    for product in datacache.products(items.keys()):
        quantity = items[product["id"]]
        subtotal = Decimal(product["price"]) * quantity
        total += subtotal
        lines.append({"product": product, "quantity": quantity, "subtotal": subtotal})
    return lines, total
