"""Django cache backend for python-memcached, built on Django's ``BaseMemcachedCache``.

``LOCATION`` lists the memcached servers (``host:port``); keys are spread over them by python-memcached's hash.
A dead server costs cache misses, never errors: python-memcached marks it dead for ``dead_retry`` seconds and
answers misses (``get`` → default, ``set``/``add`` → False) instead of raising, and ``socket_timeout`` bounds what
a server that hangs can cost. The client object is thread-local (python-memcached's ``Client`` subclasses
``threading.local``), so the threads of a uWSGI worker never share a socket.

A key lives on one server, its *home*, and only there: python-memcached's default moves the keys of a server it
marked dead to another one, so after a blip the same key has two values, and the old one is served again once its
home answers. Here a dead home means a miss (the database answers), never another server.

A write that could not reach its home (a ``set``, ``delete``, version bump or invalidation during a blip) may have
left the old value there, to be served when the server answers again. Each such key is remembered and deleted on
its home as soon as that server accepts a connection again (:class:`Replayer`, a thread of the process that tries
every ``replay_interval`` seconds); past ``replay_max_keys`` keys the server is flushed instead. So a cut-off
memcached node never serves data that was changed while it was cut off. The pending keys live in the process
that wrote: a short-lived one (a ``manage.py`` command) waits at exit, up to 15 s, for them to be replayed.

OPTIONS: ``socket_timeout`` (seconds, default 0.5), ``dead_retry`` (seconds, default 30), ``replay_interval``
(seconds, default 0.1), ``replay_max_keys`` (default 100,000), plus anything python-memcached's ``Client`` accepts.
"""

from __future__ import annotations

import atexit
import logging
import pickle
import socket
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.memcached import BaseMemcachedCache
from django.utils.functional import cached_property

logger = logging.getLogger("django_stack.cache")


class Replayer:
    """Deletes, on their home server, the keys whose writes could not reach it, once it answers again."""

    def __init__(self, *, interval: float = 0.1, max_keys: int = 100_000, timeout: float = 0.5):
        self.interval, self.max_keys, self.timeout = interval, max_keys, timeout
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], set[bytes]] = {}
        self._flush: set[tuple[str, int]] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, address: tuple[str, int], keys) -> None:
        with self._lock:
            if address in self._flush:
                return
            pending = self._pending.setdefault(address, set())
            pending.update(keys)
            if len(pending) > self.max_keys:
                del self._pending[address]
                self._flush.add(address)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="memcache-replay", daemon=True)
                self._thread.start()
        logger.warning("cache: %s:%s missed writes; their keys are deleted there once it answers",
                       address[0], address[1])

    def pending(self, address: tuple[str, int]) -> int:
        with self._lock:
            return len(self._pending.get(address, ())) + (1 if address in self._flush else 0)

    def _run(self) -> None:
        while True:
            with self._lock:
                work = {a: set(k) for a, k in self._pending.items()}
                flush = set(self._flush)
            if not work and not flush:
                with self._lock:
                    if not self._pending and not self._flush:
                        self._thread = None
                        return
            for address in set(work) | flush:
                self._replay(address, work.get(address, set()), address in flush)
            self._wake.wait(self.interval)

    def _replay(self, address, keys: set[bytes], flush: bool) -> None:
        try:
            with socket.create_connection(address, timeout=self.timeout) as conn:
                stream = conn.makefile("rb")
                if flush:
                    conn.sendall(b"flush_all\r\n")
                    if stream.readline().strip() != b"OK":
                        return
                else:
                    ordered = sorted(keys)
                    conn.sendall(b"".join(b"delete " + k + b"\r\n" for k in ordered))
                    for _ in ordered:
                        if stream.readline().strip() not in (b"DELETED", b"NOT_FOUND"):
                            return
        except OSError:
            return  # still unreachable: the next round tries again
        with self._lock:
            if flush:
                self._flush.discard(address)
            left = self._pending.get(address)
            if left is not None:
                left -= keys
                if not left:
                    del self._pending[address]
        logger.warning("cache: %s:%s answers again: %s", address[0], address[1],
                       "flushed" if flush else f"{len(keys)} keys written while it was cut off deleted")


    def clear(self) -> None:
        """Forget every pending key (tests)."""
        with self._lock:
            self._pending.clear()
            self._flush.clear()

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending (or ``timeout``); True when everything was replayed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._flush:
                    return True
            time.sleep(self.interval)
        with self._lock:
            return not self._pending and not self._flush


replayer = Replayer()
# A short-lived process (a manage.py command, a job) waits a little at exit for its replays: they live in its
# memory, and a write it could not deliver must not stay on the node that missed it.
EXIT_WAIT = 15.0
atexit.register(lambda: replayer.drain(EXIT_WAIT))


class MemcachedCache(BaseMemcachedCache):
    def __init__(self, server, params):
        import memcache

        # python-memcached returns None from incr()/decr() on a missing key; ValueError is what older releases
        # raised, and what BaseMemcachedCache.incr() expects to translate.
        super().__init__(server, params, library=memcache, value_not_found_exception=ValueError)
        self._options = {
            "pickleProtocol": pickle.HIGHEST_PROTOCOL,
            "socket_timeout": 0.5,
            "dead_retry": 30,
            **(self._options or {}),
        }

    @cached_property
    def _cache(self):
        options = dict(self._options)
        replayer.interval = float(options.pop("replay_interval", replayer.interval))
        replayer.max_keys = int(options.pop("replay_max_keys", replayer.max_keys))
        replayer.timeout = float(options.get("socket_timeout", replayer.timeout))
        return _client_class(self._lib)(self.client_servers, **options)

    def _encoded(self, key: str) -> bytes:
        encoded = self._cache._encode_key(self._cache.key_encoder(key))
        return encoded if isinstance(encoded, bytes) else str(encoded).encode("utf8")

    def _remember_undelivered(self, made_keys) -> None:
        """After a write: the keys whose home server is (now) marked dead may hold an old value there."""
        client = self._cache
        if not client.buckets:
            return
        lost: dict[tuple[str, int], list[bytes]] = {}
        for made in made_keys:
            encoded = self._encoded(made)
            home = client.buckets[self._lib.serverHashFunction(encoded) % len(client.buckets)]
            if home.deaduntil and home._check_dead():
                lost.setdefault(home.address, []).append(encoded)
        for address, keys in lost.items():
            replayer.add(address, keys)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        stored = super().set(key, value, timeout, version)
        self._remember_undelivered([self.make_and_validate_key(key, version=version)])
        return stored

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        failed = super().set_many(data, timeout, version)
        self._remember_undelivered([self.make_and_validate_key(k, version=version) for k in data])
        return failed

    def delete(self, key, version=None):
        deleted = super().delete(key, version)
        self._remember_undelivered([self.make_and_validate_key(key, version=version)])
        return deleted

    def delete_many(self, keys, version=None):
        keys = list(keys)
        super().delete_many(keys, version)
        self._remember_undelivered([self.make_and_validate_key(k, version=version) for k in keys])

    def get(self, key, default=None, version=None):
        # python-memcached's get() has no default argument: a miss is None.
        key = self.make_and_validate_key(key, version=version)
        value = self._cache.get(key)
        return default if value is None else value

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # python-memcached answers 0/1 (and 0 for a dead server): Django's API promises a bool.
        return bool(super().add(key, value, timeout, version))

    def get_many(self, keys, version=None):
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self._cache.get_multi(key_map.keys())
        return {key_map[k]: v for k, v in found.items() if v is not None}

    def close(self, **kwargs):
        # Keep connections across requests (Django's default closes them after every request).
        pass


_client_classes: dict = {}


def _client_class(lib):
    """python-memcached's Client with one home server per key (no moving keys to another server)."""
    if lib not in _client_classes:
        class Client(lib.Client):
            def _get_server(self, key):
                if isinstance(key, tuple):
                    serverhash, key = key
                else:
                    serverhash = lib.serverHashFunction(key)
                if not self.buckets:
                    return None, None
                server = self.buckets[serverhash % len(self.buckets)]
                if server.connect():
                    return server, key
                return None, None

        _client_classes[lib] = Client
    return _client_classes[lib]
