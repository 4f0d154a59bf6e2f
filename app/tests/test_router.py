"""Replica routing: writes to the primary, reads over replicas in turn, read-your-writes, relations."""

import time

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.test import Client
from django.test.utils import override_settings

from catalog.models import Category, Product
from django_stack.replicas.router import ReplicaRouter
from tests.conftest import all_queries, swapped_databases


def product_reads(client, path):
    """Which aliases answered the catalog reads of a request."""
    with all_queries() as queries:
        response = client.get(path)
    assert response.status_code == 200
    return {alias for alias, done in queries.items() if any("catalog_product" in sql for sql in done)}


def test_writes_and_migrations_go_to_the_primary():
    router = ReplicaRouter()
    assert router.db_for_write(Product) == "default"
    assert router.allow_migrate("default", "catalog") is True
    assert router.allow_migrate("replica_1", "catalog") is False


def test_reads_go_to_replicas_in_turn(real_replica):
    with swapped_databases([real_replica, real_replica, real_replica]):
        router = ReplicaRouter()
        picks = [router.db_for_read(Product) for _ in range(6)]
    start = picks.index("replica_1")
    assert picks[start:start + 3] == ["replica_1", "replica_2", "replica_3"]


def test_one_request_reads_from_one_replica():
    client = Client()
    assert product_reads(client, "/?page=2") == {"replica_1"}


def test_reads_inside_a_transaction_stay_on_the_primary():
    router = ReplicaRouter()
    assert router.db_for_read(Product) == "replica_1"
    with transaction.atomic(using="default"):
        assert router.db_for_read(Product) == "default"


def test_objects_from_primary_and_replica_may_be_related():
    # The talk's allow_relation never matched; here two copies of the same data always may relate.
    from_primary = Category.objects.using("default").first()
    from_replica = Product.objects.using("replica_1").first()
    assert ReplicaRouter().allow_relation(from_primary, from_replica) is True
    from_replica.category = from_primary  # would raise ValueError if the router refused


def test_a_user_reads_their_own_writes_from_the_primary_for_a_while(logged_in):
    with override_settings(STACK_READ_YOUR_WRITES_SECONDS=2):
        client, _ = logged_in()  # logging in writes the session: pinned
        assert settings.STACK_READ_YOUR_WRITES_COOKIE in client.cookies
        assert product_reads(client, "/?page=3") == {"default"}
        time.sleep(2.2)
        assert product_reads(client, "/?page=4") == {"replica_1"}
        # Another user, who wrote nothing, reads from the replica all along.
        assert product_reads(Client(), "/?page=5") == {"replica_1"}


def test_a_forged_pin_cookie_is_ignored():
    client = Client()
    client.cookies[settings.STACK_READ_YOUR_WRITES_COOKIE] = "1"
    assert product_reads(client, "/?page=2") == {"replica_1"}


def test_a_pin_set_by_the_release_before_the_package_still_pins():
    """During the rolling deploy that brings django_stack, a node on the old release set the pin: its name
    (shop_pin) and signing salt (replicas.pin) are the ones the new release reads."""
    client = Client()
    client.cookies["shop_pin"] = signing.get_cookie_signer(salt="shop_pin" + "replicas.pin").sign("1")
    assert product_reads(client, "/?page=2") == {"default"}
