"""Data caching of shared objects: each product's view data and each category's product id list.

Every page that shows a product (catalog list, category list, product detail, cart) gets it from here, one
cache entry per product, fetched for a whole page in one ``get_many``; misses are loaded in one query and
stored with ``add`` (a fill never overwrites a newer value written meanwhile). Saving or deleting a product or
category writes its entries through, **from the primary**, once the change is committed (``catalog.signals``):
reloading them from a replica that has not applied the change yet would cache the old row for the whole TTL.
``manage.py refresh_cache`` rebuilds the hot ones on a schedule, from the primary too, so they rarely expire
under load.

``cached=False`` everywhere reads straight from the database: the "uncached" strategy of the benchmark.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count

from catalog.models import Category, Product
from django_stack.dbfailover.databases import PRIMARY_ALIAS

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


def _products_qs(using=None):
    return Product.objects.using(using) if using else Product.objects.all()


def _load_products(ids, using=None) -> dict[int, dict]:
    rows = _products_qs(using).filter(pk__in=list(ids)).select_related("category")
    return {p.pk: product_data(p) for p in rows}


def _fill(key, value) -> None:
    # add(), not set(): a write-through of a newer value (a save committed while this request read a replica)
    # must not be overwritten by what this request read.
    cache.add(key, value, TTL)


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
        for i, data in loaded.items():
            _fill(product_key(i), data)
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
        _fill(category_ids_key(category_id), ids)
    return ids


def all_ids(*, cached: bool = True) -> list[int]:
    if not cached:
        return _ids(Product.objects.all())
    ids = cache.get(ALL_IDS_KEY)
    if ids is None:
        ids = _ids(Product.objects.all())
        _fill(ALL_IDS_KEY, ids)
    return ids


def _load_categories(using=None) -> list[dict]:
    rows = (Category.objects.using(using) if using else Category.objects.all()).annotate(product_count=Count("products")).order_by("position", "name")
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
        _fill(CATEGORIES_KEY, found)
    return found


def category_by_slug(slug: str, *, cached: bool = True) -> dict | None:
    return next((c for c in categories(cached=cached) if c["slug"] == slug), None)


def write_through_product(pk: int, category_ids_touched, *, lists: bool) -> None:
    """After a committed change of product ``pk``: its entry from the primary (gone if it was deleted), and, when
    ``lists`` (created, deleted, moved to another category), the lists that show it."""
    data = _load_products([pk], using=PRIMARY_ALIAS).get(pk)
    if data is None:
        cache.delete(product_key(pk))
    else:
        cache.set(product_key(pk), data, TTL)
    if lists:
        _write_through_lists(category_ids_touched)


def _write_through_lists(category_ids) -> None:
    primary = _products_qs(PRIMARY_ALIAS)
    entries = {ALL_IDS_KEY: _ids(primary), CATEGORIES_KEY: _load_categories(PRIMARY_ALIAS)}
    for c in category_ids:
        entries[category_ids_key(c)] = _ids(primary.filter(category_id=c))
    cache.set_many(entries, TTL)


def write_through_category(category_id: int) -> None:
    """After a committed change of a category: the menu, its list and its products' entries (they carry the
    category's name and slug), from the primary."""
    _write_through_lists([category_id])
    ids = _ids(_products_qs(PRIMARY_ALIAS).filter(category_id=category_id))
    for start in range(0, len(ids), 500):
        loaded = _load_products(ids[start:start + 500], using=PRIMARY_ALIAS)
        cache.set_many({product_key(i): data for i, data in loaded.items()}, TTL)


def refresh(chunk: int = 500) -> dict:
    """Rebuild every shared object from the primary (the scheduled ``refresh_cache`` job): a lagging replica
    would put old rows back over newer ones."""
    cats = _load_categories(PRIMARY_ALIAS)
    cache.set(CATEGORIES_KEY, cats, TTL)
    primary = _products_qs(PRIMARY_ALIAS)
    everything = _ids(primary)
    cache.set(ALL_IDS_KEY, everything, TTL)
    for category in cats:
        cache.set(category_ids_key(category["id"]), _ids(primary.filter(category_id=category["id"])), TTL)
    for start in range(0, len(everything), chunk):
        loaded = _load_products(everything[start:start + chunk], using=PRIMARY_ALIAS)
        cache.set_many({product_key(i): data for i, data in loaded.items()}, TTL)
    return {"categories": len(cats), "products": len(everything)}
