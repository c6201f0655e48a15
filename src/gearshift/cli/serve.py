"""`gearshift serve` and `gearshift decisions`."""

from __future__ import annotations

import argparse
import errno
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gearshift.cli.common import (
    add_json_lines,
    add_since,
    add_store_source,
    existing_store_url,
    gateway_settings,
    parse_since,
)
from gearshift.cli.terminal import fit_table, print_fitted, safe_cell, stdout_console
from gearshift.errors import ConfigError


def port_number(value: str) -> int:
    """argparse type: a TCP port, 1-65535, or 0 for any free one."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535, or 0 for any free port)")
    return port


def worker_count(value: str) -> int:
    """argparse type: how many gateway processes, 1-256."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes, got {value!r}") from None
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{n}: --workers must be 1-256 (about one per core)")
    return n


def register(subparsers: Any) -> None:
    defaults = argparse.ArgumentDefaultsHelpFormatter
    serve = subparsers.add_parser("serve", help="run the OpenAI-compatible routing gateway", formatter_class=defaults,
                                  description="Run the gateway: an OpenAI-compatible /v1 API that routes each "
                                              "request to a tier, records the decision and serves /dashboard.")
    serve.add_argument("--config", type=Path,
                       help="gearshift.toml (none: the local SmolLM2 demo on both tiers, no API keys)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=port_number, default=8000, help="TCP port (0: any free port)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="server log level")
    serve.add_argument("--access-log", action="store_true",
                       help="log one line per HTTP request (client, method, path, status)")
    serve.add_argument("--workers", type=worker_count, default=1,
                       help="gateway processes sharing the port (about one per core; see docs/scale-out.md for "
                            "what is shared without [redis] url)")
    for hidden in ("--worker-fd", "--worker-index", "--worker-count"):  # set by the --workers supervisor
        serve.add_argument(hidden, type=int, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    dec = subparsers.add_parser("decisions", help="show recorded routing decisions", formatter_class=defaults,
                                description="Show the gateway's recorded routing decisions, newest first. The "
                                            "store is the one `gearshift serve` uses: the demo's by default, "
                                            "or --config's, --db's or --store-url's.")
    add_store_source(dec)
    add_since(dec, default=None)
    dec.add_argument("--tier", help="only this tier (e.g. cheap, strong)")
    dec.add_argument("--status", choices=["ok", "error", "truncated", "client_disconnected", "cancelled_shutdown"],
                     help="only this outcome")
    dec.add_argument("--limit", type=int, default=50, help="at most this many, newest first")
    add_json_lines(dec, "the decisions")
    dec.set_defaults(handler=_decisions)


def _listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind before anything slow starts, so a port in use fails at once with a clear error. `reuse_port`: more
    sockets will join this one on the port, one per worker (gateway/workers.py)."""
    from gearshift.gateway.workers import BACKLOG

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve ({exc.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        hint = " (another gateway running? pick another --port)" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


def banner(settings: Any, host: str, port: int) -> str:
    """What `serve` says when it is up: where to send requests and look, and where decisions go."""
    from gearshift.store.factory import settings_url, sqlite_path, store_kind
    from gearshift.store.postgres import redact

    root = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    tiers = ", ".join(f"{t.name}=[{', '.join(d.display_name for d in t.deployments)}]" for t in settings.tiers)
    url = settings_url(settings.store)
    store = "off" if not settings.store.enabled else (
        Path(sqlite_path(url)).resolve() if store_kind(url) == "sqlite" else redact(url))
    lines = [f"gearshift gateway on {root}/v1 (OpenAI-compatible; model gearshift/auto routes)",
             f"  tiers: {tiers}   router: {settings.router.name}"]
    if settings.dashboard.enabled:
        lines.append(f"  dashboard: {root}/dashboard")
    lines.append(f"  decisions: {store}")
    lines.append(f"  try: {try_command(settings, host, port)}")
    return "\n".join(lines)


def try_command(settings: Any, host: str, port: int) -> str:
    """A request to paste into a shell, the first thing a newcomer wants after the banner (a keyed gateway's
    takes the key from $GEARSHIFT_KEY: the banner never knows it, only its hash)."""
    reach = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    root = f"http://{f'[{reach}]' if ':' in reach else reach}:{port}"
    auth = ' -H "authorization: Bearer $GEARSHIFT_KEY"' if settings.auth.keys else ""
    body = '{"model": "gearshift/auto", "messages": [{"role": "user", "content": "Hello"}]}'
    return f"curl -s {root}/v1/chat/completions -H 'content-type: application/json'{auth} -d '{body}'"


def _serve(args: argparse.Namespace) -> int:
    from rich.console import Console

    settings = gateway_settings(args.config)
    if args.worker_fd is not None:  # one worker of `--workers N`: the supervisor printed the banner
        from gearshift.gateway.workers import die_with_parent, per_worker_settings, worker_socket

        die_with_parent()
        sock = worker_socket(args.worker_fd)
        count = args.worker_count or 1
        return _run_server(per_worker_settings(settings, args.worker_index or 0, count), sock, args)
    from gearshift.gateway.workers import balanced_ports

    sock = _listen(args.host, args.port, reuse_port=args.workers > 1 and balanced_ports())
    try:
        port = sock.getsockname()[1]
        err = Console(stderr=True, soft_wrap=True)
        err.print(banner(settings, args.host, port), highlight=False, markup=False)
        from gearshift.gateway.origin import is_loopback_bind

        if not settings.auth.keys and not is_loopback_bind(args.host):
            err.print(f"warning: no [[auth.keys]] and listening on {args.host}: anyone who can "
                      "reach this port spends your upstream budget; add keys (gearshift keys create)",
                      highlight=False, markup=False)
        if args.workers > 1:
            return _supervise(settings, sock, args, err)
        return _run_server(settings, sock, args)
    finally:
        sock.close()


def _run_server(settings: Any, sock: socket.socket, args: argparse.Namespace) -> int:
    """One gateway process serving `sock` until SIGTERM (drain, flush) or SIGINT."""
    import uvicorn

    from gearshift.gateway.app import create_app
    from gearshift.gateway.lifecycle import drain_on_exit_signal

    try:
        # SIGHUP: serve the registry's current version; the process is the gateway's alone: freeze startup's objects
        app = create_app(settings, reload_on_sighup=True, freeze_gc=True)
        loop, http = server_speedups()
        # SIGTERM: drain, flush (uvicorn types the timeout int but waits on it with asyncio, so a float works)
        drain: Any = settings.limits.drain_timeout_s
        config = uvicorn.Config(app, host=args.host, port=sock.getsockname()[1], log_level=args.log_level,
                                access_log=args.access_log, timeout_graceful_shutdown=drain, loop=loop, http=http)
        server = uvicorn.Server(config)
        drain_on_exit_signal(server, app.state.gateway)  # SIGTERM: draining first (gateway/lifecycle.py)
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _supervise(settings: Any, sock: socket.socket, args: argparse.Namespace, err: Any) -> int:
    """`--workers N`: this process only supervises; each worker is a `gearshift serve --worker-fd` process."""
    import sys

    from gearshift.gateway.workers import Supervisor, listen_sockets, per_worker_note

    note = per_worker_note(settings, args.workers)
    err.print(f"  workers: {args.workers} processes" if note is None else note, highlight=False, markup=False)
    command = [sys.executable, "-c", "import sys; from gearshift.cli import entrypoint; sys.exit(entrypoint())",
               "serve", "--host", args.host, "--log-level", args.log_level]
    if args.config is not None:
        command += ["--config", str(args.config.resolve())]
    if args.access_log:
        command.append("--access-log")
    socks = listen_sockets(sock, args.workers)  # `sock` is closed by the caller
    try:
        return Supervisor(socks, command, args.workers, settings.limits.drain_timeout_s).run()
    finally:
        for extra in socks[1:]:
            extra.close()


def server_speedups() -> tuple[str, str]:
    """uvloop + httptools when importable (measured ~25% less CPU per request), else uvicorn's pure-Python ones."""
    import importlib.util

    have = importlib.util.find_spec
    return ("uvloop" if have("uvloop") else "asyncio"), ("httptools" if have("httptools") else "h11")


def _decisions(args: argparse.Namespace) -> int:
    import json
    import sys

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
    if args.json:
        for r in rows:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
        return 0
    console = stdout_console()
    print_fitted(console, decisions_table(rows, f"{len(rows)} decision(s) from {path}", console), _DECISION_COLUMNS)
    return 0


#: the decisions table's columns, and the order a narrower terminal gives them up in: what was routed where
#: (time, tier, deployment, status) stays, whole, at any width
_DECISION_COLUMNS = ("date", "time", "request", "model", "router", "score", "tier", "deployment", "status", "tokens",
                     "cost $", "ms")
_DECISION_DROP = ("request", "router", "tokens", "ms", "model", "date", "cost $", "score")


def decisions_table(rows: list[dict[str, Any]], title: str, console: Any) -> Any:
    """Decision records as a rich table that fits `console`: whole columns are dropped, never cut to a few
    characters; client-supplied text (the model name, errors) is shown inert (no markup, no escape codes)."""
    from rich import box
    from rich.table import Table

    cells = []
    for r in rows:
        score, cost = r.get("score"), r.get("cost_usd")
        cells.append({
            "date": time.strftime("%Y-%m-%d", time.localtime(r["time"])),
            "time": time.strftime("%H:%M:%S", time.localtime(r["time"])),
            "request": safe_cell(str(r["request_id"])[-8:]), "model": safe_cell(r.get("requested_model") or ""),
            "router": safe_cell(r.get("router") or ""), "score": "" if score is None else f"{score:.3f}",
            "tier": safe_cell(r.get("tier") or ""), "deployment": safe_cell(r.get("deployment") or ""),
            "status": safe_cell(str(r.get("status")) + (f" ({r['error_type']})" if r.get("error_type") else "")),
            "tokens": f"{r.get('tokens_in') or 0}/{r.get('tokens_out') or 0}",
            "cost $": "" if cost is None else f"{cost:.6f}", "ms": f"{r.get('latency_ms') or 0:.0f}",
        })

    def build(columns: Sequence[str]) -> Table:
        table = Table(title=safe_cell(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)
        for col in columns:
            right = col in ("score", "tokens", "cost $", "ms")
            table.add_column(col, justify="right" if right else "left", overflow="fold",
                             no_wrap=col in ("date", "time", "score", "tokens", "cost $", "ms"))
        for c in cells:
            table.add_row(*(c[col] for col in columns))
        return table

    return fit_table(console, build, _DECISION_COLUMNS, _DECISION_DROP)
