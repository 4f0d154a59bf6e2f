"""Data caching: one entry per product, shared by every page; invalidated on save; rebuilt by refresh_cache."""

from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from catalog import datacache
from catalog.models import Product
from tests.conftest import all_queries


def product_queries(func):
    with all_queries() as queries:
        result = func()
    return result, [sql for done in queries.values() for sql in done if "catalog_product" in sql]


def test_list_and_detail_pages_share_the_cached_product_objects():
    client = Client()
    client.get("/c/cat-001/")  # caches the products of its first page, one entry each
    product = Product.objects.filter(category__slug="cat-001").order_by("id").first()
    response, queries = product_queries(lambda: client.get(product.get_absolute_url()))
    assert response.status_code == 200 and response["X-First-Pass"] == "miss"
    assert queries == [], "the detail page reloaded a product the list page had cached"
    assert cache.get(datacache.product_key(product.pk))["name"] == product.name


def test_saving_a_product_replaces_its_cached_object(replicated):
    product = Product.objects.order_by("id").last()
    assert datacache.product(product.pk)["price"] == str(product.price)
    product.price += 1
    product.save()
    replicated()
    assert datacache.product(product.pk)["price"] == str(product.price)


def test_refresh_cache_rebuilds_the_shared_objects(capsys):
    cache.clear()
    call_command("refresh_cache")
    assert "refreshed 3 categories and 60 products" in capsys.readouterr().out
    client = Client()
    response, queries = product_queries(lambda: client.get("/c/cat-002/?page=2"))
    assert response.status_code == 200 and response["X-First-Pass"] == "miss"
    assert queries == [], "a page built after refresh_cache still queried products"
