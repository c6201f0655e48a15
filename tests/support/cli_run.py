"""Run the real `gearshift` command in a child process, piped or on a pseudo-terminal of a given width.

The child imports the same gearshift package as the tests (its source directory goes on PYTHONPATH), so a
worktree checkout is what gets run, not whatever the venv's console script points at.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import gearshift

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SRC = str(Path(gearshift.__file__).resolve().parent.parent)


@dataclass
class CliRun:
    rc: int
    out: str  # stdout (on a terminal: stdout and stderr together as a user sees them, colours stripped)
    err: str
    raw: str = ""  # on a terminal: the bytes as written, escape codes included


def _env(columns: int | None, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "GEARSHIFT_DATA_DIR")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FORCE_COLOR", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    env.update(extra or {})
    return env


def run_cli(args: list[str], *, columns: int | None = None, tty: bool = False, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 120.0) -> CliRun:
    cmd = [sys.executable, "-c", "from gearshift.cli import entrypoint; entrypoint()", *args]
    if not tty:
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=_env(columns, env), timeout=timeout)
        return CliRun(p.returncode, p.stdout, p.stderr)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns or 80, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=_env(columns, env))
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise TimeoutError(f"gearshift {' '.join(args)} did not finish")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    rc = proc.wait(timeout)
    raw = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return CliRun(rc, _ANSI.sub("", raw), "", raw)
