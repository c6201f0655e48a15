"""The `gearshift` command line: the parser and the dispatch. `main(argv) -> int` is what tests call.

Each command group is one module of this package (`cli/<group>.py: register(subparsers)`) and keeps its
heavy imports inside the handlers, so `gearshift --help` imports no gateway, router or numpy code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from rich.console import Console
from rich.markup import escape

import gearshift
from gearshift.errors import GearshiftError

#: Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "gearshift.cli.eval",
    "gearshift.cli.cache",
    "gearshift.cli.data",
    "gearshift.cli.serve",
    "gearshift.cli.keys",
    "gearshift.cli.probe",
    "gearshift.cli.triage",
    "gearshift.cli.drift",
    "gearshift.cli.export",
    "gearshift.cli.learn",
    "gearshift.cli.calibrate",
    "gearshift.cli.train",
    "gearshift.cli.bounds",
    "gearshift.cli.topics",
    "gearshift.cli.verifiers",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearshift",
        description="Route LLM traffic between cheap and strong models; evaluate and observe the routing.",
    )
    parser.add_argument("--version", action="version", version=f"gearshift {gearshift.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except GearshiftError as exc:
        # soft_wrap: a long path in the message stays whole (copyable), not folded mid-word at column 80
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


def entrypoint() -> None:
    sys.exit(main())
