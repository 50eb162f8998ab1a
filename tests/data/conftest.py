"""Fixtures for the data tests: one intra-op thread, and a capture of arforge's log records."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_intraop_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.WARNING]


@pytest.fixture
def arforge_log():
    """Records logged under ``arforge`` (attached directly, so it works whatever handlers the CLI set up)."""
    handler = _Records()
    logger = logging.getLogger("arforge")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
