"""Test helpers (importable; fixtures live in conftest.py only)."""
