"""A cart is ``{product id: quantity}`` in the session, with a token that names this content of the cart.

The token changes whenever the cart does; checkout records it with the order (``orders.Checkout``), so the same
cart is ordered once: a double click, two tabs, or a retry after the order was saved but the session was not.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from decimal import Decimal

from catalog import datacache

SESSION_KEY = "cart"
TOKEN_KEY = "cart_token"
MAX_QUANTITY = 99


def get(session) -> dict[int, int]:
    return {int(k): v for k, v in session.get(SESSION_KEY, {}).items()}


def count(session) -> int:
    return sum(session.get(SESSION_KEY, {}).values())


def _store(session, items: dict[int, int]) -> None:
    session[SESSION_KEY] = {str(k): v for k, v in items.items() if v > 0}
    session[TOKEN_KEY] = secrets.token_hex(16)


def token(session) -> str:
    """The token of the cart as it is now. A cart stored before tokens existed gets one derived from the session
    and the cart's content, the same in concurrent requests."""
    if TOKEN_KEY not in session:
        content = json.dumps(session.get(SESSION_KEY, {}), sort_keys=True)
        session[TOKEN_KEY] = hashlib.sha256(f"{session.session_key}:{content}".encode()).hexdigest()[:32]
    return session[TOKEN_KEY]


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
    session.pop(TOKEN_KEY, None)


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
