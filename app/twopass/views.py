"""``TwoPassView``: a class-based view whose page is rendered in two passes with a shared, cached first pass."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers
from django.views import View

from twopass import versions
from twopass.cache import FirstPassCache
from twopass.render import first_pass, second_pass

first_pass_cache = FirstPassCache()


class TwoPassView(View):
    """Subclasses set ``template_name`` and implement:

    - ``get_shared_context()``: everything the page shows that is the same for every user (no request data);
    - ``get_cache_key()``: identifies the page (path arguments, page number, …);
    - ``get_dependencies()``: names of the versions (:mod:`twopass.versions`) of the data the page shows.

    The response carries ``X-First-Pass: hit|stale|miss|waited``.
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
        key = "twopass:" + self.get_cache_key()
        names = self.get_dependencies()
        # The entry and the versions of what it shows, in one round trip to the cache.
        found = self.cache.cache.get_many([key, *versions.keys(names)])
        current = versions.get(*names, prefetched=found)
        entry, how = self.cache.get(key, current, self.build_first_pass, entry=found.get(key))
        response = HttpResponse(second_pass(entry.segments, request))
        response["X-First-Pass"] = how
        # The page holds a user's name and CSRF token: no shared cache (browser or proxy) may keep it.
        add_never_cache_headers(response)
        return response


class SinglePassMixin:
    """The same page rendered in one go for each request: what the benchmark compares two-pass against."""

    def get(self, request, *args, **kwargs):
        return HttpResponse(second_pass(self.build_first_pass(), request))
