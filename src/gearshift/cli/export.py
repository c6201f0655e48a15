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
                     help="conceal prompt/answer text in the export (default: --config's [store] text, else as stored)")
    exp.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gearshift.cli.common import gateway_settings, parse_since
    from gearshift.store.export import export_parquet
    from gearshift.store.factory import settings_url

    since = parse_since(args.since)
    text: TextMode = args.text or "full"
    if args.store_url:
        url = args.store_url
    else:
        settings = gateway_settings(args.config)
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
