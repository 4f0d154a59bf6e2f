"""nginx on the media tier: web nodes upload, load balancers read, nobody else gets in."""

import uuid

import pytest

from stacktest import hosts_of, http, run_playbook, tcp_open

testinfra_hosts = ["ansible://mediaservers"]


@pytest.fixture
def media_url(host):
    return f"http://{host.backend.get_hostname()}/media/tests/{uuid.uuid4().hex}.txt"


def test_nginx_config_is_valid_and_running(host):
    assert host.run("nginx -t").rc == 0
    assert host.service("nginx").is_running


def test_a_web_node_uploads_and_the_file_lands_on_disk(host, media_url):
    web = hosts_of("webservers")[0]
    assert http(web, "PUT", media_url, "hello media")["status"] == 201
    path = "/srv/media/" + media_url.split("/media/", 1)[1]
    assert host.file(path).content_string == "hello media"
    assert http(web, "DELETE", media_url)["status"] == 204
    assert not host.file(path).exists


def test_the_load_balancer_gets_the_file_with_cache_headers(host, media_url):
    http(hosts_of("webservers")[-1], "PUT", media_url, "cached")
    reply = http(hosts_of("loadbalancers")[0], "GET", media_url)
    assert reply["status"] == 200 and reply["body"] == "cached"
    headers = {k.lower(): v for k, v in reply["headers"].items()}
    assert "max-age=2592000" in headers["cache-control"]
    assert "expires" in headers
    assert headers["x-content-type-options"] == "nosniff"


def test_the_load_balancer_may_not_upload(host, media_url):
    assert http(hosts_of("loadbalancers")[0], "PUT", media_url, "nope")["status"] == 403


@pytest.mark.parametrize("client", hosts_of("cacheservers")[:1] + hosts_of("db_primary"))
def test_other_tiers_cannot_reach_media(host, client):
    assert not tcp_open(client, host.backend.get_hostname(), 80, timeout=1.5)


def test_a_bad_nginx_configuration_never_lands_on_disk(host):
    """The site file is checked in the task that writes it: one nginx would refuse is never written, and the
    running server keeps serving with the last good one."""
    site = "/etc/nginx/sites-available/media.conf"
    before = host.file(site).sha256sum
    rc, out = run_playbook("playbooks/media.yml", extra_vars={"nginx_media_cache_max_age": "never"})
    assert rc != 0
    assert "failed to validate" in out, out[-3000:]
    assert host.file(site).sha256sum == before
    assert "expires never" not in host.file(site).content_string
    assert host.run("nginx -t").rc == 0 and host.service("nginx").is_running
    assert http(hosts_of("loadbalancers")[0], "GET", f"http://{host.backend.get_hostname()}/healthz")["status"] == 200
