"""The benchmark's URLconf: the catalog page under every caching strategy, side by side.

Never mounted in production (the uncached page is a denial-of-service amplifier): the app benchmark sets
``ROOT_URLCONF`` to this module, and a lab measured by ``make bench`` turns it on with ``bench_urls`` in the
config file.
"""

import time

from catalog import views
from django.http import HttpResponse, HttpResponseBadRequest
from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.decorators.vary import vary_on_cookie

from shop.urls import handler500  # noqa: F401 - Django looks the error handlers up in the root URLconf

single_pass = views.SinglePassCatalogView.as_view()

SLOW_MAX_MS = 10_000


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


urlpatterns = [
    path("bench/uncached/", views.UncachedCatalogView.as_view(), name="bench-uncached"),
    path("bench/two-pass/", views.CatalogView.as_view(), name="bench-two-pass"),
    path("bench/per-user/", cache_page(300, key_prefix="bench-per-user")(vary_on_cookie(single_pass)),
         name="bench-per-user"),
    path("bench/whole-page/", cache_page(300, key_prefix="bench-whole-page")(single_pass), name="bench-whole-page"),
    path("bench/slow/", slow, name="bench-slow"),
    path("", include("shop.urls")),
]
