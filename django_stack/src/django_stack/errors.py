"""Error pages. A database that cannot be reached gives a clear 503, never a traceback.

A project sets ``handler500 = "django_stack.errors.server_error"`` in its root URLconf. ``handler500`` runs for any exception a view or middleware did not handle (the session middleware saving a
cart, say). When that exception is a database connection error, the answer is a 503: "read-only for now" when
the primary is the one that is down (reads still work from the replicas), "temporarily unavailable" otherwise;
HTML or JSON as the client asked, with Retry-After. Writes run in transactions, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

import sys

from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import select_template
from django.views.defaults import server_error as django_server_error

from django_stack.dbfailover import registry
from django_stack.dbfailover.backend.base import is_connection_error, is_read_only_error
from django_stack.dbfailover.databases import PRIMARY_ALIAS

RETRY_AFTER = "30"
# The project's own page first (errors/503.html), else the stack's plain one.
TEMPLATES = ["errors/503.html", "django_stack/503.html"]


def _primary_down() -> bool:
    settings_dict = connections.settings[PRIMARY_ALIAS]
    return registry.is_down((settings_dict["HOST"], int(settings_dict.get("PORT") or 3306)))


def unavailable(request, *, read_only: bool):
    if read_only:
        title = "Read-only for now"
        message = ("The site is read-only for a moment: you can browse, but changes (cart, orders, log in) cannot "
                   "be saved right now. Nothing was half-saved. Please try again in a minute.")
    else:
        title = "Temporarily unavailable"
        message = "The site cannot reach its database right now. Please try again in a minute."
    accept = request.headers.get("Accept", "")
    if "application/json" in accept and "text/html" not in accept:
        response = JsonResponse({"error": "read_only" if read_only else "unavailable", "message": message},
                                status=503)
    else:
        response = HttpResponse(select_template(TEMPLATES).render({"title": title, "message": message}),
                                status=503)
    response["Retry-After"] = RETRY_AFTER
    response["Cache-Control"] = "no-store"
    return response


def server_error(request, template_name="500.html"):
    exc = sys.exc_info()[1]
    if exc is not None and is_read_only_error(exc):
        return unavailable(request, read_only=True)
    if exc is not None and is_connection_error(exc):
        return unavailable(request, read_only=_primary_down())
    return django_server_error(request, template_name=template_name)
