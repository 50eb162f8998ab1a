"""Users' own pieces (samplers, orders, tokenizers, generator families, tasks, benchmarks) loaded from
their own files, so that the command line can use them without an edit inside ``arforge/``.

A plug-in is an ordinary Python module that registers what it defines when it is imported
(``@register_sampler``, ``@register_order``, ``@register_model``, ``TASKS.register``, ...). It is
loaded by

* ``arforge train|sample|eval|bench --import MODULE_OR_FILE`` (repeatable; a dotted module name
  importable from ``sys.path``, or a path to a ``.py`` file), or ``imports:`` in a training YAML;
* the ``arforge.plugins`` entry-point group of any installed distribution, e.g. in its
  ``pyproject.toml``::

      [project.entry-points."arforge.plugins"]
      my_sampler = "my_package.sampler"

Loading the same plug-in twice in one process returns the module loaded the first time.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

from arforge.config import ConfigError

log = logging.getLogger(__name__)

#: entry-point group whose entries are imported by every ``arforge`` command
ENTRY_POINT_GROUP = "arforge.plugins"


def import_plugin(spec: str) -> ModuleType:
    """Import the plug-in ``spec`` (a ``.py`` file path or a dotted module name) and return it.

    Raises :class:`ConfigError` naming ``spec`` when the file does not exist or the module cannot be
    imported (the error it raised is quoted)."""
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"cannot import '{spec}': no such file (give a .py file or an importable module name)")
        return _import_file(path.resolve())
    try:
        return importlib.import_module(spec)
    except ImportError as err:
        raise ConfigError(f"cannot import '{spec}' ({err}); give a .py file or a module on sys.path") from err


def _import_file(path: Path) -> ModuleType:
    name = f"arforge_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import '{path}': not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing: dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    log.debug("loaded plug-in %s as %s", path, name)
    return module


def load_entry_point_plugins() -> list[str]:
    """Import every module registered in the ``arforge.plugins`` entry-point group; returns their names."""
    loaded = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
        loaded.append(entry.name)
    return loaded
