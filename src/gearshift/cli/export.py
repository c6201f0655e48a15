"""`gearshift export`: the decision log (with labels and feedback) as date-partitioned Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.gateway.commands import DEFAULT_SINCE

if TYPE_CHECKING:
    from gearshift.records.redaction import TextMode


def register(subparsers: Any) -> None:
    exp = subparsers.add_parser("export", help="write decision records (labels, feedback joined) as Parquet")
    exp.add_argument("--since", default=DEFAULT_SINCE,
                     help=f"only decisions newer than this (30m, 1h, 7d, 52w; default {DEFAULT_SINCE})")
    exp.add_argument("--out", type=Path, required=True, help="new directory; gets date=YYYY-MM-DD/ partitions")
    src = exp.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="read [store] url/path from this gateway config")
    src.add_argument("--store-url", help="sqlite:///path or postgresql://user@host/db[?schema=s]")
    exp.add_argument("--text", choices=["full", "hash", "redact"],
                     help="conceal prompt/answer text in the export (default: --config's [store] text, else as stored)")
    exp.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gearshift.gateway.commands import parse_since
    from gearshift.store.export import export_parquet
    from gearshift.store.factory import settings_url

    since = parse_since(args.since)
    text: TextMode = args.text or "full"
    if args.store_url:
        url = args.store_url
    else:
        from gearshift.gateway.settings import default_settings, load_settings

        settings = load_settings(args.config) if args.config is not None else default_settings()
        url = settings_url(settings.store)
        text = args.text or settings.store.text
    console = Console(stderr=True)
    with Progress(TextColumn("exporting decisions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("export", total=None)
        result = export_parquet(url, args.out, since, total=lambda n: bar.update(task, total=n),
                                progress=lambda n: bar.advance(task, n), text=text)
    span = f"{result.dates[0]} .. {result.dates[-1]}" if result.dates else "no dates"
    console.print(f"wrote {result.rows} decision(s) in {result.files} file(s) to {result.out} ({span})",
                  highlight=False)
    return 0
