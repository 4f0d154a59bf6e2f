"""A MySQL/MariaDB backend that fails over between replicas of one primary, and then to the primary.

``DATABASES`` entries using ``dbfailover.backend`` carry a ``FAILOVER`` list: the addresses to try, in order
(see :func:`dbfailover.databases.build`). Hosts that failed are remembered as down for a cool-down
(:mod:`dbfailover.registry`).
"""
