"""Per-request routing state, kept in a context variable so threads and async tasks never share it."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class Routing:
    pinned: bool = False  # this user wrote recently: read from the primary
    replica: str | None = None  # the replica alias this request reads from
    wrote: bool = False  # something in this request asked for the primary to write


current: contextvars.ContextVar[Routing | None] = contextvars.ContextVar("stack_routing", default=None)
