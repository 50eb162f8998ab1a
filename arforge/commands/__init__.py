"""The command-line front ends (``arforge train|sample|eval|bench|quickstart``), one module each.

Each module exposes ``add_parser(subparsers)`` and is assembled by :mod:`arforge.cli`. Library code
never imports this package (an import-linter contract): what a command needs that is worth calling
from Python lives in the library (``arforge.auto``, ``arforge.samplers.folder``, ``arforge.quickstart``).
"""
