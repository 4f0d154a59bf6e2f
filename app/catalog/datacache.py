"""Data caching of shared objects: each product's view data and each category's product id list.

Every page that shows a product (catalog list, category list, product detail, cart) gets it from here, one
cache entry per product, fetched for a whole page in one ``get_many``; misses are loaded in one query and
stored. Saving or deleting a product or category invalidates its entries (``catalog.signals``), and
``manage.py refresh_cache`` rebuilds the hot ones on a schedule so they rarely expire under load.

``cached=False`` everywhere reads straight from the database: the "uncached" strategy of the benchmark.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count

from catalog.models import Category, Product

TTL = 6 * 3600
# Bump when the shape of the cached data changes: a new release never reads an old release's entries.
SCHEMA = 1


def product_key(pk: int) -> str:
    return f"catalog:{SCHEMA}:product:{pk}"


def category_ids_key(category_id: int) -> str:
    return f"catalog:{SCHEMA}:category:{category_id}:ids"


ALL_IDS_KEY = f"catalog:{SCHEMA}:all:ids"
CATEGORIES_KEY = f"catalog:{SCHEMA}:categories"


def product_data(product: Product) -> dict:
    category = product.category
    return {
        "id": product.pk,
        "sku": product.sku,
        "name": product.name,
        "slug": product.slug,
        "description": product.description,
        "price": str(product.price),
        "image_url": product.image.url if product.image else "",
        "url": product.get_absolute_url(),
        "category_id": category.pk,
        "category_name": category.name,
        "category_slug": category.slug,
    }


def _load_products(ids) -> dict[int, dict]:
    return {p.pk: product_data(p) for p in Product.objects.filter(pk__in=list(ids)).select_related("category")}


def products(ids, *, cached: bool = True) -> list[dict]:
    """View data of the products ``ids``, in that order (products that no longer exist are left out)."""
    ids = list(ids)
    if not cached:
        found = _load_products(ids)
        return [found[i] for i in ids if i in found]
    keys = {product_key(i): i for i in ids}
    hits = cache.get_many(keys.keys())
    found = {keys[k]: v for k, v in hits.items()}
    missing = [i for i in ids if i not in found]
    if missing:
        loaded = _load_products(missing)
        cache.set_many({product_key(i): data for i, data in loaded.items()}, TTL)
        found.update(loaded)
    return [found[i] for i in ids if i in found]


def product(pk: int, *, cached: bool = True) -> dict | None:
    found = products([pk], cached=cached)
    return found[0] if found else None


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("id").values_list("id", flat=True))


def category_ids(category_id: int, *, cached: bool = True) -> list[int]:
    if not cached:
        return _ids(Product.objects.filter(category_id=category_id))
    ids = cache.get(category_ids_key(category_id))
    if ids is None:
        ids = _ids(Product.objects.filter(category_id=category_id))
        cache.set(category_ids_key(category_id), ids, TTL)
    return ids


def all_ids(*, cached: bool = True) -> list[int]:
    if not cached:
        return _ids(Product.objects.all())
    ids = cache.get(ALL_IDS_KEY)
    if ids is None:
        ids = _ids(Product.objects.all())
        cache.set(ALL_IDS_KEY, ids, TTL)
    return ids


def _load_categories() -> list[dict]:
    rows = Category.objects.annotate(product_count=Count("products")).order_by("position", "name")
    return [
        {"id": c.pk, "name": c.name, "slug": c.slug, "url": c.get_absolute_url(), "count": c.product_count}
        for c in rows
    ]


def categories(*, cached: bool = True) -> list[dict]:
    if not cached:
        return _load_categories()
    found = cache.get(CATEGORIES_KEY)
    if found is None:
        found = _load_categories()
        cache.set(CATEGORIES_KEY, found, TTL)
    return found


def category_by_slug(slug: str, *, cached: bool = True) -> dict | None:
    return next((c for c in categories(cached=cached) if c["slug"] == slug), None)


def forget_product(pk: int, category_ids_touched) -> None:
    cache.delete_many(
        [product_key(pk), ALL_IDS_KEY, CATEGORIES_KEY, *(category_ids_key(c) for c in category_ids_touched)]
    )


def forget_category(category_id: int) -> None:
    # Product entries carry their category's name and slug: they go too.
    ids = _ids(Product.objects.filter(category_id=category_id))
    cache.delete_many([CATEGORIES_KEY, ALL_IDS_KEY, category_ids_key(category_id), *map(product_key, ids)])


def refresh(chunk: int = 500) -> dict:
    """Rebuild every shared object from the database (the scheduled ``refresh_cache`` job)."""
    cats = _load_categories()
    cache.set(CATEGORIES_KEY, cats, TTL)
    everything = _ids(Product.objects.all())
    cache.set(ALL_IDS_KEY, everything, TTL)
    for category in cats:
        cache.set(category_ids_key(category["id"]), _ids(Product.objects.filter(category_id=category["id"])), TTL)
    for start in range(0, len(everything), chunk):
        loaded = _load_products(everything[start:start + chunk])
        cache.set_many({product_key(i): data for i, data in loaded.items()}, TTL)
    return {"categories": len(cats), "products": len(everything)}
