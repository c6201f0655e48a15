"""The plumbing every `gearshift` command shares, so a flag means one thing in every command.

Which store a command reads (`--db`, `--store-url`, `--config`'s `[store]`, else the demo's), how the
gateway's settings are loaded, what `--since` accepts, what `--json` prints, and the progress bar of a
long scoring pass. Imports of the layers below stay inside the functions: `gearshift --help` loads none.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from gearshift.gateway.settings import GatewaySettings
    from gearshift.learning.logs import DecisionLog
    from gearshift.routers.base import Router
    from gearshift.store.versions import VersionRegistry

#: the one default look-back of every command that reads a window of traffic (`decisions` alone shows the
#: newest --limit records of any age)
DEFAULT_SINCE = "7d"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# -- --since ---------------------------------------------------------------------------------------------------
def parse_since(value: str, now: float | None = None) -> float:
    """'90s', '15m', '1h', '7d', '2w' -> a Unix time that long ago."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ConfigError(f"--since: expected a duration like 30m, 1h or 7d, got {value!r}")
    return (time.time() if now is None else now) - float(m[1]) * _UNIT_S[m[2]]


def add_since(p: argparse.ArgumentParser, default: str | None = DEFAULT_SINCE, what: str = "decisions") -> None:
    """`--since DURATION`: only `what` newer than this (default DEFAULT_SINCE; None: any age)."""
    shown = f"default {default}" if default is not None else "default: any age"
    p.add_argument("--since", default=default, help=f"only {what} newer than this (30m, 1h, 7d; {shown})")


# -- settings and the store ------------------------------------------------------------------------------------
def gateway_settings(config: Path | None) -> GatewaySettings:
    """The gateway's settings from `config`, or the no-config demo's (what `gearshift serve` would run)."""
    from gearshift.gateway.settings import default_settings, load_settings

    return load_settings(config) if config is not None else default_settings()


def add_store_source(p: argparse.ArgumentParser, *, db: bool = True, store_url: bool = True,
                     config: str | None = "read [store] (path or url) from this gateway config") -> None:
    """The store a command reads, one of: `--db FILE` (SQLite), `--store-url URL`, `--config FILE` (its
    `[store]`); none: the demo's store. `config=None` leaves `--config` to the command (it means more there)."""
    src = p.add_mutually_exclusive_group()
    if db:
        src.add_argument("--db", type=Path, help="the gateway's SQLite store")
    if config is not None:
        src.add_argument("--config", type=Path, help=config)
    if store_url:
        src.add_argument("--store-url", help="sqlite:///path or postgresql://user@host/db[?schema=s]")


def _named_store(args: argparse.Namespace) -> str | None:
    """`--store-url`, else `--db` as a SQLite url; None when the store is the settings' (`--config`'s or the demo's)."""
    if getattr(args, "store_url", None):
        return str(args.store_url)
    if getattr(args, "db", None) is not None:
        return f"sqlite:///{args.db}"
    return None


def store_url(args: argparse.Namespace) -> str:
    """The store the command names: `--store-url`, else `--db` (SQLite), else `--config`'s `[store]` (or the
    demo's)."""
    from gearshift.store.factory import settings_url

    named = _named_store(args)
    return named if named is not None else settings_url(gateway_settings(getattr(args, "config", None)).store)


def existing_store_url(db: Path | None, config: Path | None, *, store_url: str | None = None) -> str:
    """The store url a CLI command reads: `--store-url`, else `--db` (SQLite), else `--config`'s `[store]`.

    A SQLite file that does not exist is a ConfigError rather than a fresh empty store.
    """
    from gearshift.store.factory import settings_url, sqlite_path, store_kind

    if store_url is not None:
        url = str(store_url)
    elif db is not None:
        url = f"sqlite:///{db}"
    else:
        url = settings_url(gateway_settings(config).store)
    if store_kind(url) == "sqlite" and not Path(sqlite_path(url)).exists():
        raise ConfigError(f"no gateway store at {sqlite_path(url)}: nothing recorded there yet. Pass --db FILE, "
                          "--config gearshift.toml (its [store]) or --store-url URL to read the store a gateway "
                          "wrote; `gearshift serve` prints its store when it starts")
    return url


# -- the decision log and the version registry (retrain, ope, promote, calibrate, train, bounds) ----------------
def add_log_source(p: argparse.ArgumentParser, since: str | None = DEFAULT_SINCE) -> None:
    """The store (as add_store_source; `--config` also names the tiers), `--tiers`, `--versions-dir`, `--since`."""
    add_store_source(p, config="read [store] and the tiers from this gateway config")
    p.add_argument("--tiers", help="tier names cheap to strong, comma-separated (default: --config, else inferred)")
    p.add_argument("--versions-dir", type=Path, help="where versions are saved (default: <db stem>-versions/)")
    if since is not None:
        add_since(p, since)


def store_exists(args: argparse.Namespace) -> bool:
    """False for a SQLite file that is not there yet (a PostgreSQL store is always "there")."""
    from gearshift.store.factory import sqlite_path, store_kind

    url = store_url(args)
    return store_kind(url) != "sqlite" or Path(sqlite_path(url)).exists()


def db_path(args: argparse.Namespace) -> Path:
    """The SQLite file of the store; a ConfigError for PostgreSQL (which has none)."""
    from gearshift.store.factory import sqlite_path, store_kind

    url = store_url(args)
    if store_kind(url) != "sqlite":
        raise ConfigError("the store is PostgreSQL: there is no SQLite file (pass --versions-dir for saved routers)")
    return Path(sqlite_path(url))


def saved_versions_dir(args: argparse.Namespace) -> Path:
    """Where a new version is saved: `--versions-dir`, else `<db stem>-versions/` beside a SQLite store."""
    from gearshift.store.factory import store_kind
    from gearshift.store.versions import versions_dir

    if args.versions_dir is not None:
        return Path(args.versions_dir)
    if store_kind(store_url(args)) != "sqlite":
        raise ConfigError("with a PostgreSQL store, pass --versions-dir: a directory every gateway can read")
    return versions_dir(db_path(args))


def tier_names(args: argparse.Namespace) -> tuple[str, ...] | None:
    """`--tiers`, else `--config`'s tiers, else the demo's when the store read is the demo's (no `--db`,
    `--store-url`), else None (the log's own, inferred: a log where every decision went cheap names one tier)."""
    if args.tiers:
        return tuple(t.strip() for t in args.tiers.split(",") if t.strip())
    if args.config is not None or _named_store(args) is None:
        return gateway_settings(args.config).tier_names
    return None


def registry(args: argparse.Namespace) -> VersionRegistry:
    """The version registry of the store the command names; a ConfigError when its SQLite file is missing."""
    from gearshift.store.factory import open_version_registry, sqlite_path

    if not store_exists(args):
        raise ConfigError(f"no gateway store at {sqlite_path(store_url(args))}")
    return open_version_registry(store_url(args))


def registry_for_write(args: argparse.Namespace) -> VersionRegistry:
    """The registry of the store the command names (or the default one), created if there is none yet."""
    from gearshift.store.factory import open_version_registry, sqlite_path, store_kind

    url = store_url(args)
    if store_kind(url) == "sqlite" and sqlite_path(url) != ":memory:":
        Path(sqlite_path(url)).parent.mkdir(parents=True, exist_ok=True)
    return open_version_registry(url)


def read(args: argparse.Namespace) -> DecisionLog:
    """The decision log of the store the command names, `--since` ago to now, with a spinner on stderr."""
    from rich.console import Console

    from gearshift.learning.logs import read_log

    with Console(stderr=True).status("reading the decision log"):
        return read_log(store_url(args), parse_since(args.since), tier_names(args))


# -- --json ----------------------------------------------------------------------------------------------------
def add_json_lines(p: argparse.ArgumentParser, what: str) -> None:
    """`--json` on a listing: `what`, one JSON object a line on stdout, instead of the table (see also
    terminal.add_json_options for a command whose result is one document)."""
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON lines on stdout instead of a table")


# -- parameters and progress -----------------------------------------------------------------------------------
def parse_params(items: list[str]) -> dict[str, Any]:
    """`--param K=V` items -> {K: V}, V parsed as JSON where it can be (numbers, booleans), else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--param {item!r} is not K=V")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def score_prompts(router: Router, prompts: list[str], what: str = "scoring logged prompts") -> np.ndarray:
    """p_strong in batches, with a progress bar on stderr (embedding routers take a while on big logs)."""
    import numpy as np
    from rich.console import Console
    from rich.progress import Progress

    out: list[np.ndarray] = []
    from gearshift.cli.terminal import progress_enabled

    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not progress_enabled(False, err)) as bar:
        task = bar.add_task(what, total=len(prompts))
        for i in range(0, len(prompts), 512):
            out.append(router.p_strong(prompts[i:i + 512]))
            bar.advance(task, len(prompts[i:i + 512]))
    return np.concatenate(out) if out else np.zeros(0)
