"""Kernel tests run the Triton code on CPU through Triton's interpreter (``TRITON_INTERPRET=1``, set
in ``tests/conftest.py`` before anything can import Triton)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_intraop_thread):
    """Every kernel test runs on one intra-op thread (see tests/conftest.py)."""


def pytest_collection_modifyitems(items):
    pytest.importorskip("triton", reason="the Triton kernels are tested under TRITON_INTERPRET=1 and need triton installed")
