"""Route reads to the primary's replicas and writes to the primary, with read-your-writes for each user."""
