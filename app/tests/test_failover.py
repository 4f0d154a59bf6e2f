"""The failover backend against real failures: a refused port, a tarpit, and a real replica and primary."""

import logging
import threading
import time

import pytest
from django.db import connections
from django.test import Client

from django_stack.dbfailover import registry
from django_stack.dbfailover.databases import build
from django_stack.config import DatabaseConfig
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
    caplog.set_level(logging.WARNING, logger="django_stack.db.failover")
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


def test_a_slow_query_is_not_a_dead_replica(real_replica, primary_server, caplog):
    """A read longer than replica_read_timeout on a server that answers: an error, nothing marked down, not re-run
    on the next server (where it would be slow too, and mark that one down as well)."""
    from django.db import OperationalError

    caplog.set_level(logging.WARNING, logger="django_stack.db.failover")
    with swapped_databases([real_replica], connect_timeout=1, replica_read_timeout=1):
        assert reached("replica_1")[1] == ("127.0.0.1", real_replica.port)
        with pytest.raises(OperationalError), connections["replica_1"].cursor() as cursor:
            cursor.execute("SELECT SLEEP(3)")
        assert not registry.is_down(("127.0.0.1", real_replica.port))
        assert not registry.is_down(("127.0.0.1", primary_server.port))
        assert "the query is slow, the server is not down" in " ".join(r.getMessage() for r in caplog.records)
        # The next read goes to the same replica, at once.
        took, address = reached("replica_1")
        assert address == ("127.0.0.1", real_replica.port) and took < 0.5


def test_a_broken_connection_to_a_replica_that_answers_is_replaced_not_failed_over(real_replica, replica_server):
    """The connection was killed (a restarted server, a proxy's idle timeout): the read is sent again on a new
    connection to the same server, which is not marked down."""
    with swapped_databases([real_replica], connect_timeout=1, replica_read_timeout=5):
        connection = connections["replica_1"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (thread_id,) = cursor.fetchone()
        replica_server.sql(f"KILL CONNECTION {thread_id}")
        took, address = reached("replica_1")
        assert address == ("127.0.0.1", real_replica.port)
        assert not registry.is_down(address)
        assert took < 1.0, took


def test_a_server_found_down_is_skipped_by_every_process_of_the_node(freezable, real_replica, tmp_path):
    """What one process found (here: a replica that stopped answering) the node's other processes know at once:
    a dead replica costs one timeout per node, not one per uWSGI worker."""
    import subprocess
    import sys

    frozen = ("127.0.0.1", freezable.port)
    with swapped_databases([host(freezable.port), real_replica], connect_timeout=1, replica_read_timeout=1):
        assert reached("replica_1")[1] == frozen
        freezable.freeze()
        assert reached("replica_1")[1] == ("127.0.0.1", real_replica.port)
        # Another process of this node, as another uWSGI worker is.
        script = ("import sys; from django_stack.dbfailover import registry; "
                  f"print(registry.is_down(('127.0.0.1', {freezable.port})), "
                  f"registry.down_for(('127.0.0.1', {freezable.port})) > 1)")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert done.stdout.split() == ["True", "True"], done.stdout + done.stderr


def test_healthz_reports_each_replicas_own_server(refused_port, real_replica):
    """A replica alias that failed over still answers, but /healthz says its own server is down (and which server
    answers for it instead)."""
    import json

    with swapped_databases([host(refused_port), real_replica], connect_timeout=1):
        response = Client().get("/healthz")
    body = json.loads(response.content)
    assert response.status_code == 200
    assert body["databases"] == {"default": "ok", "replica_1": "down", "replica_2": "ok"}, body
    assert body["failover"] == {"replica_1": f"127.0.0.1:{real_replica.port}"}
    assert body["status"] == "degraded"
