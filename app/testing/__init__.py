"""Real servers for the app's tests and benchmark: MariaDB primary and replica, memcached, nginx (WebDAV)."""
