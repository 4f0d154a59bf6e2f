"""Benchmarks of the app, run on the test bench's real servers (scripts/app-test.sh python -m bench.strategies)."""
