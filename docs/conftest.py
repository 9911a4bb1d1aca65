"""Collects the documentation's code blocks into the test suite (see tests/docs_examples.py)."""

import pytest

from tests import docs_examples

pytest_collect_file = docs_examples.sybil().pytest()


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    docs_examples.mark_live(items)
