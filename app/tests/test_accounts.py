"""The logged-in user comes from memcached, and a change to the user is seen at once."""

from django.contrib.auth import get_user_model
from django.db import connections
from django.test.utils import CaptureQueriesContext


def user_queries(client, path="/"):
    contexts = [CaptureQueriesContext(c) for c in connections.all()]
    for c in contexts:
        c.__enter__()
    try:
        body = client.get(path).content
    finally:
        for c in contexts:
            c.__exit__(None, None, None)
    return body, sum("auth_user" in q["sql"] for c in contexts for q in c.captured_queries)


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
