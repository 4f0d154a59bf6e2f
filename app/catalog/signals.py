"""Refresh cached data and first-pass pages when the catalog changes.

Once the change is committed (before that, a concurrent request could re-cache the old row), the data cache's
entries are written through from the primary, then the pages' versions are bumped: the page rebuilt next reads
the new data from the cache, never from a replica that has not applied the change yet.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog import datacache
from catalog.models import Category, Product
from django_stack.twopass import versions


def catalog_versions_for_product(pk: int, category_ids) -> list[str]:
    return ["catalog", f"product:{pk}", *(f"category:{c}" for c in category_ids)]


def _after_commit(func):
    # Invalidate once the change is committed: before that, a concurrent request could re-cache the old row.
    transaction.on_commit(func, using="default")


@receiver([post_save, post_delete], sender=Product, dispatch_uid="catalog.product_changed")
def product_changed(sender, instance, signal, created=False, **kwargs):
    loaded = getattr(instance, "_loaded_category_id", None)
    touched = {instance.category_id, loaded} - {None}
    lists = created or signal is post_delete or (loaded is not None and loaded != instance.category_id)

    def invalidate():
        datacache.write_through_product(instance.pk, touched, lists=lists)
        versions.bump(*catalog_versions_for_product(instance.pk, touched))

    _after_commit(invalidate)


@receiver([post_save, post_delete], sender=Category, dispatch_uid="catalog.category_changed")
def category_changed(sender, instance, **kwargs):
    def invalidate():
        datacache.write_through_category(instance.pk)
        # Every page shows the category menu: "categories" is a dependency of all of them.
        versions.bump("catalog", "categories", f"category:{instance.pk}")

    _after_commit(invalidate)
