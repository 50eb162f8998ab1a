"""Logging set-up: ``rich`` handler when available, plain stream handler otherwise."""

from __future__ import annotations

import logging


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the ``arforge`` logger once (idempotent); other libraries keep their levels."""
    logger = logging.getLogger("arforge")
    logger.setLevel(level)
    if logger.handlers:
        return
    try:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    except ImportError:  # pragma: no cover - rich is a dependency
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
