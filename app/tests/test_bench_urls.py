"""The benchmark's pages: mounted only by ``bench_urls``; the slow page holds a worker for a bounded time."""

import time

from django.test import override_settings


def test_bench_pages_are_not_mounted_by_default(client):
    assert client.get("/bench/slow/?ms=0").status_code == 404
    assert client.get("/bench/uncached/").status_code == 404


@override_settings(ROOT_URLCONF="shop.urls_bench")
def test_slow_page_sleeps_as_long_as_asked(client):
    started = time.monotonic()
    response = client.get("/bench/slow/?ms=200")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.content == b"slept 200 ms\n"
    assert response["Cache-Control"] == "no-store"
    assert 0.2 <= elapsed < 2


@override_settings(ROOT_URLCONF="shop.urls_bench")
def test_slow_page_is_bounded(client):
    assert client.get("/bench/slow/?ms=10001").status_code == 400
    assert client.get("/bench/slow/?ms=-1").status_code == 400
    assert client.get("/bench/slow/?ms=soon").status_code == 400


def test_the_bench_urlconf_keeps_the_error_pages():
    # Django takes handler500 from the root URLconf: without it, a lab with the benchmark's pages answered a
    # write during a primary outage with a bare 500 instead of the 503 read-only page.
    import shop.urls
    import shop.urls_bench

    assert shop.urls_bench.handler500 == shop.urls.handler500 == "django_stack.errors.server_error"


@override_settings(ROOT_URLCONF="shop.urls_bench", SHOP_PAGE_SIZE=12)
def test_sized_pages_show_as_many_products_and_are_cached_apart(client):
    default = client.get("/bench/two-pass/")
    sized = client.get("/bench/30/two-pass/")
    assert default.content.count(b'class="card"') == 12
    assert sized.content.count(b'class="card"') == 30
    # Each size is a page of its own in the first-pass cache, and the unsized page is unchanged by it.
    assert client.get("/bench/30/two-pass/")["X-First-Pass"] == "hit"
    assert client.get("/bench/two-pass/").content.count(b'class="card"') == 12
    for strategy in ("uncached", "per-user", "whole-page"):
        assert client.get(f"/bench/30/{strategy}/").content.count(b'class="card"') == 30, strategy
    assert client.get("/bench/0/two-pass/").status_code == 404
    assert client.get("/bench/1001/uncached/").status_code == 404
