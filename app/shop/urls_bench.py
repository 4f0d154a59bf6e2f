"""The benchmark's URLconf: the catalog page under every caching strategy, side by side.

Never mounted in production (the uncached page is a denial-of-service amplifier): the app benchmark sets
``ROOT_URLCONF`` to this module, and a lab measured by ``make bench`` turns it on with ``bench_urls`` in the
config file.
"""

import time

from catalog import views
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.decorators.vary import vary_on_cookie

from shop.urls import handler500  # noqa: F401 - Django looks the error handlers up in the root URLconf

SLOW_MAX_MS = 10_000
SIZE_MAX = 1000


class SizedMixin:
    """The page with ``size`` products (the URL's ``<int:size>``): ``make bench`` picks the size whose uncached
    render costs at least 50 ms on the machine it runs on. Each size is a page of its own in every cache."""

    def setup(self, request, *args, **kwargs):
        self.size = kwargs.get("size")
        if self.size is not None and not 1 <= self.size <= SIZE_MAX:
            raise Http404(f"size: between 1 and {SIZE_MAX}")
        super().setup(request, *args, **kwargs)

    def get_page_size(self):
        return super().get_page_size() if self.size is None else self.size

    def get_cache_key(self):
        key = super().get_cache_key()
        return key if self.size is None else f"{key}:size:{self.size}"


class UncachedView(SizedMixin, views.UncachedCatalogView):
    pass


class TwoPassView(SizedMixin, views.CatalogView):
    pass


class SinglePassView(SizedMixin, views.SinglePassCatalogView):
    pass


single_pass = SinglePassView.as_view()


def slow(request):
    """Hold a worker thread for ``?ms=`` milliseconds (at most 10 s): the benchmark's busy workers."""
    try:
        ms = int(request.GET.get("ms", "1000"))
    except ValueError:
        return HttpResponseBadRequest("ms: expected an integer\n", content_type="text/plain")
    if not 0 <= ms <= SLOW_MAX_MS:
        return HttpResponseBadRequest(f"ms: between 0 and {SLOW_MAX_MS}\n", content_type="text/plain")
    time.sleep(ms / 1000)
    response = HttpResponse(f"slept {ms} ms\n", content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response


per_user = cache_page(300, key_prefix="bench-per-user")(vary_on_cookie(single_pass))
whole_page = cache_page(300, key_prefix="bench-whole-page")(single_pass)

urlpatterns = [
    path("bench/uncached/", UncachedView.as_view(), name="bench-uncached"),
    path("bench/two-pass/", TwoPassView.as_view(), name="bench-two-pass"),
    path("bench/per-user/", per_user, name="bench-per-user"),
    path("bench/whole-page/", whole_page, name="bench-whole-page"),
    # The same pages with <size> products each.
    path("bench/<int:size>/uncached/", UncachedView.as_view(), name="bench-sized-uncached"),
    path("bench/<int:size>/two-pass/", TwoPassView.as_view(), name="bench-sized-two-pass"),
    path("bench/<int:size>/per-user/", per_user, name="bench-sized-per-user"),
    path("bench/<int:size>/whole-page/", whole_page, name="bench-sized-whole-page"),
    path("bench/slow/", slow, name="bench-slow"),
    path("", include("shop.urls")),
]
