"""A Django cache backend for python-memcached (Django 4.1 removed its own)."""
