"""The failover backend against real failures: a refused port, a tarpit, and a real replica and primary."""

import logging
import threading
import time

import pytest
from django.db import connections
from django.test import Client

from dbfailover import registry
from dbfailover.databases import build
from shop.config import DatabaseConfig
from tests.conftest import host, swapped_databases


def connect(alias):
    """Open a fresh connection for ``alias``; return (seconds it took, address it reached)."""
    connection = connections[alias]
    connection.close()
    started = time.monotonic()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@port")
        (port,) = cursor.fetchone()
    return time.monotonic() - started, port


def test_replicas_fail_over_in_turn_and_then_to_the_primary():
    a, b, c, p = (host(1001), host(1002, user="other", password="pw2"), host(1003), host(9999))
    db = DatabaseConfig(name="shop", primary=p, replicas=(a, b, c), connect_timeout=2, read_timeout=30,
                        replica_read_timeout=5, down_cooldown=30, conn_max_age=0)
    databases = build(db)
    ports = {alias: [t["PORT"] for t in conf["FAILOVER"]] for alias, conf in databases.items()}
    # In turn, not at random: each replica's load goes to the next one, and every list ends with the primary.
    assert ports == {"default": [9999], "replica_1": [1001, 1002, 1003, 9999],
                     "replica_2": [1002, 1003, 1001, 9999], "replica_3": [1003, 1001, 1002, 9999]}
    # Whole addresses: a replica's own port and credentials are what is tried, not the dead host's.
    # Replicas read with the short timeout, the primary with the long one.
    assert databases["replica_2"]["OPTIONS"]["read_timeout"] == 5
    assert databases["default"]["OPTIONS"]["read_timeout"] == 30
    second = databases["replica_1"]["FAILOVER"][1]
    assert (second["PORT"], second["USER"], second["PASSWORD"]) == (1002, "other", "pw2")


def test_refused_replica_fails_over_to_the_next_one_and_is_logged(refused_port, real_replica, caplog):
    caplog.set_level(logging.WARNING, logger="shop.db.failover")
    with swapped_databases([host(refused_port), real_replica]):
        took, port = connect("replica_1")
        assert port == real_replica.port
        assert registry.is_down(("127.0.0.1", refused_port))
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert f"127.0.0.1:{refused_port} unreachable" in messages
        assert f"failed over to 127.0.0.1:{real_replica.port}" in messages


def test_tarpit_costs_the_connect_timeout_once_then_nothing_during_the_cooldown(tarpit, real_replica):
    with swapped_databases([host(tarpit), real_replica], connect_timeout=1, cooldown=30):
        first, port = connect("replica_1")
        assert port == real_replica.port
        # Bounded by the connect timeout (1 s here), not by TCP's minutes.
        assert 0.9 <= first < 3.0, first
        for _ in range(3):
            later, port = connect("replica_1")
            assert port == real_replica.port
            assert later < 0.5, f"a connection during the cool-down paid {later:.2f}s"


def test_all_replicas_down_reads_go_to_the_primary(refused_port, tarpit, primary_server):
    with swapped_databases([host(refused_port), host(tarpit)], connect_timeout=1):
        _, port = connect("replica_1")
        assert port == primary_server.port
        _, port = connect("replica_2")
        assert port == primary_server.port


def test_a_page_is_served_while_replicas_are_down(refused_port, tarpit, real_replica):
    with swapped_databases([host(refused_port), host(tarpit), real_replica], connect_timeout=1):
        client = Client()
        for path in ("/", "/c/cat-001/", "/?page=2"):
            assert client.get(path).status_code == 200


def test_the_preferred_replica_is_retried_after_its_cooldown(real_replica, primary_server):
    with swapped_databases([real_replica], cooldown=1):
        registry.mark_down(("127.0.0.1", real_replica.port), 1)
        _, port = connect("replica_1")
        assert port == primary_server.port
        connection = connections["replica_1"]
        connection.close_if_unusable_or_obsolete()
        assert connection.connection is not None, "closed while the replica is still cooling down"
        time.sleep(1.1)
        connection.close_if_unusable_or_obsolete()
        assert connection.connection is None, "the fallback connection was kept after the cool-down"
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@port")
            assert cursor.fetchone()[0] == real_replica.port


def test_no_failover_hides_a_wrong_password(real_replica):
    from django.db import OperationalError

    with swapped_databases([host(real_replica.port, password="wrong")]):
        with pytest.raises(OperationalError) as raised:
            connect("replica_1")
        assert raised.value.args[0] == 1045  # access denied: a configuration error, shown as one


def reached(alias):
    """Run a read on ``alias``'s current connection (opening one if needed); return (seconds, address used)."""
    connection = connections[alias]
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return time.monotonic() - started, connection.connected_address


def test_a_replica_that_stops_answering_on_an_open_connection_costs_one_read_timeout(freezable, real_replica):
    frozen = ("127.0.0.1", freezable.port)
    with swapped_databases([host(freezable.port), real_replica], connect_timeout=1, replica_read_timeout=1):
        assert reached("replica_1")[1] == frozen
        # In another thread (another request of the same process), a connection to the same server is open too.
        other = {}
        ready, go, done = threading.Event(), threading.Event(), threading.Event()

        def other_request():
            other["first"] = reached("replica_1")[1]
            ready.set()
            go.wait(10)
            # The start of its next request drops the connection the first thread found dead, without a ping.
            connections["replica_1"].close_if_unusable_or_obsolete()
            other["second"] = reached("replica_1")
            connections["replica_1"].close()
            done.set()

        thread = threading.Thread(target=other_request)
        thread.start()
        assert ready.wait(10) and other["first"] == frozen

        freezable.freeze()  # packets are no longer passed either way: reads hang, nothing is refused
        took, address = reached("replica_1")
        # The read was sent again on the next replica, after the read timeout (1 s), not after minutes.
        assert address == ("127.0.0.1", real_replica.port)
        assert 0.9 <= took < 3.0, took
        assert registry.is_down(frozen)

        go.set()
        assert done.wait(10)
        thread.join()
        second_took, second_address = other["second"]
        assert second_address == ("127.0.0.1", real_replica.port)
        assert second_took < 0.5, second_took


def test_a_read_inside_a_transaction_is_not_sent_again(freezable, real_replica):
    from django.db import OperationalError, transaction

    with swapped_databases([host(freezable.port), real_replica], connect_timeout=1, replica_read_timeout=1):
        assert reached("replica_1")[1] == ("127.0.0.1", freezable.port)
        with pytest.raises(OperationalError), transaction.atomic(using="replica_1"):
            freezable.freeze()
            reached("replica_1")
