"""``CachedModelBackend``: Django's ModelBackend, with ``get_user`` served from memcached.

Every request of a logged-in user needs its user row (the greeting, the session's auth hash check). Caching it
turns a database round trip into a memcached one. Saving or deleting a user writes the entry through from the
primary once the change is committed (a password change included, so the session hash check sees the new
password at once): forgetting it instead would let the next request cache the old row again from a replica that
has not applied the change yet. A miss is filled with ``add``, which never overwrites such a write-through.

A cached row is re-homed on the alias this request reads from: the alias pickled with it is the one of the node
that cached it, and after a promotion (one replica fewer) or during a rolling configuration change another node
may have no such alias; Django would then refuse to relate the user to anything (an order) on this node.
"""

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import router, transaction

from django_stack.dbfailover.databases import PRIMARY_ALIAS

TTL = 600


def user_key(pk) -> str:
    return f"accounts:user:{pk}"


class CachedModelBackend(ModelBackend):
    def get_user(self, user_id):
        key = user_key(user_id)
        user = cache.get(key)
        if user is not None:
            user._state.db = router.db_for_read(type(user))
        else:
            user = super().get_user(user_id)
            if user is not None:
                cache.add(key, user, TTL)
        return user if user is not None and self.user_can_authenticate(user) else None


def forget_user(sender, instance, **kwargs):
    pk = instance.pk

    def write_through():
        user = get_user_model()._default_manager.using(PRIMARY_ALIAS).filter(pk=pk).first()
        if user is None:
            cache.delete(user_key(pk))
        else:
            cache.set(user_key(pk), user, TTL)

    transaction.on_commit(write_through, using=PRIMARY_ALIAS)
