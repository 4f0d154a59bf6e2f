"""The python-memcached backend against real memcached; a dead node costs misses, never errors."""

import time

import pytest
from django.core.cache import caches
from django.test import Client
from django.test.utils import override_settings

from django_stack.memcache_backend.backend import MemcachedCache


@pytest.fixture
def memcached(cache_server):
    return MemcachedCache([f"127.0.0.1:{cache_server.port}"], {"KEY_PREFIX": "t"})


def test_the_cache_api(memcached):
    memcached.clear()
    assert memcached.get("missing", "default") == "default"
    assert memcached.add("k", {"a": 1}) is True
    assert memcached.add("k", "other") is False
    assert memcached.get("k") == {"a": 1}
    assert memcached.get_many(["k", "missing"]) == {"k": {"a": 1}}
    memcached.set_many({"n": 1, "m": 2})
    assert memcached.incr("n", 5) == 6 and memcached.decr("n") == 5
    with pytest.raises(ValueError):
        memcached.incr("never-set")
    assert memcached.delete("m") is True
    assert memcached.delete("m") is False
    assert memcached.touch("k", 60) is True
    memcached.set("short", 1, 1)
    time.sleep(2.1)
    assert memcached.get("short") is None


def test_a_dead_node_costs_misses_not_errors(refused_port):
    dead = MemcachedCache([f"127.0.0.1:{refused_port}"], {"OPTIONS": {"socket_timeout": 0.2}})
    assert dead.get("k", "fallback") == "fallback"
    dead.set("k", 1)
    assert dead.add("k", 1) is False
    assert dead.get_many(["a", "b"]) == {}
    assert dead.delete("k") is False
    dead.set_many({"a": 1})


def test_a_stopped_node_mid_run_then_back(cache_server):
    client = Client()
    assert client.get("/").status_code == 200
    cache_server.stop()
    try:
        for _ in range(3):
            response = client.get("/c/cat-002/")
            assert response.status_code == 200
            assert response["X-First-Pass"] == "miss"
    finally:
        cache_server.start()
    # Back after python-memcached's dead_retry: force a new client so the test does not wait for it.
    del caches["default"]._cache
    client.get("/c/cat-002/")
    assert client.get("/c/cat-002/")["X-First-Pass"] == "hit"


def test_keys_spread_over_a_cluster(cache_server, refused_port):
    # Two nodes, one dead: everything still works (the live node takes the keys it can).
    cluster = {"default": {"BACKEND": "django_stack.memcache_backend.backend.MemcachedCache",
                           "LOCATION": [f"127.0.0.1:{cache_server.port}", f"127.0.0.1:{refused_port}"],
                           "OPTIONS": {"socket_timeout": 0.2}}}
    with override_settings(CACHES=cluster):
        assert Client().get("/").status_code == 200
