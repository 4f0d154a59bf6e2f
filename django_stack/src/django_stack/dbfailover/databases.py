"""Build Django's ``DATABASES`` from the configuration file's database section.

Aliases: ``default`` is the primary; ``replica_1`` … ``replica_N`` are its read replicas. Each replica alias
fails over to the next replicas in turn (replica_2 tries replica_3, then replica_1, …) and finally to the
primary, so the load of a dead replica spreads evenly instead of landing on one neighbour. The primary alias
has no fallback: writes go to the primary or nowhere. Replicas read with a shorter timeout
(``replica_read_timeout``): a replica that stops answering is failed over instead of holding the request.
"""

from __future__ import annotations

PRIMARY_ALIAS = "default"
ENGINE = "django_stack.dbfailover.backend"


def _address(host) -> dict:
    return {"HOST": host.host, "PORT": host.port, "USER": host.user, "PASSWORD": host.password}


def replica_alias(index: int) -> str:
    return f"replica_{index + 1}"


def build(db, *, engine: str = ENGINE) -> dict:
    """``db`` is a :class:`django_stack.config.DatabaseConfig`."""
    common = {
        "ENGINE": engine,
        "NAME": db.name,
        "CONN_MAX_AGE": db.conn_max_age,
        # A reused connection is pinged at the start of each request, so a replica that died between requests
        # is noticed (and failed over) before the view runs instead of failing its first query.
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "charset": "utf8mb4",
            "connect_timeout": db.connect_timeout,
            "read_timeout": db.read_timeout,
            "write_timeout": db.read_timeout,
            "isolation_level": "read committed",
        },
        "FAILOVER_COOLDOWN": db.down_cooldown,
    }
    primary = _address(db.primary)
    databases = {PRIMARY_ALIAS: {**common, **primary, "FAILOVER": [primary]}}
    replicas = [_address(r) for r in db.replicas]
    for i, replica in enumerate(replicas):
        in_turn = replicas[i:] + replicas[:i]
        databases[replica_alias(i)] = {
            **common,
            "OPTIONS": {**common["OPTIONS"], "read_timeout": db.replica_read_timeout,
                        "write_timeout": db.replica_read_timeout},
            **replica,
            "REPLICA_OF": PRIMARY_ALIAS,
            "FAILOVER": [*in_turn, primary],
        }
    return databases
