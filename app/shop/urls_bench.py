"""The benchmark's URLconf: the catalog page under every caching strategy, side by side.

Never mounted in production (the uncached page is a denial-of-service amplifier); the benchmark sets
``ROOT_URLCONF`` to this module.
"""

from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.decorators.vary import vary_on_cookie

from catalog import views

single_pass = views.SinglePassCatalogView.as_view()

urlpatterns = [
    path("bench/uncached/", views.UncachedCatalogView.as_view(), name="bench-uncached"),
    path("bench/two-pass/", views.CatalogView.as_view(), name="bench-two-pass"),
    path("bench/per-user/", cache_page(300, key_prefix="bench-per-user")(vary_on_cookie(single_pass)),
         name="bench-per-user"),
    path("bench/whole-page/", cache_page(300, key_prefix="bench-whole-page")(single_pass), name="bench-whole-page"),
    path("", include("shop.urls")),
]
