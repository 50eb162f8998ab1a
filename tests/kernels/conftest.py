"""Kernel tests run the Triton code on CPU through Triton's interpreter.

``TRITON_INTERPRET`` is read when a ``@triton.jit`` function is defined, i.e. when an
``arforge.kernels.*_triton`` module is first imported, which only these tests do; setting it here,
before any of them runs, is enough.
"""

import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _one_thread(one_intraop_thread):
    """Every kernel test runs on one intra-op thread (see tests/conftest.py)."""


def pytest_collection_modifyitems(items):
    pytest.importorskip("triton", reason="the Triton kernels are tested under TRITON_INTERPRET=1 and need triton installed")
