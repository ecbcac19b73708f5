"""Property tests share the small search spaces of `tests/spaces.py` (``from tests.spaces import ...``;
the repository root is on ``sys.path`` through ``pythonpath`` in ``pyproject.toml``)."""
