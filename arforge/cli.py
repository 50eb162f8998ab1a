"""The ``arforge`` command line: ``train | sample | eval | bench | quickstart``.

Each sub-command is a module of :mod:`arforge.commands` with an ``add_parser(subparsers)`` function;
this module assembles them, loads plug-ins (``--import MODULE_OR_FILE`` anywhere on the command line,
and the ``arforge.plugins`` entry points: :mod:`arforge.plugins`) before the parser is built, so that
a plug-in's sampler, order, task or benchmark is known to every command, and maps known errors to a
one-line message and exit code 2 (no Python traceback for user mistakes).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from arforge import __version__

#: module path of every sub-command; each exposes ``add_parser(subparsers)`` which sets ``func``
COMMAND_MODULES = [
    "arforge.commands.train",
    "arforge.commands.sample",
    "arforge.commands.eval",
    "arforge.commands.bench",
    "arforge.commands.quickstart",
]


IMPORT_HELP = ("import a plug-in first: a .py file or a module name that registers samplers, orders, tokenizers, "
               "tasks or benchmarks (repeatable)")


def split_plugin_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(plug-in specs, the other arguments)``: every ``--import X`` / ``--import=X`` is taken out."""
    plugins, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--import":
            if i + 1 >= len(argv):
                raise SystemExit("arforge: error: --import needs a module name or a .py file")
            plugins.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--import="):
            plugins.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return plugins, rest


def _add_import_option(parser: argparse.ArgumentParser) -> None:
    """Document ``--import`` on ``parser`` and every sub-command below it (it is consumed before parsing)."""
    parser.add_argument("--import", dest="plugins", action="append", default=[], metavar="MODULE_OR_FILE", help=IMPORT_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_import_option(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arforge",
        description="Autoregressive visual generation toolkit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"arforge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    _add_import_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from arforge.config import ConfigError
    from arforge.plugins import import_plugin, load_entry_point_plugins
    from arforge.pretrained import CheckpointError
    from arforge.utils.logging import setup_logging

    plugins, argv = split_plugin_args(list(sys.argv[1:] if argv is None else argv))
    try:
        load_entry_point_plugins()
        for spec in plugins:
            import_plugin(spec)
    except ConfigError as err:
        print(f"arforge: error: --import: {err}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    args.plugins = plugins
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result = args.func(args)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as err:
        if args.verbose:
            raise
        print(f"arforge {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arforge {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
