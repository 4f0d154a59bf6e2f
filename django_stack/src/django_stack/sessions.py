"""Sessions: Django's cached_db engine, but a database that cannot be reached is reported as such.

Django turns any database error while saving a session into ``UpdateError`` and then a 400 "session
interrupted". When the primary is down (or read-only) that would hide the real cause; here the database error
itself is raised, so django_stack.errors answers with the 503 "read-only for now" page.
"""

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import UpdateError

from django_stack.dbfailover.backend.base import is_connection_error, is_read_only_error


class SessionStore(cached_db.SessionStore):
    def save(self, must_create=False):
        try:
            super().save(must_create=must_create)
        except UpdateError as exc:
            cause = exc.__context__
            if cause is not None and (is_connection_error(cause) or is_read_only_error(cause)):
                raise cause from None
            raise
