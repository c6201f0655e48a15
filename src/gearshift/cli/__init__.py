"""`gearshift <command>`: one module per command group, the shared plumbing in common.py, output in terminal.py.

The only package that may import every layer: it wires them together for the shell; nothing imports it.
"""

from gearshift.cli.app import build_parser, entrypoint, main

__all__ = ["build_parser", "entrypoint", "main"]
