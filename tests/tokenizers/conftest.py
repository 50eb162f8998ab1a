"""Tokenizer tests run their tiny models on one intra-op thread.

On the shared 2-core CI machine, two OpenMP threads competing with other processes made these
small convolutions about 8x slower than one thread (measured); one thread also leaves the other
core to the rest of the suite. The previous setting is restored after each test.
"""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_intraop_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""
