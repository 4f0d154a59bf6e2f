"""No stale page after the routine events of a production week: a deploy or a rollback, a memcached node cut off
for a few seconds, replicas that lag behind the primary."""

import time
from contextlib import contextmanager

import memcache
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client
from django.test.utils import override_settings

from catalog import datacache
from catalog.models import Product
from django_stack.memcache_backend import backend as memcache_backend
from django_stack.release import release_id
from tests.conftest import in_another_thread


# --- a deploy, a rollback ---------------------------------------------------------------------------------------

def test_first_passes_are_keyed_by_release():
    client = Client()
    with override_settings(TWOPASS_RELEASE="release-a"):
        client.get("/c/cat-001/")
        assert client.get("/c/cat-001/")["X-First-Pass"] == "hit"
    with override_settings(TWOPASS_RELEASE="release-b"):
        # The new release never serves the old release's page, not even as a stale copy.
        assert client.get("/c/cat-001/")["X-First-Pass"] == "miss"
        assert client.get("/c/cat-001/")["X-First-Pass"] == "hit"
    with override_settings(TWOPASS_RELEASE="release-a"):
        # A rollback finds its own release's pages (still right: the data versions are checked as always).
        assert client.get("/c/cat-001/")["X-First-Pass"] == "hit"


def test_the_release_id_changes_with_a_template_and_not_with_a_collected_static_file(tmp_path):
    source = tmp_path / "release"
    (source / "catalog" / "templates").mkdir(parents=True)
    (source / "static").mkdir()
    (source / "catalog" / "views.py").write_text("x = 1\n")
    template = source / "catalog" / "templates" / "page.html"
    template.write_text("<p>old</p>")
    first = release_id(source, exclude=(source / "static",))
    (source / "static" / "app.css").write_text("body{}")
    (source / "catalog" / "__pycache__").mkdir()
    (source / "catalog" / "__pycache__" / "views.cpython-313.pyc").write_bytes(b"\0")
    assert release_id(source, exclude=(source / "static",)) == first
    template.write_text("<p>new</p>")
    assert release_id(source, exclude=(source / "static",)) != first


# --- a memcached node cut off for a few seconds --------------------------------------------------------------------

def _home_port(backend, key) -> int:
    made = backend.make_and_validate_key(key)
    client = backend._cache
    encoded = made.encode()  # Django's keys are ASCII, sent as they are
    return client.buckets[memcache.serverHashFunction(encoded) % len(client.buckets)].port


def test_a_change_saved_while_a_cache_node_is_cut_off_is_never_served_stale(cache_server, second_memcached):
    proxy = second_memcached.proxy
    cluster = {"default": {"BACKEND": "django_stack.memcache_backend.backend.MemcachedCache", "KEY_PREFIX": "blip",
                           "LOCATION": [f"127.0.0.1:{cache_server.port}", f"127.0.0.1:{proxy.port}"],
                           "OPTIONS": {"socket_timeout": 0.3, "dead_retry": 30}}}
    with override_settings(CACHES=cluster):
        backend = caches["default"]
        product = next(p for p in Product.objects.using("default").order_by("id")
                       if _home_port(backend, datacache.product_key(p.pk)) == proxy.port)
        url = product.get_absolute_url()
        assert str(product.price) in Client().get(url).content.decode()
        direct = memcache.Client([f"127.0.0.1:{second_memcached.port}"])
        made = backend.make_and_validate_key(datacache.product_key(product.pk))
        assert direct.get(made)["price"] == str(product.price), "the entry is not on the node that is cut off"

        proxy.cut()
        try:
            product.price += 7
            product.save()  # its write-through cannot reach the node (socket_timeout), nothing is queued there
        finally:
            proxy.heal()
        new_price = str(product.price)
        # Within a second of the node answering again (the replayer tries every 0.1 s).
        time.sleep(1.0)
        # The node answers again. Another process (its own client never saw the cut, so it reads that node at
        # once) gets the new price, and the node no longer holds the old entry.
        entry = direct.get(made)
        assert entry is None or entry["price"] == new_price, entry
        page = in_another_thread(lambda: Client().get(url).content.decode())
        assert new_price in page


def test_a_dead_node_is_not_replaced_by_another_one_for_its_keys(cache_server, refused_port):
    """A key lives on its home node only: while that node is dead its keys are misses, so no second copy of a
    key is ever written elsewhere (the copy that would go stale when the home answers again)."""
    cluster = {"default": {"BACKEND": "django_stack.memcache_backend.backend.MemcachedCache", "KEY_PREFIX": "home",
                           "LOCATION": [f"127.0.0.1:{cache_server.port}", f"127.0.0.1:{refused_port}"],
                           "OPTIONS": {"socket_timeout": 0.2}}}
    with override_settings(CACHES=cluster):
        backend = caches["default"]
        keys = [f"k{i}" for i in range(40)]
        on_dead = [k for k in keys if _home_port(backend, k) == refused_port]
        assert on_dead
        backend.set_many({k: 1 for k in keys})
        live = memcache.Client([f"127.0.0.1:{cache_server.port}"])
        assert all(live.get(backend.make_and_validate_key(k)) is None for k in on_dead)
        assert memcache_backend.replayer.pending(("127.0.0.1", refused_port)) >= len(on_dead)
        memcache_backend.replayer.clear()  # that node never comes back


# --- replicas that lag ----------------------------------------------------------------------------------------------

@pytest.fixture
def lagging_replica(replica_server, replicated):
    """The replica's SQL thread stopped: it receives the primary's changes and applies none (real lag)."""

    @contextmanager
    def lag():
        replicated()
        replica_server.sql("STOP SLAVE SQL_THREAD")
        try:
            yield replica_server
        finally:
            replica_server.sql("START SLAVE SQL_THREAD")
            replicated()

    return lag


def test_a_price_change_is_shown_while_the_replicas_lag(lagging_replica):
    with lagging_replica():
        _price_change()


def _price_change():
    product = Product.objects.using("default").order_by("id")[5]
    category_page = f"/c/{product.category.slug}/"
    anonymous = Client()
    anonymous.get(product.get_absolute_url())
    anonymous.get(category_page)
    product.price += 3
    product.save()
    new_price = str(product.price)
    # No read-your-writes pin: these readers did not write, their reads go to the (lagging) replica.
    assert new_price in Client().get(product.get_absolute_url()).content.decode()
    assert new_price in Client().get(category_page).content.decode()
    assert datacache.product(product.pk)["price"] == new_price


def test_a_new_product_is_listed_while_the_replicas_lag(lagging_replica):
    with lagging_replica():
        _new_product()


def _new_product():
    category = Product.objects.using("default").order_by("id").first().category
    Client().get(f"/c/{category.slug}/")
    product = Product.objects.create(category=category, sku=f"LAG-{time.time_ns()}", name="Arrived during lag",
                                     slug=f"lag-{time.time_ns()}", description="", price="9.99")
    try:
        assert product.pk in datacache.category_ids(category.pk)
        assert product.pk in datacache.all_ids()
    finally:
        product.delete()
    assert product.pk not in datacache.all_ids()


def test_a_renamed_user_is_shown_while_the_replicas_lag(logged_in, lagging_replica):
    client, user = logged_in()
    client.get("/")
    with lagging_replica():
        user = get_user_model().objects.using("default").get(pk=user.pk)
        user.username = user.username + "-lag"
        user.save()
        # Past the read-your-writes pin of the login: this request reads the lagging replica.
        with override_settings(STACK_READ_YOUR_WRITES_SECONDS=0):
            assert user.username.encode() in client.get("/").content


def test_a_stale_first_pass_is_rebuilt_when_its_lock_node_is_unreachable(cache_server, refused_port):
    """The rebuild lock of a page lives on a node this process cannot reach (cut off, or found dead for
    dead_retry): nobody is rebuilding, so the request builds the page itself instead of serving the stale copy
    (before: every request served the stale page until the node came back)."""
    from django_stack.memcache_backend.backend import MemcachedCache
    from django_stack.twopass.cache import MISS, FirstPassCache

    cluster = MemcachedCache([f"127.0.0.1:{cache_server.port}", f"127.0.0.1:{refused_port}"],
                             {"KEY_PREFIX": "lock", "OPTIONS": {"socket_timeout": 0.2}})
    key = next(f"page:{i}" for i in range(200)
               if _home_port(cluster, f"page:{i}") == cache_server.port
               and _home_port(cluster, f"page:{i}:lock") == refused_port)
    pages = FirstPassCache(cluster, ttl=300)
    pages.get(key, ("v1",), lambda: ("old page",))
    entry, how = pages.get(key, ("v2",), lambda: ("new page",))
    assert (how, entry.segments) == (MISS, ("new page",))
    memcache_backend.replayer.clear()
