"""`gearshift serve` and `gearshift decisions`."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from gearshift.errors import ConfigError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: float | None = None) -> float:
    """'90s', '15m', '1h', '7d', '2w' -> a Unix time that long ago."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ConfigError(f"--since: expected a duration like 30m, 1h or 7d, got {value!r}")
    return (time.time() if now is None else now) - float(m[1]) * _UNIT_S[m[2]]


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the OpenAI-compatible routing gateway")
    serve.add_argument("--config", type=Path, help="gearshift.toml (default: local SmolLM2 on both tiers)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=_serve)

    dec = subparsers.add_parser("decisions", help="show recorded routing decisions")
    src = dec.add_mutually_exclusive_group()
    src.add_argument("--db", type=Path, help="SQLite decision store")
    src.add_argument("--config", type=Path, help="read [store] (path or url) from this gateway config")
    src.add_argument("--store-url", help="sqlite:///path or postgresql://user@host/db[?schema=s]")
    dec.add_argument("--since", help="only newer than this (30m, 1h, 7d)")
    dec.add_argument("--tier")
    dec.add_argument("--status", choices=["ok", "error", "truncated", "client_disconnected"])
    dec.add_argument("--limit", type=int, default=50)
    dec.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    dec.set_defaults(handler=_decisions)

    from gearshift.gateway.keys import register as register_keys

    register_keys(subparsers)  # `gearshift keys create`


def _settings(config: Path | None) -> Any:
    from gearshift.gateway.settings import default_settings, load_settings

    return load_settings(config) if config is not None else default_settings()


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
        url = settings_url(_settings(config).store)
    if store_kind(url) == "sqlite" and not Path(sqlite_path(url)).exists():
        raise ConfigError(f"no gateway store at {sqlite_path(url)}")
    return url


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from rich.console import Console

    from gearshift.gateway.app import create_app

    settings = _settings(args.config)
    app = create_app(settings, reload_on_sighup=True)  # SIGHUP: serve the registry's current version
    tiers = ", ".join(f"{t.name}=[{', '.join(d.display_name for d in t.deployments)}]" for t in settings.tiers)
    Console(stderr=True).print(f"gearshift gateway on http://{args.host}:{args.port}/v1  tiers: {tiers}  "
                               f"router: {settings.router.name}", highlight=False, markup=False)
    from gearshift.gateway.origin import is_loopback_bind

    if not settings.auth.keys and not is_loopback_bind(args.host):
        Console(stderr=True).print(f"warning: no [[auth.keys]] and listening on {args.host}: anyone who can reach "
                                   "this port spends your upstream budget; add keys (gearshift keys create)",
                                   highlight=False, markup=False)
    loop, http = server_speedups()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_graceful_shutdown=settings.limits.drain_timeout_s,  # SIGTERM: drain in-flight, then flush
                loop=loop, http=http)
    return 0


def server_speedups() -> tuple[str, str]:
    """uvloop + httptools when importable (measured ~25% less CPU per request), else uvicorn's pure-Python ones."""
    import importlib.util

    have = importlib.util.find_spec
    return ("uvloop" if have("uvloop") else "asyncio"), ("httptools" if have("httptools") else "h11")


def _decisions(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from gearshift.store.base import DecisionQuery
    from gearshift.store.factory import open_decision_store, sqlite_path, store_kind
    from gearshift.store.postgres import redact

    url = existing_store_url(args.db, args.config, store_url=args.store_url)
    path = sqlite_path(url) if store_kind(url) == "sqlite" else redact(url)
    store = open_decision_store(url)
    try:
        q = DecisionQuery(since=parse_since(args.since) if args.since else None, tier=args.tier,
                          status=args.status, limit=args.limit)
        rows = store.query(q)
    finally:
        store.close()
    console = Console(soft_wrap=True)
    if args.json:
        for r in rows:
            console.print(json.dumps(r, ensure_ascii=False), markup=False, highlight=False)
        return 0
    table = Table(title=f"{len(rows)} decision(s) from {path}")
    for col in ("time", "request", "model", "router", "score", "tier", "deployment", "status", "tokens",
                "cost $", "ms"):
        table.add_column(col, justify="right" if col in ("score", "tokens", "cost $", "ms") else "left")
    for r in rows:
        score = r.get("score")
        cost = r.get("cost_usd")
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"])), str(r["request_id"])[-8:],
            str(r.get("requested_model") or ""), str(r.get("router") or ""),
            "" if score is None else f"{score:.3f}", str(r.get("tier") or ""), str(r.get("deployment") or ""),
            str(r.get("status")) + (f" ({r['error_type']})" if r.get("error_type") else ""),
            f"{r.get('tokens_in') or 0}/{r.get('tokens_out') or 0}", "" if cost is None else f"{cost:.6f}",
            f"{r.get('latency_ms') or 0:.0f}",
        )
    console.print(table)
    return 0
