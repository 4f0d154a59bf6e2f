"""The primary stops: reads keep working from the replica, writes get a clear 503, nothing half-written.

Named to run last: it stops and restarts the primary of the bench.
"""

import json

from django.db import close_old_connections, connections
from django.test import Client

from django_stack.dbfailover import registry
from orders.models import Order
from tests.conftest import CSRF_INPUT



def test_primary_down_reads_work_and_writes_get_the_read_only_page(logged_in, primary_server, replicated):
    client, user = logged_in(raise_request_exception=False)
    product_page = client.get("/c/cat-001/")
    token = CSRF_INPUT.findall(product_page.content)[-1].decode()
    anonymous = Client(raise_request_exception=False)
    orders_before = Order.objects.using("default").count()
    from catalog.models import Product
    product = Product.objects.order_by("id").first()
    assert client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token}).status_code == 302
    replicated()

    primary_server.stop()
    try:
        for connection in connections.all():
            connection.close()
        # Reads: every page of the catalog, for anonymous and logged-in users (past the read-your-writes pin).
        from django.test.utils import override_settings
        with override_settings(STACK_READ_YOUR_WRITES_SECONDS=0):
            for who in (anonymous, client):
                for path in ("/", "/c/cat-002/", product.get_absolute_url(), "/cart/"):
                    assert who.get(path).status_code == 200, path
            # Writes: a clear 503, HTML or JSON, never a traceback.
            response = client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token})
            assert response.status_code == 503, response.content[:300]
            assert b"Read-only for now" in response.content and b"Traceback" not in response.content
            assert response["Retry-After"]
            response = client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token},
                                   HTTP_ACCEPT="application/json")
            assert response.status_code == 503 and json.loads(response.content)["error"] == "read_only"
            response = client.post("/orders/checkout/", {"csrfmiddlewaretoken": token})
            assert response.status_code == 503
            # The load balancer keeps this node: it can still serve reads.
            health = anonymous.get("/healthz")
            assert health.status_code == 200
            assert json.loads(health.content)["databases"] == {"default": "down", "replica_1": "ok"}
    finally:
        primary_server.start()
        registry.clear()
        for connection in connections.all():
            connection.close()
    # Nothing half-written: no order appeared, and writes work again once the primary is back.
    assert Order.objects.using("default").count() == orders_before
    response = client.post("/orders/checkout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Order.objects.using("default").count() == orders_before + 1


def test_a_restarted_primary_takes_writes_within_a_second_of_answering(logged_in, primary_server):
    """systemctl restart mariadb on the primary: the persistent connections break (their health-check ping fails)
    and writes during the restart fail; the first write after the primary answers again succeeds. The single
    primary is never skipped for a cool-down (before: ping failure -> marked down -> 503s for the whole
    cool-down)."""
    import time

    client, user = logged_in(raise_request_exception=False)
    from catalog.models import Product
    product = Product.objects.order_by("id").first()
    page = client.get("/c/cat-001/")
    token = CSRF_INPUT.findall(page.content)[-1].decode()
    # A persistent connection to the primary is open (CONN_MAX_AGE, health checks on).
    assert client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token}).status_code == 302
    assert connections["default"].connection is not None

    primary_server.stop()
    try:
        close_old_connections()
        # A write while it is down: refused at once, the read-only page.
        response = client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token})
        assert response.status_code == 503
    finally:
        primary_server.start()
    answered = time.monotonic()
    statuses = []
    while True:
        # What the WSGI handler does at the start of each request (Django's test client does not).
        close_old_connections()
        response = client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token})
        statuses.append(response.status_code)
        if response.status_code == 302 or time.monotonic() - answered > 10:
            break
        time.sleep(0.05)
    took = time.monotonic() - answered
    assert statuses[-1] == 302, statuses
    assert took < 1.0, f"writes came back {took:.1f}s after the primary answered ({len(statuses)} tries)"


def test_a_read_only_primary_gives_the_read_only_page(logged_in, primary_server):
    """A primary that answers but refuses writes (just started, before its fencing check made it writable, or
    fenced after a promotion elsewhere): writes get the 503 read-only page, not a 500."""
    client, user = logged_in(raise_request_exception=False)
    from catalog.models import Product
    product = Product.objects.order_by("id").first()
    token = CSRF_INPUT.findall(client.get("/c/cat-001/").content)[-1].decode()
    primary_server.sql("SET GLOBAL read_only = ON")
    try:
        response = client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token})
        assert response.status_code == 503, response.status_code
        assert b"Read-only for now" in response.content
    finally:
        primary_server.sql("SET GLOBAL read_only = OFF")
    assert client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token}).status_code == 302
