"""Read-your-writes: after a request writes, that user's reads go to the primary for a few seconds.

The pin is a signed cookie carrying nothing but its own expiry (``STACK_READ_YOUR_WRITES_SECONDS``), so any web
node honours it and it cannot be forged to pin someone else or forever. Each request also picks one replica for
all its reads, in turn, so a page reads one consistent copy.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from django_stack.replicas.context import Routing, current

# The pin cookie's name (``STACK_READ_YOUR_WRITES_COOKIE``) and signing salt: kept the same across releases, so a
# pin set by a node on the previous release holds on one already on the next during a rolling deploy.
COOKIE = "stack_pin"
SALT = "replicas.pin"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ReadYourWritesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        seconds = settings.STACK_READ_YOUR_WRITES_SECONDS
        cookie = getattr(settings, "STACK_READ_YOUR_WRITES_COOKIE", COOKIE)
        pinned = False
        if seconds and cookie in request.COOKIES:
            try:
                request.get_signed_cookie(cookie, salt=SALT, max_age=seconds)
                pinned = True
            except (KeyError, signing.BadSignature):
                pinned = False
        state = Routing(pinned=pinned)
        token = current.set(state)
        try:
            response = self.get_response(request)
        finally:
            current.reset(token)
        wrote = state.wrote or (request.method in UNSAFE_METHODS and response.status_code < 400)
        if seconds and wrote:
            response.set_signed_cookie(
                cookie, "1", salt=SALT, max_age=seconds, httponly=True,
                secure=settings.SESSION_COOKIE_SECURE, samesite="Lax",
            )
        return response
