"""Version stamps for cached data: bump one and every cached page built from it is stale.

A version is a nanosecond timestamp kept in the cache. A missing version (never set, evicted, or its memcached
node restarted) is created fresh, so it can never come back equal to a version an old entry was built with.
"""

from __future__ import annotations

import time

from django.core.cache import cache

PREFIX = "ver:"
TIMEOUT = 30 * 24 * 3600


def keys(names) -> list[str]:
    return [PREFIX + n for n in names]


def get(*names: str, prefetched: dict | None = None) -> tuple:
    """The versions of ``names``. ``prefetched``: the result of a ``get_many`` that already asked for
    ``keys(names)`` (with other keys), so that a page costs one cache round trip, not two."""
    keys = [PREFIX + n for n in names]
    found = {k: prefetched[k] for k in keys if k in prefetched} if prefetched is not None else cache.get_many(keys)
    missing = {k: time.time_ns() for k in keys if k not in found}
    if missing:
        # add(), not set(): when two processes race to create a version, the first one wins for both.
        for k, v in missing.items():
            if not cache.add(k, v, TIMEOUT):
                found[k] = cache.get(k, v)
            else:
                found[k] = v
    return tuple(found[k] for k in keys)


def bump(*names: str) -> None:
    now = time.time_ns()
    cache.set_many({PREFIX + n: now for n in names}, TIMEOUT)
