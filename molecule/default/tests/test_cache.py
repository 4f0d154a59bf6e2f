"""memcached on every cache node: limits, bound to the private address, reachable only from web nodes."""

import pytest

from stacktest import hosts_of, memcached, tcp_open

testinfra_hosts = ["ansible://cacheservers"]


def test_memcached_runs_with_its_limits(host):
    assert host.service("memcached").is_running
    assert host.service("memcached").is_enabled
    cmdline = host.run("cat /proc/$(pidof memcached)/cmdline | tr '\\0' ' '").stdout
    assert "-m 256" in cmdline and "-c 4096" in cmdline and "-U 0" in cmdline


def test_memcached_listens_on_private_address_and_loopback_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":11211")]
    assert "tcp://127.0.0.1:11211" in listening
    assert not any(s.startswith(("tcp://0.0.0.0", "tcp://::")) for s in listening), listening
    assert not host.socket("udp://0.0.0.0:11211").is_listening


@pytest.mark.parametrize("client", hosts_of("webservers"))
def test_every_web_node_gets_stats(host, client):
    reply = memcached(client, host.backend.get_hostname(), r"stats\r\n")
    assert "STAT curr_connections" in reply


def test_a_value_stored_from_one_web_node_is_read_from_another(host):
    me = host.backend.get_hostname()
    writer, reader = hosts_of("webservers")[0], hosts_of("webservers")[-1]
    assert memcached(writer, me, rf"set probe-{me} 0 60 5\r\nhello\r\n") == "STORED\r\n"
    assert "hello" in memcached(reader, me, rf"get probe-{me}\r\n")


@pytest.mark.parametrize("client", hosts_of("loadbalancers") + hosts_of("mediaservers") + hosts_of("db_primary"))
def test_other_tiers_are_refused(host, client):
    assert not tcp_open(client, host.backend.get_hostname(), 11211, timeout=1.5)
