"""The package's tests: the guestbook (tests/guestbook) on real servers started by django_stack.testing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from django_stack.fixtures import (  # noqa: F401 - fixtures pytest finds by name
    _real_database, primary_server, replicated, state_path, wait_for_replica,
)


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker, state_path):
    with django_db_blocker.unblock():
        call_command("migrate", database="default", interactive=False, verbosity=0)
        wait_for_replica()
