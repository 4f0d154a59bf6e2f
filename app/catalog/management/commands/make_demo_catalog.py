"""Generate a deterministic demo catalog: ``manage.py make_demo_catalog [--products N] [--categories M]``.

Idempotent: products and categories are identified by their SKU and slug, existing ones are left alone, and
images already on the media servers are not uploaded again. The same arguments always produce the same names,
prices and images.
"""

from __future__ import annotations

import random
from decimal import Decimal

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction

from catalog import datacache
from catalog.images import product_png
from catalog.models import Category, Product
from django_stack.twopass import versions

ADJECTIVES = ["Sturdy", "Light", "Classic", "Compact", "Deluxe", "Rustic", "Modern", "Tiny", "Giant", "Quiet",
              "Bright", "Smooth", "Rugged", "Elegant", "Handy", "Swift"]
NOUNS = ["Lamp", "Chair", "Kettle", "Backpack", "Notebook", "Teapot", "Blanket", "Clock", "Mug", "Umbrella",
         "Scarf", "Basket", "Pillow", "Vase", "Jacket", "Boots", "Shelf", "Bottle", "Planter", "Radio"]
THEMES = ["Home", "Garden", "Kitchen", "Office", "Outdoor", "Travel", "Kids", "Sports", "Music", "Books",
          "Tools", "Lighting", "Textiles", "Storage", "Pets", "Bath", "Crafts", "Audio", "Games", "Decor"]


def category_name(i: int) -> str:
    return f"{THEMES[i % len(THEMES)]} {i // len(THEMES) + 1}"


class Command(BaseCommand):
    help = "Create a deterministic demo catalog (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=10_000)
        parser.add_argument("--categories", type=int, default=100)
        parser.add_argument("--no-images", action="store_true", help="do not upload product images")

    def handle(self, *args, products, categories, no_images, **options):
        if products < 0 or categories < 1:
            self.stderr.write("--products must be >= 0 and --categories >= 1")
            raise SystemExit(2)
        existing_cats = {c.slug: c for c in Category.objects.using("default")}
        new_cats = []
        for i in range(categories):
            name = category_name(i)
            slug = f"cat-{i + 1:03d}"
            if slug not in existing_cats:
                new_cats.append(Category(name=name, slug=slug, position=i))
        with transaction.atomic(using="default"):
            Category.objects.bulk_create(new_cats, batch_size=500)
        cats = list(Category.objects.using("default").filter(slug__startswith="cat-").order_by("position"))[:categories]

        existing = set(Product.objects.using("default").values_list("sku", flat=True))
        created = 0
        batch = []
        for i in range(products):
            sku = f"SKU-{i + 1:06d}"
            if sku in existing:
                continue
            rng = random.Random(sku)
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i + 1}"
            words = [rng.choice(ADJECTIVES).lower() for _ in range(30)]
            batch.append(Product(
                category=cats[i % len(cats)],
                sku=sku,
                name=name,
                slug=name.lower().replace(" ", "-"),
                description=f"A {name.lower()} for every day. " + " ".join(words) + ".",
                price=Decimal(rng.randrange(199, 49_999)) / 100,
                image="" if no_images else f"products/{sku.lower()}.png",
            ))
            if len(batch) >= 1000:
                created += self._store(batch, no_images)
                batch = []
        if batch:
            created += self._store(batch, no_images)
        # bulk_create sends no signals: invalidate what lists products, and only when something was created (a
        # re-run of site.yml must not make every cached page stale and rebuild every shared object under load).
        if new_cats or created:
            datacache.refresh()
            versions.bump("catalog", "categories", *(f"category:{c.pk}" for c in cats))
        self.stdout.write(f"demo catalog: {len(new_cats)} categories and {created} products created, "
                          f"{len(existing)} products already there")

    def _store(self, batch, no_images) -> int:
        if not no_images:
            storage = Product._meta.get_field("image").storage
            for product in batch:
                name = product.image.name
                if not storage.exists(name):
                    stored = storage.save(name, ContentFile(product_png(product.sku)))
                    product.image = stored
        with transaction.atomic(using="default"):
            Product.objects.bulk_create(batch, batch_size=500)
        return len(batch)
