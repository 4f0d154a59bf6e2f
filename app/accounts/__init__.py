"""Accounts: Django's users, with the logged-in user's row cached between requests."""
