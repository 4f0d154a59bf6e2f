"""``/healthz`` for the load balancer."""
