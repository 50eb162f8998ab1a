"""Where arforge keeps derived files it can rebuild (converted weights, trained helper models).

``$ARFORGE_CACHE`` if set, else ``$XDG_CACHE_HOME/arforge``, else ``~/.cache/arforge``. Everything in
it can be deleted at any time; it is recomputed on the next use.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(subdir: str | None = None) -> Path:
    """The arforge cache directory (or ``subdir`` inside it), created if missing."""
    root = os.environ.get("ARFORGE_CACHE")
    if root:
        path = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "arforge"
    if subdir:
        path = path / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path
