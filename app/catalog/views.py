"""Catalog pages: the whole catalog, one category, one product. All three are two-pass pages."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect

from catalog import datacache
from django_stack.twopass.views import SinglePassMixin, TwoPassView


def page_number(request) -> int:
    raw = request.GET.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise Http404("no such page")
    return int(raw)


class ProductListView(TwoPassView):
    """A paginated list of products. ``cached=False`` reads everything from the database (benchmark)."""

    template_name = "catalog/product_list.html"
    cached = True

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.page = page_number(request)

    def get_ids(self) -> list[int]:
        raise NotImplementedError

    def list_context(self) -> dict:
        return {}

    def get_page_size(self) -> int:
        return settings.SHOP_PAGE_SIZE

    def get_shared_context(self) -> dict:
        ids = self.get_ids()
        size = self.get_page_size()
        pages = max(1, math.ceil(len(ids) / size))
        if self.page > pages:
            raise Http404("no such page")
        start = (self.page - 1) * size
        return {
            "categories": datacache.categories(cached=self.cached),
            "products": datacache.products(ids[start:start + size], cached=self.cached),
            "page": self.page,
            "pages": pages,
            "total": len(ids),
            "previous_page": self.page - 1 if self.page > 1 else None,
            "next_page": self.page + 1 if self.page < pages else None,
            # Where "add to cart" comes back to: this page, the same for everyone.
            "next_url": self.request.path + (f"?page={self.page}" if self.page > 1 else ""),
            **self.list_context(),
        }


class CatalogView(ProductListView):
    def get_ids(self):
        return datacache.all_ids(cached=self.cached)

    def list_context(self):
        return {"title": "All products"}

    def get_cache_key(self):
        return f"catalog:page:{self.page}"

    def get_dependencies(self):
        return ("categories", "catalog")


class CategoryView(ProductListView):
    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.category = datacache.category_by_slug(kwargs["slug"], cached=self.cached)
        if self.category is None:
            raise Http404("no such category")

    def get_ids(self):
        return datacache.category_ids(self.category["id"], cached=self.cached)

    def list_context(self):
        return {"title": self.category["name"], "category": self.category}

    def get_cache_key(self):
        return f"category:{self.category['id']}:page:{self.page}"

    def get_dependencies(self):
        return ("categories", f"category:{self.category['id']}")


class ProductView(TwoPassView):
    template_name = "catalog/product_detail.html"

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.product = datacache.product(kwargs["pk"])
        if self.product is None:
            raise Http404("no such product")

    def get(self, request, *args, **kwargs):
        if kwargs["slug"] != self.product["slug"]:
            return redirect(self.product["url"], permanent=True)
        return super().get(request, *args, **kwargs)

    def get_shared_context(self):
        return {"categories": datacache.categories(), "product": self.product, "title": self.product["name"]}

    def get_cache_key(self):
        return f"product:{self.product['id']}"

    def get_dependencies(self):
        return ("categories", f"product:{self.product['id']}")


# The benchmark's other strategies for the same page (mounted only by shop.urls_bench, never in production).
class UncachedCatalogView(SinglePassMixin, CatalogView):
    """No data cache, no page cache: every request queries and renders everything."""

    cached = False


class SinglePassCatalogView(SinglePassMixin, CatalogView):
    """Rendered whole for each request (with the data cache); wrapped in cache_page by the benchmark URLs."""
