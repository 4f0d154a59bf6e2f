"""Checkout: turn the cart into an order, written in one transaction on the primary."""
