"""Two-pass pages: shared part rendered once for everyone, user parts per request, data never becomes code."""

import threading
import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.template import base as template_base
from django.test import Client
from django.test.utils import override_settings

from catalog.models import Category, Product
from tests.conftest import CSRF_INPUT, all_queries
from django_stack.twopass import cache as fp
from django_stack.twopass.cache import FirstPassCache
from django_stack.twopass.render import first_pass



def test_users_share_one_first_pass_and_get_their_own_parts(logged_in):
    users = [logged_in(enforce_csrf_checks=True) for _ in range(4)]
    cache.clear()
    tokens = []
    for i, (client, user) in enumerate(users):
        with all_queries() as queries:
            response = client.get("/c/cat-001/")
        catalog = [sql for done in queries.values() for sql in done if "catalog_" in sql]
        assert response.status_code == 200
        assert response["X-First-Pass"] == ("miss" if i == 0 else "hit")
        # The shared part (catalog data and its rendering) is built once, for the first user only.
        assert bool(catalog) == (i == 0), catalog
        body = response.content
        assert f'<strong class="username">{user.username}</strong>'.encode() in body
        assert b'<span id="cart-count">0</span>' in body
        found = CSRF_INPUT.findall(body)
        assert len(found) >= 12, "a token in every form (logout, and add to cart on each product)"
        tokens.append(found[-1].decode())

    product = Product.objects.filter(category__slug="cat-001").first()
    # Each user's token is their own: someone else's is refused.
    (second, _) = users[1]
    assert second.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": tokens[0]}).status_code == 403

    # The token of the two-pass page is one the following POST is accepted with.
    for (client, _), token in zip(users, tokens, strict=True):
        response = client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token,
                                              "next": "/c/cat-001/"})
        assert response.status_code == 302 and response["Location"] == "/c/cat-001/"
        page = client.get("/c/cat-001/")
        assert b'<span id="cart-count">1</span>' in page.content
        assert page["X-First-Pass"] == "hit"


def test_a_warm_page_costs_a_logged_in_user_two_cache_round_trips(logged_in):
    """The catalog's first pass, its data versions and the session in one multi-get; the (cached) user in the
    second. (A category page adds a third: the category list, to find the category its URL names.)"""
    client, user = logged_in()
    assert client.get("/").status_code == 200  # warm: first pass, versions, session, user all cached
    memcached = cache._cache
    calls = []
    originals = {name: getattr(memcached, name) for name in ("get", "get_multi")}

    def counting(name):
        def call(*args, **kwargs):
            calls.append(name)
            return originals[name](*args, **kwargs)
        return call

    for name in originals:
        setattr(memcached, name, counting(name))
    try:
        response = client.get("/")
    finally:
        for name, original in originals.items():
            setattr(memcached, name, original)
    assert response.status_code == 200 and response["X-First-Pass"] == "hit"
    assert f'<strong class="username">{user.username}</strong>'.encode() in response.content
    assert calls == ["get_multi", "get"], calls


def test_a_post_without_the_token_is_refused(logged_in):
    client, _ = logged_in(enforce_csrf_checks=True)
    product = Product.objects.first()
    assert client.post("/cart/add/", {"product": product.pk}).status_code == 403


def test_anonymous_users_get_a_login_link_and_a_token():
    response = Client().get("/")
    assert b'href="/login/"' in response.content
    assert CSRF_INPUT.search(response.content)


def test_database_content_is_never_interpreted_by_the_second_pass(logged_in, replicated):
    category = Category.objects.get(slug="cat-002")
    evil = Product.objects.create(
        category=category, sku="EVIL-1", slug="evil", price=Decimal("1.00"),
        name="{{ user.get_username }} {% csrf_token %} {% slot 'greeting' %}",
        description="\x00" + "0" * 32 + ":greeting\x00 <script>alert(1)</script> {% debug %}",
    )
    try:
        replicated()
        client, user = logged_in()
        body = client.get(evil.get_absolute_url()).content.decode()
        assert "{{ user.get_username }} {% csrf_token %} {% slot &#x27;greeting&#x27; %}" in body
        assert "&lt;script&gt;" in body and "<script>" not in body
        assert "{% debug %}" in body
        # The username appears once (the greeting slot), never where the product name is.
        assert body.count(user.username) == 1
    finally:
        evil.delete()


def test_first_pass_output_is_data_split_at_nonce_markers():
    segments = first_pass("catalog/product_detail.html", {
        "categories": [], "title": "x",
        "product": {"id": 1, "name": "n", "slug": "n", "description": "d", "price": "1.00", "image_url": "",
                    "url": "/p/1/n/", "category_id": 1, "category_name": "c", "category_slug": "c"}})
    assert isinstance(segments, tuple)
    assert all(isinstance(s, bytes) for s in segments[0::2]) and all(isinstance(s, str) for s in segments[1::2])
    assert set(segments[1::2]) == {"greeting", "cart_count", "csrf"}
    assert not any(b"\x00" in s for s in segments[0::2])


def test_second_pass_templates_are_compiled_once(logged_in):
    client, _ = logged_in()
    client.get("/")  # warm: first pass cached, slot templates compiled
    compiled = []
    original = template_base.Template.compile_nodelist

    def counting(self):
        compiled.append(self.name)
        return original(self)

    template_base.Template.compile_nodelist = counting
    try:
        for _ in range(5):
            assert client.get("/").status_code == 200
    finally:
        template_base.Template.compile_nodelist = original
    assert compiled == [], f"templates parsed again: {compiled}"


def test_first_pass_is_invalidated_when_the_data_changes(replicated):
    client = Client()
    product = Product.objects.filter(category__slug="cat-003").order_by("id").first()
    assert client.get("/c/cat-003/")["X-First-Pass"] == "miss"
    assert client.get("/c/cat-003/")["X-First-Pass"] == "hit"
    old_name = product.name
    product.name = "Renamed for the invalidation test"
    product.save()
    try:
        replicated()
        response = client.get("/c/cat-003/")
        assert response["X-First-Pass"] == "miss"
        assert b"Renamed for the invalidation test" in response.content
        detail = client.get(product.get_absolute_url())
        assert b"Renamed for the invalidation test" in detail.content
    finally:
        product.name = old_name
        product.save()


def test_pages_render_with_every_cache_node_down(refused_port):
    dead = {"default": {"BACKEND": "django_stack.memcache_backend.backend.MemcachedCache",
                        "LOCATION": [f"127.0.0.1:{refused_port}"], "OPTIONS": {"socket_timeout": 0.2}}}
    with override_settings(CACHES=dead):
        client = Client()
        for _ in range(2):
            response = client.get("/c/cat-001/")
            assert response.status_code == 200 and response["X-First-Pass"] == "miss"
            assert b"Add to cart" in response.content


def run_concurrently(n, func):
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        results[i] = func()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_only_one_process_rebuilds_a_missing_entry(settings):
    builds = []

    def slow_build():
        builds.append(1)
        time.sleep(0.3)
        return ("page",)

    first = FirstPassCache(wait=2.0)
    results = run_concurrently(8, lambda: first.get("twopass:stampede-cold", (1,), slow_build))
    assert len(builds) == 1
    assert {how for _, how in results} == {fp.MISS, fp.WAITED}
    assert all(entry.segments == ("page",) for entry, _ in results)


def test_stale_entries_are_served_while_one_rebuilds():
    builds = []

    def slow_build():
        builds.append(1)
        time.sleep(0.3)
        return (f"page {len(builds)}",)

    short = FirstPassCache(ttl=0.2, wait=2.0)
    short.get("twopass:stampede-stale", (1,), slow_build)
    time.sleep(0.3)  # soft expiry passed: stale
    results = run_concurrently(8, lambda: short.get("twopass:stampede-stale", (1,), slow_build))
    assert len(builds) == 2  # the first fill, and exactly one rebuild
    hows = [how for _, how in results]
    assert hows.count(fp.MISS) == 1 and hows.count(fp.STALE) == 7
    # A version change (the data changed) is stale too: one rebuild, the others get the old copy meanwhile.
    results = run_concurrently(8, lambda: short.get("twopass:stampede-stale", (2,), slow_build))
    hows = [how for _, how in results]
    assert hows.count(fp.MISS) == 1 and len(builds) == 3


@pytest.mark.parametrize("path", ["/", "/c/cat-002/", "/?page=2"])
def test_pages_never_go_to_shared_caches(path):
    response = Client().get(path)
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
