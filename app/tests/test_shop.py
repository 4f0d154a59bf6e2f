"""The shop as a customer uses it: browse, log in, cart, checkout; and /healthz."""

import json
import re
from pathlib import Path

from django.conf import settings
from django.test import Client

from catalog.models import Product
from orders.models import Order
from tests.conftest import CSRF_INPUT



def test_catalog_category_and_product_pages():
    client = Client()
    home = client.get("/")
    assert home.status_code == 200 and b"All products" in home.content and b"60 products" in home.content
    assert home.content.count(b'class="card"') == 12  # one page
    assert b'rel="next" href="?page=2"' in home.content
    assert client.get("/?page=5").status_code == 200 and client.get("/?page=6").status_code == 404
    assert client.get("/?page=0").status_code == 404 and client.get("/?page=x").status_code == 404
    category = client.get("/c/cat-002/")
    assert category.status_code == 200 and b"20 products" in category.content
    assert client.get("/c/nope/").status_code == 404
    product = Product.objects.get(sku="SKU-000005")
    detail = client.get(product.get_absolute_url())
    assert detail.status_code == 200 and product.name.encode() in detail.content
    assert b"/media/products/sku-000005" in detail.content
    assert client.get(f"/p/{product.pk}/wrong-slug/")["Location"] == product.get_absolute_url()


def test_pages_come_compressed_to_clients_that_accept_it(logged_in):
    import gzip
    client, user = logged_in()
    plain = client.get("/")
    packed = client.get("/", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "Content-Encoding" not in plain and packed["Content-Encoding"] == "gzip"
    assert packed["X-First-Pass"] == "hit" and "Accept-Encoding" in packed["Vary"]
    body = gzip.decompress(packed.content)
    # The user's own parts survive (the second pass runs before the compression).
    assert f'<strong class="username">{user.username}</strong>'.encode() in body and CSRF_INPUT.search(body)
    assert len(packed.content) * 5 < len(plain.content), (len(packed.content), len(plain.content))
    assert packed.content[3] & gzip.FNAME  # BREACH padding: a random file name of random length


def test_static_files_have_hashed_names_and_gzip_copies(settings):
    from pathlib import Path

    body = Client().get("/").content.decode()
    href = re.search(r'href="/static/(shop/site\.[0-9a-f]{12}\.css)"', body).group(1)
    root = Path(settings.STATIC_ROOT)
    assert (root / href).is_file() and (root / f"{href}.gz").is_file()


def test_cart_and_checkout(logged_in):
    client, user = logged_in(enforce_csrf_checks=True)
    page = client.get("/c/cat-001/")
    token = CSRF_INPUT.findall(page.content)[-1].decode()
    products = list(Product.objects.filter(category__slug="cat-001").order_by("id")[:2])
    for product, quantity in zip(products, (1, 3), strict=True):
        response = client.post("/cart/add/", {"product": product.pk, "quantity": quantity, "csrfmiddlewaretoken": token})
        assert response.status_code == 302
    assert b'<span id="cart-count">4</span>' in client.get("/").content
    cart = client.get("/cart/")
    assert cart.status_code == 200
    client.post("/cart/remove/", {"product": products[0].pk, "csrfmiddlewaretoken": token})
    assert b'<span id="cart-count">3</span>' in client.get("/").content
    assert client.post("/cart/add/", {"product": 999999, "csrfmiddlewaretoken": token}).status_code == 400

    response = client.post("/orders/checkout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    order = Order.objects.using("default").get(user=user)
    assert [(line.product_id, line.quantity) for line in order.lines.all()] == [(products[1].pk, 3)]
    assert order.total == products[1].price * 3
    # The order page right after checkout: read from the primary (read-your-writes), never a 404.
    shown = client.get(response["Location"])
    assert shown.status_code == 200 and f"Order {order.pk}".encode() in shown.content
    assert b'<span id="cart-count">0</span>' in shown.content


def test_checkout_needs_a_login():
    response = Client().get("/orders/checkout/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_logout(logged_in):
    client, user = logged_in()
    assert user.username.encode() in client.get("/").content
    client.post("/logout/")
    assert b'href="/login/"' in client.get("/").content


def test_healthz_ok_and_never_cached():
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = json.loads(response.content)
    # The release: the name of the directory holding manage.py (the release directory on a web node).
    assert body.pop("release") == Path(settings.BASE_DIR).resolve().name
    assert body == {"status": "ok", "cache": "ok", "databases": {"default": "ok", "replica_1": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_is_degraded_but_up_without_cache(refused_port, settings):
    settings.CACHES = {"default": {"BACKEND": "django_stack.memcache_backend.backend.MemcachedCache",
                                   "LOCATION": [f"127.0.0.1:{refused_port}"], "OPTIONS": {"socket_timeout": 0.2}}}
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content)["status"] == "degraded"
