"""The package's tests: the guestbook (tests/guestbook) on real servers started by django_stack.testing."""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections

from django_stack import testing
from django_stack.dbfailover import registry


@pytest.fixture(scope="session")
def state_path() -> str:
    path = os.environ.get("STACK_TEST_STATE")
    if not path:
        pytest.exit("run through django_stack.testing: APP_TEST_DIR=django_stack scripts/app-test.sh pytest", 2)
    return path


@pytest.fixture(scope="session")
def primary_server(state_path):
    return testing.Handle(state_path, "primary")


def wait_for_replica(timeout: int = 20) -> None:
    """Wait until the replica has applied everything the primary has committed so far."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT @@gtid_binlog_pos")
        (position,) = cursor.fetchone()
    with connections["replica_1"].cursor() as cursor:
        cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s)", [position, timeout])
        (result,) = cursor.fetchone()
    assert result == 0, f"the replica did not reach {position} within {timeout}s"


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker, state_path):
    with django_db_blocker.unblock():
        call_command("migrate", database="default", interactive=False, verbosity=0)
        wait_for_replica()


@pytest.fixture(autouse=True)
def _real_database(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        registry.clear()
        cache.clear()
        yield
        for connection in connections.all():
            connection.close()
        registry.clear()


@pytest.fixture
def replicated():
    return wait_for_replica
