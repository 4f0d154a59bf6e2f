"""The first-pass cache: versioned entries, served stale while one process rebuilds (no stampede).

An entry is stored under a key that does not change with the data; it carries the *versions* of the data it
was built from (:mod:`twopass.versions`) and a soft expiry. When the versions moved on or the soft expiry
passed, the entry is stale: one process wins a short lock (memcached ``add``) and rebuilds while the others keep
serving the stale copy; when the lock cannot be taken because its node is unreachable (nobody holds it), the
request builds the page itself rather than serve the stale copy. A missing entry has nothing stale to serve: the others wait briefly for the winner,
then build it themselves if it still is not there. With no cache at all (every memcached node down) each
request builds its own page, slower but correct.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache as default_cache

HIT, STALE, MISS, WAITED = "hit", "stale", "miss", "waited"
_UNKNOWN = object()


@dataclass(frozen=True)
class Entry:
    versions: tuple
    fresh_until: float
    segments: tuple


class FirstPassCache:
    def __init__(self, cache=None, *, ttl=300, stale_ttl=3600, lock_ttl=30, wait=1.0, wait_step=0.05):
        self.cache = cache or default_cache
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.lock_ttl = lock_ttl
        self.wait = wait
        self.wait_step = wait_step

    def _build_and_store(self, key, versions, build) -> Entry:
        entry = Entry(versions, time.time() + self.ttl, build())
        self.cache.set(key, entry, self.ttl + self.stale_ttl)
        return entry

    def get(self, key: str, versions: tuple, build, *, entry=_UNKNOWN) -> tuple[Entry, str]:
        """Return ``(entry, how)``; ``how`` is one of hit, stale, miss, waited. ``entry``: the cached entry when
        the caller already fetched it (None for a miss)."""
        if entry is _UNKNOWN:
            entry = self.cache.get(key)
        if entry is not None and entry.versions == versions and time.time() < entry.fresh_until:
            return entry, HIT
        lock = f"{key}:lock"
        if self.cache.add(lock, 1, self.lock_ttl):
            try:
                return self._build_and_store(key, versions, build), MISS
            finally:
                self.cache.delete(lock)
        if self.cache.get(lock) is None:
            # The add failed but no one holds the lock: the lock's node is unreachable (a node cut off, or one this
            # process found dead for dead_retry). No one is rebuilding: build it here, never serve the stale copy.
            return self._build_and_store(key, versions, build), MISS
        if entry is not None:
            return entry, STALE
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            time.sleep(self.wait_step)
            entry = self.cache.get(key)
            if entry is not None and entry.versions == versions:
                return entry, WAITED
        return self._build_and_store(key, versions, build), MISS
