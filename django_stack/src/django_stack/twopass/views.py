"""``TwoPassView``: a class-based view whose page is rendered in two passes with a shared, cached first pass."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers
from django.views import View

from django_stack.twopass import versions
from django_stack.twopass.cache import FirstPassCache
from django_stack.twopass.render import first_pass, second_pass

first_pass_cache = FirstPassCache()


class TwoPassView(View):
    """Subclasses set ``template_name`` and implement:

    - ``get_shared_context()``: everything the page shows that is the same for every user (no request data);
    - ``get_cache_key()``: identifies the page (path arguments, page number, …);
    - ``get_dependencies()``: names of the versions (:mod:`twopass.versions`) of the data the page shows.

    The response carries ``X-First-Pass: hit|stale|miss|waited``. First passes are cached per release
    (``settings.TWOPASS_RELEASE``): a page of another release is never served, not even as a stale copy.
    """

    template_name: str = ""
    cache = first_pass_cache

    def get_shared_context(self) -> dict:
        raise NotImplementedError

    def get_cache_key(self) -> str:
        raise NotImplementedError

    def get_dependencies(self) -> tuple[str, ...]:
        return ()

    def build_first_pass(self) -> tuple:
        return first_pass(self.template_name, self.get_shared_context())

    def get(self, request, *args, **kwargs):
        # The key's "2": the entry's format (texts as bytes); then the release: releases side by side in a rolling
        # deploy never read each other's pages, and a deploy or a rollback shows on every page at once.
        key = f"twopass2:{getattr(settings, 'TWOPASS_RELEASE', '')}:{self.get_cache_key()}"
        names = self.get_dependencies()
        session_key = self._session_cache_key(request)
        # The entry, the versions of what it shows and the user's session, in one round trip to the cache.
        keys = [key, *versions.keys(names)]
        found = self.cache.cache.get_many(keys + [session_key] if session_key else keys)
        if session_key and found.get(session_key) is not None:
            # What the session engine's load() would have fetched by itself, with one more round trip.
            request.session._session_cache = found[session_key]
        current = versions.get(*names, prefetched=found)
        entry, how = self.cache.get(key, current, self.build_first_pass, entry=found.get(key))
        response = HttpResponse(second_pass(entry.segments, request))
        response["X-First-Pass"] = how
        # The page holds a user's name and CSRF token: no shared cache (browser or proxy) may keep it.
        add_never_cache_headers(response)
        return response

    def _session_cache_key(self, request) -> str | None:
        """The cache key of the request's session when a cache-backed session engine keeps it in the same cache as
        the first passes and it is not loaded yet; otherwise None (the session loads itself, as usual)."""
        session = getattr(request, "session", None)
        if session is None or not session.session_key or hasattr(session, "_session_cache"):
            return None
        session_cache = getattr(session, "_cache", None)
        ours = self.cache.cache
        ours = caches[ours._alias] if hasattr(ours, "_alias") else ours  # django.core.cache.cache is a proxy
        if session_cache is None or session_cache is not ours or not hasattr(type(session), "cache_key"):
            return None
        return session.cache_key


class SinglePassMixin:
    """The same page rendered in one go for each request: what the benchmark compares two-pass against."""

    def get(self, request, *args, **kwargs):
        return HttpResponse(second_pass(self.build_first_pass(), request))
