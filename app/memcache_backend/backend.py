"""Django cache backend for python-memcached, built on Django's ``BaseMemcachedCache``.

``LOCATION`` lists the memcached servers (``host:port``); keys are spread over them by python-memcached's hash.
A dead server costs cache misses, never errors: python-memcached marks it dead for ``dead_retry`` seconds and
answers misses (``get`` → default, ``set``/``add`` → False) instead of raising, and ``socket_timeout`` bounds what
a server that hangs can cost. The client object is thread-local (python-memcached's ``Client`` subclasses
``threading.local``), so the threads of a uWSGI worker never share a socket.

OPTIONS: ``socket_timeout`` (seconds, default 0.5), ``dead_retry`` (seconds, default 30), plus anything
python-memcached's ``Client`` accepts.
"""

from __future__ import annotations

import pickle

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.memcached import BaseMemcachedCache
from django.utils.functional import cached_property


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
        return self._lib.Client(self.client_servers, **self._options)

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
