"""The stack's Django pieces: what a project needs to run on the tiered stack the Ansible roles build.

Failover database backend, replica router with read-your-writes, two-pass cached views, the python-memcached
cache backend, media storage on the media tier, zero-downtime migration rules, scheduled jobs under a lock,
``/healthz``, and the reader of the configuration file the roles write. See README.md for the settings.
"""

__version__ = "0.1.0"
