"""User media live on the media server (nginx WebDAV), uploaded over HTTP, never on a web node's disk."""

import json
import re
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client

from catalog.images import product_png
from catalog.models import Product
from django_stack.mediastore.storage import MediaServerStorage


@pytest.fixture
def media_root(state_path):
    return Path(json.loads(Path(state_path).read_text())["base"]) / "media"


def test_save_puts_the_file_on_the_media_server(media_root):
    name = default_storage.save("tests/hello.txt", ContentFile(b"hello media"))
    assert (media_root / name).read_bytes() == b"hello media"
    assert default_storage.exists(name) and default_storage.size(name) == 11
    with urllib.request.urlopen(default_storage.url(name)) as response:
        assert response.read() == b"hello media"
    assert default_storage.open(name).read() == b"hello media"
    # Same name again: Django's rule, a new name, the first file kept.
    second = default_storage.save("tests/hello.txt", ContentFile(b"again"))
    assert second != name and (media_root / name).read_bytes() == b"hello media"
    default_storage.delete(name)
    default_storage.delete(second)
    assert not (media_root / name).exists() and not default_storage.exists(name)


def test_names_cannot_escape_the_media_location():
    from django.core.exceptions import SuspiciousFileOperation

    with pytest.raises(SuspiciousFileOperation):
        default_storage.save("../outside.txt", ContentFile(b"x"))


def test_there_is_no_local_path():
    with pytest.raises(NotImplementedError):
        default_storage.path("products/x.png")


def test_an_upload_through_the_admin_lands_on_the_media_server(media_root, replicated, tmp_path, monkeypatch):
    # Nothing may be written locally: make any temporary upload file fail loudly.
    import django.core.files.uploadedfile as uploaded

    monkeypatch.setattr(uploaded.TemporaryUploadedFile, "__init__",
                        lambda *a, **k: pytest.fail("an upload was spooled to local disk"))
    admin = get_user_model().objects.create_superuser("admin-media", "a@example.com", "a-long-test-password")
    replicated()
    client = Client()
    client.force_login(admin)
    product = Product.objects.order_by("id").first()
    png = product_png("uploaded")
    upload = ContentFile(png, name="photo.png")
    response = client.post(f"/admin/catalog/product/{product.pk}/change/", {
        "category": product.category_id, "sku": product.sku, "name": product.name, "slug": product.slug,
        "description": product.description, "price": product.price, "image": upload,
    })
    assert response.status_code == 302, re.findall(rb'class="errorlist[^>]*>(.*?)</ul>', response.content)
    product.refresh_from_db()
    assert product.image.name.startswith("products/photo")
    assert (media_root / product.image.name).read_bytes() == png
    with urllib.request.urlopen(product.image.url) as served:
        assert served.read() == png


def test_the_demo_catalog_images_are_on_the_media_server_and_regeneration_is_idempotent(media_root, capsys):
    product = Product.objects.get(sku="SKU-000007")
    assert (media_root / product.image.name).read_bytes() == product_png("SKU-000007")
    before = Product.objects.count()
    call_command("make_demo_catalog", products=60, categories=3)
    assert Product.objects.count() == before
    assert "0 categories and 0 products created" in capsys.readouterr().out


def test_a_demo_catalog_rerun_that_creates_nothing_leaves_the_caches_alone(capsys):
    """site.yml runs the command on every converge: with nothing to create it must not make every cached page
    stale (a no-change converge under load would rebuild them all)."""
    from django_stack.twopass import versions

    call_command("make_demo_catalog", products=60, categories=3)
    stamps = versions.get("catalog", "categories")
    call_command("make_demo_catalog", products=60, categories=3)
    assert versions.get("catalog", "categories") == stamps
    try:
        call_command("make_demo_catalog", products=61, categories=3, no_images=True)
        assert "1 products created" in capsys.readouterr().out
        assert versions.get("catalog", "categories") != stamps
    finally:
        Product.objects.using("default").filter(sku="SKU-000061").delete()


def test_storage_reports_a_media_server_that_is_down(refused_port):
    storage = MediaServerStorage(servers=[f"http://127.0.0.1:{refused_port}/media/"], timeout=1)
    with pytest.raises(OSError, match="media server"):
        storage.save("x.txt", ContentFile(b"x"))
