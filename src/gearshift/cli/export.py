"""`gearshift export`: the decision log (with labels and feedback) as date-partitioned Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import DEFAULT_SINCE, add_since, add_store_source

if TYPE_CHECKING:
    from gearshift.records.redaction import TextMode


def register(subparsers: Any) -> None:
    exp = subparsers.add_parser("export", help="write decision records (labels, feedback joined) as Parquet")
    add_since(exp, DEFAULT_SINCE)
    exp.add_argument("--out", type=Path, required=True, help="new directory; gets date=YYYY-MM-DD/ partitions")
    add_store_source(exp, db=False)
    exp.add_argument("--text", choices=["full", "hash", "redact"],
                     help="conceal prompt/answer text in the export (default: --config's [store] text, else as "
                          "stored); hash reads its HMAC key from --hash-key-env")
    exp.add_argument("--hash-key-env", default=None, metavar="VAR",
                     help="--text hash: the variable holding the HMAC key (default: --config's [store] "
                          "hash_key_env, else GEARSHIFT_HASH_KEY); the gateway's key gives the gateway's digests")
    exp.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gearshift.cli.common import gateway_settings, parse_since
    from gearshift.cli.terminal import progress_enabled
    from gearshift.records.redaction import HASH_KEY_ENV, Concealment
    from gearshift.store.export import export_parquet
    from gearshift.store.factory import settings_url

    since = parse_since(args.since)
    mode: TextMode = args.text or "full"
    key_env = args.hash_key_env or HASH_KEY_ENV
    if args.store_url:
        url = args.store_url
    else:
        settings = gateway_settings(args.config)
        url = settings_url(settings.store)
        mode = args.text or settings.store.text
        key_env = args.hash_key_env or settings.store.hash_key_env
    text = Concealment.from_env(mode, key_env)
    console = Console(stderr=True)
    with Progress(TextColumn("exporting decisions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not progress_enabled(False, console)) as bar:
        task = bar.add_task("export", total=None)
        result = export_parquet(url, args.out, since, total=lambda n: bar.update(task, total=n),
                                progress=lambda n: bar.advance(task, n), text=text)
    span = f"{result.dates[0]} .. {result.dates[-1]}" if result.dates else "no dates"
    console.print(f"wrote {result.rows} decision(s) in {result.files} file(s) to {result.out} ({span})",
                  highlight=False)
    return 0
