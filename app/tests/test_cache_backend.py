"""The python-memcached backend against real memcached; a dead node costs misses, never errors."""

import logging
import time

import pytest
from django.test import Client
from django.test.utils import override_settings

from django_stack.memcache_backend import backend as memcache_backend
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
    # The process's probe finds it back within a second (python-memcached alone skips it for dead_retry, 30 s).
    time.sleep(1.5)
    client.get("/c/cat-002/")
    assert client.get("/c/cat-002/")["X-First-Pass"] == "hit"


def test_keys_spread_over_a_cluster(cache_server, refused_port):
    # Two nodes, one dead: everything still works (the live node takes the keys it can).
    cluster = {"default": {"BACKEND": "django_stack.memcache_backend.backend.MemcachedCache",
                           "LOCATION": [f"127.0.0.1:{cache_server.port}", f"127.0.0.1:{refused_port}"],
                           "OPTIONS": {"socket_timeout": 0.2}}}
    with override_settings(CACHES=cluster):
        assert Client().get("/").status_code == 200


# --- a node that restarts, a connection that is closed -------------------------------------------------------------

def _dead(backend) -> list[str]:
    return [str(server) for server in backend._cache.servers if server.deaduntil]


def test_a_restarted_node_is_used_again_at_once(cache_server):
    """memcached restarts while this thread keeps its connection from before: the next commands use a new
    connection (before: the first one failed on the closed connection and the node was skipped for dead_retry, 30 s
    of misses for every thread of the app)."""
    # A socket timeout far above any pause of a busy machine: the freshly started memcached (its pages read again
    # from disk under the other lane's I/O) must not be marked dead for being slow, which is not what this tests.
    backend = MemcachedCache([f"127.0.0.1:{cache_server.port}"], {"KEY_PREFIX": "restart",
                                                                  "OPTIONS": {"dead_retry": 30, "socket_timeout": 10}})
    backend.set("before", 1)
    assert backend.get("before") == 1
    cache_server.stop()
    cache_server.start()
    assert backend.get("before") is None  # memcached keeps nothing across a restart
    assert _dead(backend) == []
    backend.set("after", 2)
    assert backend.get("after") == 2
    assert backend.add("added", 3) is True
    assert backend.get_many(["after", "added"]) == {"after": 2, "added": 3}


def test_a_node_back_after_an_outage_is_used_again_within_a_second(cache_server):
    """A client marked the node dead during its outage: once it answers the process's probe, the client uses it
    again (before: not for dead_retry, 30 s from the last failure, for each thread)."""
    backend = MemcachedCache([f"127.0.0.1:{cache_server.port}"], {"KEY_PREFIX": "outage",
                                                                  "OPTIONS": {"dead_retry": 30}})
    backend.set("k", 1)
    cache_server.stop()
    try:
        # The first command can still go out on the connection that had worked, if the kernel has not yet told it
        # of the close (a busy machine): reset, it is dropped without the dead mark, and the next command's connect
        # is refused, which marks the node dead. Each is a miss, never an error.
        for _ in range(3):
            assert backend.get("k") is None
            if _dead(backend):
                break
        assert _dead(backend) != []
    finally:
        cache_server.start()
    deadline = time.monotonic() + 2
    while _dead(backend) and backend.get("k") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    backend.set("k", 2)
    assert backend.get("k") == 2
    assert _dead(backend) == []


def test_a_connection_closed_during_a_command_is_retried_on_a_new_one(second_memcached):
    proxy = second_memcached.proxy
    backend = MemcachedCache([f"127.0.0.1:{proxy.port}"], {"KEY_PREFIX": "hangup", "OPTIONS": {"dead_retry": 30}})
    backend.set("k", "old")
    assert backend.get("k") == "old"
    proxy.hang_up()
    backend.set("k", "new")  # its connection is closed under it: sent again on a new one
    assert _dead(backend) == []
    assert memcache_backend.replayer.pending(("127.0.0.1", proxy.port)) == 0
    assert backend.get("k") == "new"
    proxy.hang_up()
    assert backend.get("k") == "new"  # the read too
    assert _dead(backend) == []


def test_a_connection_reset_during_a_command_is_retried_on_a_new_one(second_memcached):
    """A reset is the server's close too (a restarted memcached's host answers a command sent before the old
    connection's close arrived with RST): the command goes again on a new connection, as for a close (before: the
    write failed and was left for the replayer, the read was a miss)."""
    proxy = second_memcached.proxy
    backend = MemcachedCache([f"127.0.0.1:{proxy.port}"], {"KEY_PREFIX": "reset", "OPTIONS": {"dead_retry": 30}})
    backend.set("k", "old")
    assert backend.get("k") == "old"
    proxy.hang_up(reset=True)
    backend.set("k", "new")  # its connection is reset under it: sent again on a new one
    assert _dead(backend) == []
    assert memcache_backend.replayer.pending(("127.0.0.1", proxy.port)) == 0
    assert backend.get("k") == "new"
    proxy.hang_up(reset=True)
    assert backend.get("k") == "new"  # the read too
    assert _dead(backend) == []


def test_a_write_lost_with_its_connection_is_replayed_on_its_home(second_memcached):
    """A delete whose connection is closed under it (python-memcached does not send it again) leaves the old value
    there, although the node is not marked dead: the key is remembered and deleted there by the replayer."""
    proxy = second_memcached.proxy
    backend = MemcachedCache([f"127.0.0.1:{proxy.port}"], {"KEY_PREFIX": "lost", "OPTIONS": {"dead_retry": 30}})
    backend.set("k", "old")
    assert backend.get("k") == "old"
    proxy.hang_up()
    backend.delete("k")
    assert _dead(backend) == []
    deadline = time.monotonic() + 5
    while memcache_backend.replayer.pending(("127.0.0.1", proxy.port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert memcache_backend.replayer.pending(("127.0.0.1", proxy.port)) == 0
    assert backend.get("k") is None


def test_a_new_connection_that_fails_still_marks_the_node_dead(second_memcached, caplog):
    """Only a connection that had worked is forgiven: a node whose new connections fail is skipped for dead_retry
    (a node that accepts and hangs up must not cost every command a connect)."""
    proxy = second_memcached.proxy
    backend = MemcachedCache([f"127.0.0.1:{proxy.port}"], {"KEY_PREFIX": "flap", "OPTIONS": {"dead_retry": 30}})
    backend.set("k", 1)
    assert backend.get("k") == 1
    proxy.hang_up(new_ones_too=True)
    with caplog.at_level(logging.WARNING, logger="django_stack.cache"):
        assert backend.get("k") is None
    assert _dead(backend) != []
    # The log says which node is skipped, and why.
    assert f"127.0.0.1:{proxy.port} marked dead for up to 30s (connection closed in readline())" in caplog.text
    memcache_backend.replayer.clear()
