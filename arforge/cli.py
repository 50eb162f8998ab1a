"""The ``arforge`` command line: ``train | sample | eval | bench | quickstart | demo``.

Each sub-command lives next to the code it drives and registers itself here through a
``add_parser(subparsers)`` function; this module only assembles them and maps known errors to a
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
    return parser


def main(argv: list[str] | None = None) -> int:
    from arforge.config import ConfigError
    from arforge.pretrained import CheckpointError
    from arforge.utils.logging import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
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
