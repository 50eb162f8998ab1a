"""The error raised for unusable data: an empty folder, an unreadable cache, a split that is not there."""

from __future__ import annotations


class DataError(ValueError):
    """Training or evaluation data cannot be used as configured; the message names the path and the fix."""
