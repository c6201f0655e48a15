"""`gearshift keys create`: mint a gateway API key, print it once, and the TOML that stores only its hash.

The raw key never touches disk: the operator copies it to the client and pastes the `[[auth.keys]]`
snippet (SHA-256 digest, scopes, optional budget/rate/strong-share caps) into the gateway config.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
from typing import Any

from gearshift.errors import ConfigError

KEY_PREFIX = "gs-"
_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def generate_key() -> str:
    """A fresh raw key: 32 random bytes, URL-safe, with a recognisable prefix for secret scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_scopes(value: str) -> list[str]:
    from gearshift.gateway.auth import SCOPES

    scopes = [s.strip() for s in value.split(",") if s.strip()]
    bad = sorted(set(scopes) - set(SCOPES))
    if not scopes or bad:
        raise ConfigError(f"--scopes: expected a comma-separated subset of {', '.join(SCOPES)}, got {value!r}")
    return list(dict.fromkeys(scopes))


def toml_snippet(key_id: str, raw_key: str, scopes: list[str], *, budget_usd_per_day: float | None = None,
                 rpm: int | None = None, max_strong_share: float | None = None,
                 models: list[str] | None = None) -> str:
    """The `[[auth.keys]]` table for the config (values JSON-quoted, which is valid TOML for these types)."""
    from gearshift.gateway.settings import hash_key

    lines = ["[[auth.keys]]", f"id = {json.dumps(key_id)}", f"sha256 = {json.dumps(hash_key(raw_key))}",
             f"scopes = {json.dumps(scopes)}"]
    if budget_usd_per_day is not None:
        lines.append(f"budget_usd_per_day = {budget_usd_per_day!r}")
    if rpm is not None:
        lines.append(f"rpm = {rpm}")
    if max_strong_share is not None:
        lines.append(f"max_strong_share = {max_strong_share!r}")
    if models is not None:
        lines.append(f"models = {json.dumps(models)}")
    return "\n".join(lines) + "\n"


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="manage gateway API keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="mint a key: prints the raw key once and the config snippet")
    create.add_argument("--id", required=True, help="the name records and metrics show for this key")
    create.add_argument("--scopes", default="inference", help="comma-separated: inference, feedback, admin")
    create.add_argument("--budget-usd-per-day", type=float, help="spend cap per UTC day in USD (default: none)")
    create.add_argument("--rpm", type=int, help="requests per minute (token bucket)")
    create.add_argument("--max-strong-share", type=float, help="cap on the strong tier's share (0..1)")
    create.add_argument("--models", help="comma-separated model names this key may ask for, e.g. gearshift/auto "
                                         "(default: any; a concrete deployment name bypasses routing)")
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    from rich.console import Console

    if not _ID.match(args.id):
        raise ConfigError(f"--id: use 1-64 letters, digits or ._@- characters, got {args.id!r}")
    if args.rpm is not None and args.rpm <= 0:
        raise ConfigError("--rpm must be positive")
    if args.budget_usd_per_day is not None and args.budget_usd_per_day < 0:
        raise ConfigError("--budget-usd-per-day must not be negative")
    if args.max_strong_share is not None and not 0.0 <= args.max_strong_share <= 1.0:
        raise ConfigError("--max-strong-share must lie in [0, 1]")
    models = None if args.models is None else [m.strip() for m in args.models.split(",") if m.strip()]
    if models is not None and not models:
        raise ConfigError("--models: give at least one model name, e.g. --models gearshift/auto")
    raw = generate_key()
    snippet = toml_snippet(args.id, raw, parse_scopes(args.scopes), budget_usd_per_day=args.budget_usd_per_day,
                           rpm=args.rpm, max_strong_share=args.max_strong_share, models=models)
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"API key (shown once, store it now): {raw}", markup=False)
    out.print("\nAdd to the gateway config:\n", markup=False)
    out.print(snippet, markup=False, end="")
    return 0
