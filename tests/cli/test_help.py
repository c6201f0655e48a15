"""Every command and every option says what it does in `--help`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from gearshift.cli import build_parser

SRC = Path(__file__).resolve().parents[2] / "src"


def _parsers(parser: argparse.ArgumentParser, path: str = "gearshift") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_help_loads_no_gateway_router_or_numpy_code() -> None:
    """`gearshift --help` (and building the parser for any command) stays instant: the command modules keep the
    layers they wire together out of import time, so help loads cli/ and nothing heavy."""
    code = ("import sys, contextlib, io\nfrom gearshift.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['--help']) == 0\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**os.environ, "PYTHONPATH": str(SRC)}).stdout.split())
    assert "gearshift.cli.serve" in loaded and "gearshift.cli.learn" in loaded  # every group was registered
    heavy = sorted(m for m in loaded if m.startswith(("gearshift.gateway", "gearshift.routers", "gearshift.store",
                                                      "gearshift.policy", "gearshift.learning", "numpy", "fastapi",
                                                      "pydantic", "uvicorn", "httpx")))
    assert heavy == []


def test_python_dash_m_gearshift_runs_the_command() -> None:
    """`python -m gearshift --version` works like the installed script (a newcomer's first guess)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-m", "gearshift", "--version"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("gearshift "), out.stderr
