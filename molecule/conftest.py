"""Loaded by pytest for every scenario's testinfra modules; it puts molecule/ on sys.path, so the modules
import the shared helpers with `from stacktest import ...`."""
