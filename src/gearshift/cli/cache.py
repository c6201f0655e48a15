"""`gearshift cache info` and `gearshift cache prune`: see and bound the fit and embedding caches."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from gearshift.evaluation.cache_admin import CacheEntry, Kind

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$", re.IGNORECASE)
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$", re.IGNORECASE)
_SIZE_POWER = {"k": 1, "m": 2, "g": 3, "t": 4}
_CACHE_DIR_HELP = "cache root (default: $GEARSHIFT_CACHE_DIR, else $XDG_CACHE_HOME/gearshift or ~/.cache/gearshift)"


def parse_duration(value: str, flag: str = "--older-than") -> float:
    """'90s', '15m', '12h', '30d', '2w' -> seconds."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ConfigError(f"{flag}: expected a duration like 90s, 15m, 12h or 30d, got {value!r}")
    return float(m[1]) * _DURATION_S[m[2].lower()]


def parse_size(value: str, flag: str = "--max-size") -> int:
    """'500MB', '2GB', '1.5G' (powers of 1000), '2GiB' (powers of 1024), '1234' (bytes) -> bytes."""
    m = _SIZE.match(value.strip())
    if m is None:
        raise ConfigError(f"{flag}: expected a size like 500MB or 2GB, got {value!r}")
    unit = (m[2] or "b").lower()
    base = 1024 if "i" in unit else 1000
    return int(float(m[1]) * base ** _SIZE_POWER.get(unit[0], 0))


def format_age(seconds: float) -> str:
    """A coarse age for people: '3d 4h', '5h 12m', '7m', '40s'."""
    s = int(max(0.0, seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m" if m else f"{s}s"


def _mb(n: int) -> str:
    """Megabytes (10^6 bytes) to one decimal; '<0.1' rather than a misleading 0.0 for small, non-empty entries."""
    return "<0.1" if 0 < n < 50_000 else f"{n / 1e6:.1f}"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("cache", help="list or prune cached fits and embeddings", description=__doc__)
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="list cache entries with size and time since last use")
    info.add_argument("--cache-dir", type=Path, help=_CACHE_DIR_HELP)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=_info)

    prune = sub.add_parser("prune", help="remove entries unused for a while, or the least recently used over a size",
                           description="Remove cache entries by last use. Leftover temp dirs of crashed fits "
                                       "older than an hour are always removed.")
    prune.add_argument("--cache-dir", type=Path, help=_CACHE_DIR_HELP)
    prune.add_argument("--older-than", metavar="AGE", help="remove entries unused for longer (90s, 15m, 12h, 30d)")
    prune.add_argument("--max-size", metavar="SIZE",
                       help="then remove the least recently used until the rest fits (500MB, 2GB)")
    only = prune.add_mutually_exclusive_group()
    only.add_argument("--fits", action="store_true", help="only fitted routers (and their temp dirs)")
    only.add_argument("--embeddings", action="store_true", help="only embedding caches")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    prune.set_defaults(handler=_prune)


def _root(args: argparse.Namespace) -> Path:
    from gearshift.config import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir is not None else default_cache_dir()


def _usage_error(message: str) -> int:
    """A bad flag value: said the way `gearshift` reports errors, with argparse's exit code for bad usage."""
    from rich.console import Console

    from gearshift.cli.terminal import say

    say(Console(stderr=True), "[bold red]error:[/]", message)
    return 2


def _info(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from gearshift.evaluation.cache_admin import scan

    root, now = _root(args), time.time()
    entries = scan(root)
    total = sum(e.size_bytes for e in entries)
    if args.json:
        print(json.dumps({"root": str(root), "entries": [e.to_json(now) for e in entries], "total_bytes": total},
                         indent=2))
        return 0
    console = Console()
    if not entries:
        console.print(f"no cached fits or embeddings under {root}", highlight=False)
        return 0
    table = Table(title=f"gearshift cache: {root}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("kind")
    table.add_column("name", overflow="fold")
    table.add_column("size MB", justify="right", no_wrap=True)
    table.add_column("last used", justify="right", no_wrap=True)
    for e in entries:
        table.add_row(e.kind, e.name, _mb(e.size_bytes), f"{format_age(now - e.last_used)} ago")
    console.print(table)
    console.print(f"total: {len(entries)} entries, {_mb(total)} MB", highlight=False)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.cli.terminal import say
    from gearshift.evaluation.cache_admin import ALL_KINDS, remove, scan, select

    if args.older_than is None and args.max_size is None:
        return _usage_error("gearshift cache prune needs --older-than AGE (e.g. 30d) and/or --max-size SIZE "
                            "(e.g. 2GB)")
    try:
        older = parse_duration(args.older_than) if args.older_than is not None else None
        size = parse_size(args.max_size) if args.max_size is not None else None
    except ConfigError as exc:
        return _usage_error(exc.message)
    kinds: tuple[Kind, ...] = ("fit", "temp") if args.fits else ("embeddings",) if args.embeddings else ALL_KINDS
    root, now = _root(args), time.time()
    entries = scan(root)
    chosen = select(entries, older_than_s=older, max_bytes=size, kinds=kinds, now=now)
    removed = chosen if args.dry_run else remove(chosen, root)
    console = Console()
    _report(console, entries, removed, kinds, now, args.dry_run)
    failed = [e for e in chosen if e not in removed]
    for e in failed:
        say(console, "[yellow]could not remove[/]", str(e.path))
    return 1 if failed else 0


def _report(console: Console, entries: list[CacheEntry], removed: list[CacheEntry], kinds: tuple[Kind, ...],
            now: float, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        console.print(f"{verb} {e.kind} {e.name} ({_mb(e.size_bytes)} MB, last used "
                      f"{format_age(now - e.last_used)} ago)", highlight=False)
    gone = {e.path for e in removed}
    kept = [e for e in entries if e.kind in kinds and e.path not in gone]
    console.print(f"{verb} {len(removed)} entries, {_mb(sum(e.size_bytes for e in removed))} MB; kept {len(kept)}, "
                  f"{_mb(sum(e.size_bytes for e in kept))} MB", highlight=False)
