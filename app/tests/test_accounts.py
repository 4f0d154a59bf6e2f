"""The logged-in user comes from memcached, and a change to the user is seen at once."""

from django.contrib.auth import get_user_model

from tests.conftest import all_queries


def user_queries(client, path="/"):
    with all_queries() as queries:
        body = client.get(path).content
    return body, sum("auth_user" in sql for done in queries.values() for sql in done)


def test_the_user_row_is_cached_and_written_through_on_save(logged_in, replicated):
    client, user = logged_in()
    client.get("/")
    body, queries = user_queries(client)
    assert queries == 0 and user.username.encode() in body
    user.username = user.username + "-renamed"
    user.save()
    replicated()
    body, queries = user_queries(client)
    # The saved row went to the cache (from the primary) on commit: the next request needs no query.
    assert queries == 0 and user.username.encode() in body


def test_a_password_change_logs_other_sessions_out(logged_in, replicated):
    client, user = logged_in()
    assert user.username.encode() in client.get("/").content
    user = get_user_model().objects.get(pk=user.pk)
    user.set_password("another-long-password")
    user.save()
    replicated()
    assert b'href="/login/"' in client.get("/").content


def test_a_user_cached_by_a_node_with_other_replicas_can_still_check_out(logged_in, replicated):
    """The cached row carries the alias it was read from. After a promotion, web nodes whose configuration has
    fewer replicas (or a node mid-reload) read entries cached under an alias they do not have; that must not
    break a relation (an order's user) or send a query to an alias that does not exist."""
    from django.core.cache import cache

    from accounts.backends import user_key
    from catalog.models import Product
    from orders.models import Order
    from tests.conftest import CSRF_INPUT

    client, user = logged_in(enforce_csrf_checks=True)
    token = CSRF_INPUT.findall(client.get("/").content)[-1].decode()
    product = Product.objects.order_by("id").first()
    assert client.post("/cart/add/", {"product": product.pk, "csrfmiddlewaretoken": token}).status_code == 302
    cached = cache.get(user_key(user.pk))
    assert cached is not None
    cached._state.db = "replica_9"  # an alias of another topology, unknown here
    cache.set(user_key(user.pk), cached, 60)

    response = client.post("/orders/checkout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302, response.content[:300]
    assert Order.objects.using("default").filter(user=user).count() == 1
    replicated()
    assert client.get(response["Location"]).status_code == 200
