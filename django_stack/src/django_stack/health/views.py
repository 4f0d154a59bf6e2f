"""``/healthz``: can this node serve pages?

Checks the cache (a set and a get of this process's own key) and every database alias (``SELECT 1`` on its
connection; failover applies, and a host in its cool-down is skipped at once, so a dead database costs no
connect timeout here). Each alias reports the state of *its own* server: a replica whose reads failed over to
another server is ``down`` (``failover`` names the server that answers for it instead). Answers 200 when the node can serve reads, that is when at least one database alias
answers, with ``"status": "ok"`` or ``"degraded"`` (the cache or the primary is down: pages are slower, or writes
get the read-only page, but taking every web node out of the pool would be worse). Answers 503 when no
database answers. ``release`` names the release directory the answering process loaded. Never cached; uWSGI keeps it out of the
request log.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from django_stack.replicas.router import topology

_KEY = f"healthz:{socket.gethostname()}:{os.getpid()}"


def _release_directory() -> str:
    """The name of the directory this process loaded the project from (the one holding manage.py), resolved
    when the module is imported: a deploy switches the ``current`` link under running processes, so only what
    they loaded says which release they serve (the web role waits on it after a switch)."""
    module = sys.modules.get(settings.SETTINGS_MODULE)
    path = Path(getattr(module, "__file__", None) or os.getcwd()).resolve()
    for parent in path.parents:
        if (parent / "manage.py").exists():
            return parent.name
    return path.parent.name


RELEASE = _release_directory()


def _database_state(alias: str) -> tuple[bool, str | None]:
    """(whether the alias answers at all, the address answering for it when that is not its own server)."""
    connection = connections[alias]
    try:
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any failure means "not usable", reported in the body
        connection.close()
        return False, None
    own = connection.settings_dict.get("FAILOVER") or [connection.settings_dict]
    own_address = (own[0]["HOST"], int(own[0].get("PORT") or 3306))
    address = getattr(connection, "connected_address", None)
    if address is not None and address != own_address:
        return True, f"{address[0]}:{address[1]}"
    return True, None


@never_cache
def healthz(request):
    try:
        cache_ok = bool(cache.set(_KEY, 1, 30) is not False and cache.get(_KEY) == 1)
    except Exception:  # noqa: BLE001
        cache_ok = False
    primary, replicas = topology()
    states = {alias: _database_state(alias) for alias in (primary, *replicas)}
    readable = any(answers for answers, _ in states.values())
    own_ok = {alias: answers and served_by is None for alias, (answers, served_by) in states.items()}
    status = "ok" if cache_ok and all(own_ok.values()) else ("degraded" if readable else "down")
    body = {
        "status": status,
        "release": RELEASE,
        "cache": "ok" if cache_ok else "down",
        "databases": {alias: "ok" if ok else "down" for alias, ok in own_ok.items()},
    }
    failover = {alias: served_by for alias, (answers, served_by) in states.items() if served_by}
    if failover:
        body["failover"] = failover
    return JsonResponse(body, status=200 if readable else 503)
