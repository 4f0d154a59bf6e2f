"""`make bench`: benchmarks and fault injection against a running lab (see bench/README.md)."""
