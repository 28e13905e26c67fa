"""What several test files share: generated images, tiny stores and runs, crafted files.

`tests/` is on the path (pyproject.toml, pytest's `pythonpath`), so tests import
`helpers.images`, `helpers.runs` and so on; `conftest.py` turns the common ones into fixtures.
"""
