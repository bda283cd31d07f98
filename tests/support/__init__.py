"""Helpers the tests share: data written in its real on-disk formats, runs written into a store
or built as records, tiny networks and batches. Fixtures live in tests/conftest.py; plain
functions live here, imported as `from support.<module> import ...` (pytest puts tests/ on the
path: `pythonpath` in pyproject.toml)."""
