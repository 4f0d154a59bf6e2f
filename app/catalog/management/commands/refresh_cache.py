"""Rebuild the shared cached objects (categories, product id lists, every product's view data).

Scheduled on one web node by the deploy, more often than the entries' lifetime, so they rarely expire under
load. Reads go to a replica like any other read.
"""

from django.core.management.base import BaseCommand

from catalog import datacache


class Command(BaseCommand):
    help = "Rebuild the cached catalog objects."

    def handle(self, *args, **options):
        counts = datacache.refresh()
        self.stdout.write(f"refreshed {counts['categories']} categories and {counts['products']} products")
