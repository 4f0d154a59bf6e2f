"""Django cache backend for python-memcached, built on Django's ``BaseMemcachedCache``.

``LOCATION`` lists the memcached servers (``host:port``); keys are spread over them by python-memcached's hash.
A dead server costs cache misses, never errors: python-memcached marks it dead for ``dead_retry`` seconds and
answers misses (``get`` → default, ``set``/``add`` → False) instead of raising, and ``socket_timeout`` bounds what
a server that hangs can cost. The client object is thread-local (python-memcached's ``Client`` subclasses
``threading.local``), so the threads of a uWSGI worker never share a socket.

A server that restarts, or closes a connection, is not dead: a connection it closed while idle is replaced before
the next command, and one closed during a command is replaced without the dead mark (python-memcached alone marked
the server dead for ``dead_retry`` at each thread's first command after a restart). A server that *was* marked dead
is probed by the process every ``probe_interval`` seconds (connect, ``version``); once it answers, and nothing is
left to replay there, every thread uses it again at once instead of ``dead_retry`` after its own last failure.

A key lives on one server, its *home*, and only there: python-memcached's default moves the keys of a server it
marked dead to another one, so after a blip the same key has two values, and the old one is served again once its
home answers. Here a dead home means a miss (the database answers), never another server.

A write that could not reach its home (a ``set``, ``delete``, version bump or invalidation during a blip) may have
left the old value there, to be served when the server answers again. Each such key is remembered and deleted on
its home as soon as that server accepts a connection again (:class:`Replayer`, a thread of the process that tries
every ``replay_interval`` seconds); past ``replay_max_keys`` keys the server is flushed instead. So a cut-off
memcached node never serves data that was changed while it was cut off. The pending keys live in the process
that wrote: a short-lived one (a ``manage.py`` command) waits at exit, up to 15 s, for them to be replayed.

OPTIONS: ``socket_timeout`` (seconds, default 0.5), ``dead_retry`` (seconds, default 30: the longest a server marked
dead is skipped when no probe gets through), ``replay_interval`` (seconds, default 0.1), ``probe_interval`` (seconds,
default 0.5), ``replay_max_keys`` (default 100,000), plus anything python-memcached's ``Client`` accepts.
"""

from __future__ import annotations

import atexit
import logging
import pickle
import select
import socket
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.memcached import BaseMemcachedCache
from django.utils.functional import cached_property

logger = logging.getLogger("django_stack.cache")


class Replayer:
    """Deletes, on their home server, the keys whose writes could not reach it, once it answers again; and tells
    the process's clients when a server they marked dead answers again (:meth:`answered_since`)."""

    def __init__(self, *, interval: float = 0.1, max_keys: int = 100_000, timeout: float = 0.5,
                 probe_interval: float = 0.5):
        self.interval, self.max_keys, self.timeout = interval, max_keys, timeout
        self.probe_interval = probe_interval
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], set[bytes]] = {}
        self._flush: set[tuple[str, int]] = set()
        self._down: dict[tuple[str, int], float] = {}  # address -> when to probe it next
        self._answered: dict[tuple[str, int], float] = {}  # address -> time.time() it answered a probe
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        # Under self._lock.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="memcache-replay", daemon=True)
            self._thread.start()

    def add(self, address: tuple[str, int], keys) -> None:
        with self._lock:
            if address in self._flush:
                return
            pending = self._pending.setdefault(address, set())
            pending.update(keys)
            if len(pending) > self.max_keys:
                del self._pending[address]
                self._flush.add(address)
            self._ensure_thread()
        logger.warning("cache: %s:%s missed writes; their keys are deleted there once it answers",
                       address[0], address[1])

    def down(self, address: tuple[str, int]) -> None:
        """A client marked ``address`` dead: probe it until it answers, then :meth:`answered_since` says so."""
        with self._lock:
            self._down.setdefault(address, 0.0)
            self._ensure_thread()

    def answered_since(self, address, when: float) -> bool:
        """True when ``address`` answered a probe after ``when`` (``time.time()``) with none of its missed
        writes left to replay: a client that marked it dead at ``when`` may use it again."""
        return self._answered.get(address, 0.0) > when

    def pending(self, address: tuple[str, int]) -> int:
        with self._lock:
            return len(self._pending.get(address, ())) + (1 if address in self._flush else 0)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                work = {a: set(k) for a, k in self._pending.items()}
                flush = set(self._flush)
                probe = {a for a, due in self._down.items() if due <= now}
                if not work and not flush and not self._down:
                    self._thread = None
                    return
                for address in probe:
                    self._down[address] = now + self.probe_interval
            for address in set(work) | flush | probe:
                if self._replay(address, work.get(address, set()), address in flush):
                    with self._lock:
                        if address in self._down and address not in self._pending and address not in self._flush:
                            # Only once nothing is left to replay there: no client reads a key it missed.
                            del self._down[address]
                            self._answered[address] = time.time()
                            logger.warning("cache: %s:%s answers again: its clients use it again",
                                           address[0], address[1])
            self._wake.wait(self.interval)

    def _replay(self, address, keys: set[bytes], flush: bool) -> bool:
        """Replay on ``address`` (its keys' deletes, or a flush); with nothing to replay, ask for its version.
        True when the server answered every command."""
        try:
            with socket.create_connection(address, timeout=self.timeout) as conn:
                stream = conn.makefile("rb")
                if flush:
                    conn.sendall(b"flush_all\r\n")
                    if stream.readline().strip() != b"OK":
                        return False
                elif keys:
                    ordered = sorted(keys)
                    conn.sendall(b"".join(b"delete " + k + b"\r\n" for k in ordered))
                    for _ in ordered:
                        if stream.readline().strip() not in (b"DELETED", b"NOT_FOUND"):
                            return False
                else:
                    conn.sendall(b"version\r\n")
                    return stream.readline().startswith(b"VERSION ")
        except OSError:
            return False  # still unreachable: the next round tries again
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
        return True

    def clear(self) -> None:
        """Forget every pending key and every server to probe (tests)."""
        with self._lock:
            self._pending.clear()
            self._flush.clear()
            self._down.clear()

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
        replayer.probe_interval = float(options.pop("probe_interval", replayer.probe_interval))
        replayer.timeout = float(options.get("socket_timeout", replayer.timeout))
        return _client_class(self._lib)(self.client_servers, **options)

    def _encoded(self, key: str) -> bytes:
        encoded = self._cache._encode_key(self._cache.key_encoder(key))
        return encoded if isinstance(encoded, bytes) else str(encoded).encode("utf8")

    def _write(self, made_keys, write):
        """Run ``write`` (one command or a batch) and remember the keys it may not have delivered: those whose home
        server is marked dead, or whose last command there failed during this write (the old value may still be
        there, to be deleted when the server answers)."""
        client = self._cache
        before = {server: server.failures for server in client.servers}
        try:
            return write()
        finally:
            if client.buckets:
                lost: dict[tuple[str, int], list[bytes]] = {}
                for made in made_keys:
                    encoded = self._encoded(made)
                    home = client.buckets[self._lib.serverHashFunction(encoded) % len(client.buckets)]
                    if (home.deaduntil and home._check_dead()) or (
                            home.failed_last and home.failures != before.get(home, 0)):
                        lost.setdefault(home.address, []).append(encoded)
                for address, keys in lost.items():
                    replayer.add(address, keys)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._write([self.make_and_validate_key(key, version=version)],
                           lambda: super(MemcachedCache, self).set(key, value, timeout, version))

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._write([self.make_and_validate_key(k, version=version) for k in data],
                           lambda: super(MemcachedCache, self).set_many(data, timeout, version))

    def delete(self, key, version=None):
        return self._write([self.make_and_validate_key(key, version=version)],
                           lambda: super(MemcachedCache, self).delete(key, version))

    def delete_many(self, keys, version=None):
        keys = list(keys)
        self._write([self.make_and_validate_key(k, version=version) for k in keys],
                    lambda: super(MemcachedCache, self).delete_many(keys, version))

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


def _closed_by_peer(reason) -> bool:
    """True when python-memcached's reason for marking a server dead is a connection the server closed or reset
    (not a timeout, not a refused connect)."""
    if isinstance(reason, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return True
    text = str(reason)
    return text == "connection closed in readline()" or "returned 0 length bytes" in text


def _unusable(sock) -> bool:
    """True when an idle connection has something to read: the server closed it (EOF), reset it, or sent bytes
    nobody asked for. A healthy idle memcached connection is never readable between commands."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _client_class(lib):
    """python-memcached's Client with one home server per key (no moving keys to another server), whose servers
    survive a closed connection (see :class:`Host`)."""
    if lib not in _client_classes:
        class Host(lib._Host):
            """A server of one client (one thread).

            python-memcached marks a server dead for ``dead_retry`` seconds whenever a command fails, including when
            the connection it kept open was closed by the other end: after a memcached restart, every thread's
            first command on its old connection marked that server dead for 30 s, counted from that command, so
            the whole app skipped a live server for half a minute. Here:

            * before a command, an idle connection the server closed (a restart, an idle timeout) is dropped and a
              new one opened, so no command is sent into it;
            * a connection that had worked and is closed or reset during a command is dropped without the dead
              mark: ``get`` and ``set`` are sent once more on a new connection (python-memcached's retry, which it
              makes for a close only: a reset gets it here too), and the next command connects again. Only a failed
              connect, a timeout, or a new connection that fails marks it dead, and says why in the log.

            ``failures`` counts the commands that failed and ``failed_last`` says whether the last one did, so the
            backend remembers a write that did not reach its home whatever the dead mark says.
            """

            failures = 0
            failed_last = False
            _proven = False
            _marked_at = 0.0

            def _check_dead(self):
                if self.deaduntil and replayer.answered_since(self.address, self._marked_at):
                    self.deaduntil = 0  # it answered the process's probe after this client marked it dead
                return super()._check_dead()

            def _get_socket(self):
                if self.socket is not None and _unusable(self.socket):
                    self.close_socket()
                known = self.socket
                sock = super()._get_socket()
                if sock is not None and sock is not known:
                    self._proven = False
                return sock

            def readline(self, raise_exception=False):
                try:
                    line = super().readline(raise_exception)
                except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as error:
                    # A reset is the server's close too: a command sent on a connection whose close had not
                    # reached this host yet (a restart, on a busy machine) is answered with RST, not an end of
                    # file. python-memcached sends ``get`` and ``set`` again on a new connection for an end of
                    # file only; a reset gets the same here. Callers that do not retry (they read without
                    # raise_exception) take the error as before, and mark_dead forgives the connection.
                    if not (raise_exception and self._proven):
                        raise
                    self.mark_dead(error)
                    raise lib._ConnectionDeadError() from error
                if line:
                    self._proven, self.failed_last = True, False
                return line

            def mark_dead(self, reason):
                self.failures += 1
                self.failed_last = True
                if self.socket is not None and self._proven and _closed_by_peer(reason):
                    logger.info("cache: %s closed a connection that had worked (%s); connecting again", self, reason)
                    self._proven = False
                    self.close_socket()
                    return
                self._marked_at = time.time()
                was_dead = self.deaduntil > self._marked_at
                super().mark_dead(reason)
                # Why a node is skipped (python-memcached says it only with debug on): a refused or timed-out
                # connect, a command that timed out, a new connection closed. Once per outage of this client (the
                # retry that follows a failed command marks it again).
                if not was_dead:
                    where = (f"{self.address[0]}:{self.address[1]}" if isinstance(self.address, tuple)
                             else self.address)
                    logger.warning("cache: %s marked dead for up to %ss (%s); misses until it answers a probe",
                                   where, self.dead_retry, reason)
                replayer.down(self.address)

        class Client(lib.Client):
            def set_servers(self, servers):
                self.servers = [Host(s, self.debug, dead_retry=self.dead_retry, socket_timeout=self.socket_timeout,
                                     flush_on_reconnect=self.flush_on_reconnect) for s in servers]
                self._init_buckets()

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
