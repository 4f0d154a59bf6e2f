"""Which database hosts failed recently, shared by every connection of this process.

A host that refused or timed out is "down" for a cool-down: later connections skip it at once instead of each
paying the connect timeout again, and it is tried again when the cool-down ends.
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_down_until: dict[tuple[str, int], float] = {}


def mark_down(address: tuple[str, int], cooldown: float) -> None:
    with _lock:
        _down_until[address] = time.monotonic() + cooldown


def mark_up(address: tuple[str, int]) -> None:
    with _lock:
        _down_until.pop(address, None)


def is_down(address: tuple[str, int]) -> bool:
    with _lock:
        until = _down_until.get(address)
        if until is None:
            return False
        if time.monotonic() >= until:
            del _down_until[address]
            return False
        return True


def down_for(address: tuple[str, int]) -> float:
    """Seconds left in the address's cool-down (0 when it is not down)."""
    with _lock:
        until = _down_until.get(address)
    return max(0.0, until - time.monotonic()) if until else 0.0


def clear() -> None:
    """Forget every failure (tests, and ``manage.py`` commands that must see the real state)."""
    with _lock:
        _down_until.clear()
