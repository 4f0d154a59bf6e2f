"""Fixtures for tests against the real servers of testing/servers.py (MariaDB primary + replica, memcached,
nginx). Tests commit for real (no wrapping transaction): the replica must see what the primary wrote."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import struct
import threading
import time
from contextlib import contextmanager

import pytest
from asgiref.local import Local
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_stack.dbfailover import registry
from django_stack.dbfailover.databases import build
from django_stack.config import DatabaseHost
from django_stack import testing as bench
from django_stack.fixtures import (  # noqa: F401 - fixtures pytest finds by name
    _real_database, cache_server, primary_server, replica_server, replicated, state_path, wait_for_replica,
)

# The CSRF token of each form in a page.
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker, state_path):
    """Migrate the primary once and load a small demo catalog; the replica gets both by replication."""
    with django_db_blocker.unblock():
        call_command("migrate", database="default", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("make_demo_catalog", products=60, categories=3, verbosity=0)
        wait_for_replica()


@pytest.fixture
def make_user():
    # Not pytest-django's django_user_model: that one wraps the test in a transaction the replica never sees.
    created = []

    def make(username=None, password="a-long-test-password"):
        username = username or f"user{len(created)}-{os.urandom(3).hex()}"
        user = get_user_model().objects.create_user(username=username, password=password)
        created.append(user)
        return user

    return make


@pytest.fixture
def logged_in(make_user, replicated):
    """A client logged in through the login form, and its user."""

    def login(**kwargs):
        user = make_user()
        replicated()
        client = Client(**kwargs)
        page = client.get("/login/")
        token = CSRF_INPUT.search(page.content).group(1).decode()
        response = client.post("/login/", {"username": user.username, "password": "a-long-test-password",
                                           "csrfmiddlewaretoken": token})
        assert response.status_code == 302, response.content[:500]
        return client, user

    return login


@contextmanager
def swapped_databases(replicas: list[DatabaseHost], *, cooldown: int | None = None, connect_timeout: int | None = None,
                      replica_read_timeout: int | None = None):
    """Run with other replicas (and failover settings) than the configured ones."""
    db = settings.CONFIG.database
    db = dataclasses.replace(
        db,
        replicas=tuple(replicas),
        down_cooldown=db.down_cooldown if cooldown is None else cooldown,
        connect_timeout=db.connect_timeout if connect_timeout is None else connect_timeout,
        replica_read_timeout=db.replica_read_timeout if replica_read_timeout is None else replica_read_timeout,
    )
    new = build(db)
    connections.close_all()
    saved_settings, saved_connections = connections.settings, connections._connections
    connections.settings = connections.configure_settings(new)
    connections._connections = Local(connections.thread_critical)
    try:
        yield new
    finally:
        connections.close_all()
        connections.settings, connections._connections = saved_settings, saved_connections
        registry.clear()


def host(port: int, **kwargs) -> DatabaseHost:
    db = settings.CONFIG.database
    return DatabaseHost(host=kwargs.get("host", "127.0.0.1"), port=port, user=kwargs.get("user", db.primary.user),
                        password=kwargs.get("password", db.primary.password))


@pytest.fixture
def real_replica(replica_server) -> DatabaseHost:
    return host(replica_server.port)


@pytest.fixture
def refused_port() -> int:
    """A loopback port where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tarpit():
    """A loopback port that accepts TCP connections (the kernel completes the handshake) but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []
    stop = threading.Event()

    def hold():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


class FreezableProxy:
    """A TCP relay on loopback to a real server that can be frozen: after ``freeze()`` it passes no byte either
    way and answers no new connection, like a host whose packets are dropped (nothing is refused)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self.sockets = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def freeze(self):
        self.frozen.set()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client = self.listener.accept()[0]
            except OSError:
                continue
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # held open, never answered
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, src, dst):
        src.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set() and not self.stopped.is_set():
                time.sleep(0.05)  # swallowed: the peer waits for an answer that never comes
            if self.frozen.is_set():
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.stopped.set()
        for thread in self.threads:
            thread.join(2)
        for sock in self.sockets:
            sock.close()
        self.listener.close()


@pytest.fixture
def freezable(replica_server):
    proxy = FreezableProxy(replica_server.port)
    yield proxy
    proxy.close()


@contextmanager
def all_queries():
    """Capture the queries of every database alias: yields {alias: [sql, ...]}, filled when the block ends."""
    captured = {}
    contexts = {alias: CaptureQueriesContext(connections[alias]) for alias in connections.settings}
    for context in contexts.values():
        context.__enter__()
    try:
        yield captured
    finally:
        for alias, context in contexts.items():
            context.__exit__(None, None, None)
            captured[alias] = [q["sql"] for q in context.captured_queries]


class BlackholeProxy(FreezableProxy):
    """A relay whose packets can be dropped for a while, like a host behind a firewall rule that drops: while
    ``cut()`` is on, every byte either way is thrown away (nothing is queued for later, unlike a frozen process)
    and new connections are held unanswered; ``heal()`` passes traffic again."""

    hung_up: frozenset = frozenset()
    hang_up_all = False
    hang_up_with_reset = False

    def cut(self):
        self.frozen.set()

    def heal(self):
        self.frozen.clear()

    def hang_up(self, *, new_ones_too: bool = False, reset: bool = False):
        """The connections open now are closed (FIN) when their client sends its next bytes, which are not passed
        on: a connection the server closed while the client's command was on its way. New ones work, unless
        ``new_ones_too``. With ``reset``, they are reset (RST) instead: what a client sees when a restarted
        server's host answers a command sent on a connection whose close had not reached it yet."""
        self.hang_up_with_reset = reset
        self.hung_up = frozenset(self.sockets)
        self.hang_up_all = new_ones_too

    def _pump(self, src, dst):
        src.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if src in self.hung_up or self.hang_up_all:
                if self.hang_up_with_reset:
                    # Closed with a zero linger time: the kernel sends RST, not FIN.
                    src.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    src.close()
                    dst.shutdown(socket.SHUT_RDWR)
                    return
                for sock in (src, dst):
                    sock.shutdown(socket.SHUT_RDWR)
                return
            if self.frozen.is_set():
                continue  # dropped
            try:
                dst.sendall(data)
            except OSError:
                return


@pytest.fixture
def second_memcached(tmp_path):
    """Another memcached on loopback, behind a relay whose packets can be dropped (``.proxy``)."""
    import subprocess

    port = bench.free_port()
    process = subprocess.Popen(["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"])
    try:
        bench.wait_port(port)
        proxy = BlackholeProxy(port)
        try:
            yield dataclasses.make_dataclass("Memcached", ["port", "proxy"])(port, proxy)
        finally:
            proxy.close()
    finally:
        process.terminate()
        process.wait(10)


def in_another_thread(func):
    """Run ``func`` in a new thread (its own cache client and database connections, as another process has);
    return its result."""
    result = {}

    def run():
        try:
            result["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["error"] = exc
        finally:
            for connection in connections.all():
                connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result["value"]
