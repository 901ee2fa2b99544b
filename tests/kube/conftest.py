"""The cluster fixtures live in tests/support/cluster.py (a plugin loaded by tests/conftest.py)."""
