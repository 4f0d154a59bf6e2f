"""The database router: writes and migrations to the primary, reads spread over its replicas in turn.

Reads go to the primary when the request's user wrote within the last few seconds (the middleware's signed
cookie), when the primary has a transaction open (a read inside a transaction must see that transaction), and
when the object they follow was itself read from the primary.
"""

from __future__ import annotations

import itertools
import threading

from django.db import connections

from django_stack.dbfailover.databases import PRIMARY_ALIAS
from django_stack.replicas.context import current


def topology() -> tuple[str, tuple[str, ...]]:
    """(primary alias, replica aliases) from the configured databases."""
    databases = connections.settings
    replicas = tuple(sorted(alias for alias, conf in databases.items() if conf.get("REPLICA_OF") == PRIMARY_ALIAS))
    return PRIMARY_ALIAS, replicas


_turn = itertools.count()
_turn_lock = threading.Lock()


def next_replica() -> str:
    """The next replica alias in turn (round robin per process), or the primary when there is none."""
    primary, replicas = topology()
    if not replicas:
        return primary
    with _turn_lock:
        n = next(_turn)
    return replicas[n % len(replicas)]


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        primary, replicas = topology()
        if not replicas:
            return primary
        if connections[primary].in_atomic_block:
            return primary
        instance = hints.get("instance")
        if instance is not None and instance._state.db == primary:
            return primary
        state = current.get()
        if state is not None:
            if state.pinned:
                return primary
            if state.replica is None:
                state.replica = next_replica()
            return state.replica
        return next_replica()

    def db_for_write(self, model, **hints):
        state = current.get()
        if state is not None:
            state.wrote = True
        return PRIMARY_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Every alias holds the same data (replicas are copies of the primary), so any two objects may relate.
        primary, replicas = topology()
        pool = {primary, *replicas}
        if obj1._state.db in pool and obj2._state.db in pool:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY_ALIAS
