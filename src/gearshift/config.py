"""The only module that reads the environment.

Everything else receives paths and settings as parameters, so tests and library users never depend on
process-wide state.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GEARSHIFT_DATA_DIR"
CACHE_DIR_ENV = "GEARSHIFT_CACHE_DIR"


def _project_root_candidates() -> list[Path]:
    here = Path.cwd()
    return [here, *here.parents]


def default_data_dir() -> Path:
    """`$GEARSHIFT_DATA_DIR`, else the first `../shared/data` above the working directory.

    Falls back to `~/.cache/gearshift/data` (where `gearshift data fetch` writes) when neither exists.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    for base in _project_root_candidates():
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return default_cache_dir() / "data"


def default_cache_dir() -> Path:
    """`$GEARSHIFT_CACHE_DIR`, else `$XDG_CACHE_HOME/gearshift`, else `~/.cache/gearshift`."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "gearshift"


def get_env(name: str, default: str | None = None) -> str | None:
    """Read one environment variable; the gateway config resolves API-key variable names here."""
    return os.environ.get(name, default)


def default_state_dir() -> Path:
    """Where the gateway keeps what it writes (the decision store): `$XDG_DATA_HOME/gearshift`, else
    `~/.local/share/gearshift`. Per user, not per working directory, so `serve` and `gearshift decisions`
    agree wherever they are run."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "gearshift"


def terminal_columns() -> int | None:
    """`$COLUMNS` when set to a positive number: the table width a user asked for, also in a pipe."""
    raw = os.environ.get("COLUMNS", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def quiet_native_logs() -> None:
    """The local model's Rust backend (mistralrs) writes ANSI-coloured INFO lines to stdout, even into a log
    file; keep it to warnings unless the user chose a level with `$RUST_LOG`."""
    os.environ.setdefault("RUST_LOG", "warn")
