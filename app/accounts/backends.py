"""``CachedModelBackend``: Django's ModelBackend, with ``get_user`` served from memcached.

Every request of a logged-in user needs its user row (the greeting, the session's auth hash check). Caching it
turns a database round trip into a memcached one. Saving or deleting a user forgets the entry (a password
change included, so the session hash check sees the new password at once).

A cached row is re-homed on the alias this request reads from: the alias pickled with it is the one of the node
that cached it, and after a promotion (one replica fewer) or during a rolling configuration change another node
may have no such alias; Django would then refuse to relate the user to anything (an order) on this node.
"""

from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.db import router

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
                cache.set(key, user, TTL)
        return user if user is not None and self.user_can_authenticate(user) else None


def forget_user(sender, instance, **kwargs):
    cache.delete(user_key(instance.pk))
