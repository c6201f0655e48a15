"""`gearshift data list | export | fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gearshift.data.registry import DATASETS
from gearshift.errors import DataError


def register(subparsers: Any) -> None:
    data = subparsers.add_parser("data", help="list, export and fetch recorded-outcome datasets")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(handler=lambda _args: (data.print_help(), 2)[1])

    p_list = sub.add_parser("list", help="list the built-in datasets")
    p_list.set_defaults(handler=_list)

    p_export = sub.add_parser("export", help="write a dataset in the canonical JSONL format")
    p_export.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}, or a .jsonl path")
    p_export.add_argument("--out", required=True, type=Path, help="output .jsonl (models table beside it)")
    p_export.add_argument("--data-dir", type=Path, default=None, help="raw data directory (default: config)")
    p_export.add_argument("--sample", type=int, metavar="N",
                          help="write a seeded random sample of N records instead of all (a quick first try)")
    p_export.set_defaults(handler=_export)

    p_fetch = sub.add_parser("fetch", help="download the raw data from the source repositories (pinned commits)")
    p_fetch.add_argument("--dest", type=Path, default=None, help="where to write (default: the data directory)")
    p_fetch.add_argument("--base-url", default=None, help="raw-file server (default: GitHub raw)")
    p_fetch.set_defaults(handler=_fetch)


def _data_dir(arg: Path | None) -> Path:
    from gearshift.config import default_data_dir

    return arg if arg is not None else default_data_dir()


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "description")
    for name, desc in DATASETS.items():
        table.add_row(name, desc)
    Console().print(table)
    return 0


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.cli.terminal import say
    from gearshift.data.records import write_jsonl
    from gearshift.data.registry import load_dataset

    console = Console(stderr=True)
    ds = load_dataset(args.dataset, _data_dir(args.data_dir))
    if args.sample is not None:
        if args.sample < 1:
            raise DataError(f"--sample must be a positive number of records, got {args.sample}")
        import numpy as np

        pick = np.sort(np.random.default_rng(0).permutation(len(ds))[: args.sample])
        ds = ds.subset(pick)
    out = write_jsonl(ds, args.out)
    for note in ds.notes:
        say(console, "[dim]note:[/]", note)
    console.print(f"wrote {len(ds)} records, {len(ds.models)} models to {out}", highlight=False)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.data.fetch import DEFAULT_BASE_URL, fetch

    console = Console(stderr=True)
    dest = _data_dir(args.dest)
    report = fetch(dest, args.base_url or DEFAULT_BASE_URL, show_progress=console.is_terminal)
    console.print(f"{dest}: downloaded {len(report.downloaded)}, already present {len(report.skipped)}, "
                  f"rebuilt {len(report.rebuilt)}", highlight=False)
    console.print("[dim]not fetched: alpaca_eval/ae1_gpt4judge_vs_text_davinci_003.csv (no loader uses it)[/]")
    return 0
