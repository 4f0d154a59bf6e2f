"""The shopping cart, kept in the user's session (cached in memcached, stored in the database)."""
