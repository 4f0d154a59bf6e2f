"""Checkout is idempotent: the same cart makes one order, however often or concurrently it is posted."""

import threading

from django.db import OperationalError
from django.test import Client

from catalog.models import Product
from orders import views as order_views
from orders.models import Order
from django_stack.sessions import SessionStore
from tests.conftest import CSRF_INPUT


def _cart_with_one_product(client):
    page = client.get("/c/cat-001/")
    token = CSRF_INPUT.findall(page.content)[-1].decode()
    product = Product.objects.order_by("id").first()
    assert client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token}).status_code == 302
    return token


def test_two_posts_of_the_same_cart_at_once_make_one_order(logged_in, monkeypatch):
    client, user = logged_in()
    token = _cart_with_one_product(client)
    # Both requests are inside their order transaction at the same moment (each has read the cart).
    barrier = threading.Barrier(2, timeout=5)
    create = Order.objects.create

    def create_together(**kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return create(**kwargs)

    monkeypatch.setattr(order_views.Order.objects, "create", create_together)
    answers = []

    def post():
        other = Client()
        other.cookies = client.cookies  # the same browser: two tabs, a double click
        answers.append(other.post("/orders/checkout/", {"csrfmiddlewaretoken": token}))
        from django.db import connections
        for connection in connections.all():
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not barrier.broken, "the two checkouts did not overlap"
    orders = list(Order.objects.using("default").filter(user=user))
    assert len(orders) == 1, orders
    assert [a.status_code for a in answers] == [302, 302]
    assert {a["Location"] for a in answers} == {orders[0].get_absolute_url()}


def test_a_retry_after_the_session_could_not_be_saved_makes_no_second_order(logged_in, monkeypatch):
    client, user = logged_in(raise_request_exception=False)
    token = _cart_with_one_product(client)
    save = SessionStore.save
    failed = []

    def save_fails_once(self, must_create=False):
        if not failed and self.get("cart") is None:  # the save that empties the cart after the order
            failed.append(True)
            raise OperationalError(2006, "Server has gone away")
        return save(self, must_create=must_create)

    monkeypatch.setattr(SessionStore, "save", save_fails_once)
    first = client.post("/orders/checkout/", {"csrfmiddlewaretoken": token})
    assert failed and first.status_code == 503
    assert Order.objects.using("default").filter(user=user).count() == 1
    # The customer got an error page and tries again: the cart is still there, it was ordered already.
    retry = client.post("/orders/checkout/", {"csrfmiddlewaretoken": token})
    orders = list(Order.objects.using("default").filter(user=user))
    assert len(orders) == 1, orders
    assert retry.status_code == 302 and retry["Location"] == orders[0].get_absolute_url()
    assert b'<span id="cart-count">0</span>' in client.get("/").content


def test_a_changed_cart_is_a_new_order(logged_in):
    client, user = logged_in()
    token = _cart_with_one_product(client)
    assert client.post("/orders/checkout/", {"csrfmiddlewaretoken": token}).status_code == 302
    token = _cart_with_one_product(client)
    assert client.post("/orders/checkout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert Order.objects.using("default").filter(user=user).count() == 2
