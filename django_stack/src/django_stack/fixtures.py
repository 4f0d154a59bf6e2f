"""pytest fixtures for a project's tests against the servers of ``python -m django_stack.testing``.

Import the ones you need into your conftest.py (``from django_stack.fixtures import ...``); define your own
``django_db_setup`` (migrate, load data, then ``wait_for_replica()``). Tests commit for real (no wrapping
transaction): the replica must see what the primary wrote.
"""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from django.db import connections

from django_stack import testing
from django_stack.dbfailover import registry


@pytest.fixture(scope="session")
def state_path() -> str:
    path = os.environ.get("STACK_TEST_STATE")
    if not path:
        pytest.exit("run the tests through the servers of django_stack.testing: scripts/app-test.sh pytest", 2)
    return path


@pytest.fixture(scope="session")
def primary_server(state_path):
    return testing.Handle(state_path, "primary")


@pytest.fixture(scope="session")
def replica_server(state_path):
    return testing.Handle(state_path, "replica")


@pytest.fixture(scope="session")
def cache_server(state_path):
    return testing.Handle(state_path, "cache")


def wait_for_replica(timeout: int = 20) -> None:
    """Wait until the replica has applied everything the primary has committed so far."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT @@gtid_binlog_pos")
        (position,) = cursor.fetchone()
    with connections["replica_1"].cursor() as cursor:
        cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s)", [position, timeout])
        (result,) = cursor.fetchone()
    assert result == 0, f"the replica did not reach {position} within {timeout}s"


@pytest.fixture(autouse=True)
def _real_database(django_db_setup, django_db_blocker):
    """Every test may use the real databases; the failover registry and the cache start empty."""
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
