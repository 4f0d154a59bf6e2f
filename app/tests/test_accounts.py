"""The logged-in user comes from memcached, and a change to the user is seen at once."""

from django.contrib.auth import get_user_model

from tests.conftest import all_queries


def user_queries(client, path="/"):
    with all_queries() as queries:
        body = client.get(path).content
    return body, sum("auth_user" in sql for done in queries.values() for sql in done)


def test_the_user_row_is_cached_and_forgotten_on_save(logged_in, replicated):
    client, user = logged_in()
    client.get("/")
    body, queries = user_queries(client)
    assert queries == 0 and user.username.encode() in body
    user.username = user.username + "-renamed"
    user.save()
    replicated()
    body, queries = user_queries(client)
    assert queries == 1 and user.username.encode() in body


def test_a_password_change_logs_other_sessions_out(logged_in, replicated):
    client, user = logged_in()
    assert user.username.encode() in client.get("/").content
    user = get_user_model().objects.get(pk=user.pk)
    user.set_password("another-long-password")
    user.save()
    replicated()
    assert b'href="/login/"' in client.get("/").content
