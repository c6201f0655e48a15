"""`gearshift triage list|label|export`, `judge-agreement` and `signals`: the closed loop's tables from the shell.

Both read the gateway's store (`--db` for a SQLite file, `--store-url`, or `[store]` of `--config`: SQLite
path or PostgreSQL url), where the gateway keeps decisions, shadow labels, the triage queue and downstream
signal events side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import DEFAULT_SINCE, add_json_lines, add_since, add_store_source
from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from gearshift.store.labels import LabelStore


def _source(p: argparse.ArgumentParser) -> None:
    add_store_source(p)


def register(subparsers: Any) -> None:
    tri = subparsers.add_parser("triage", help="review decisions where the tiers' answers disagreed")
    sub = tri.add_subparsers(dest="triage_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="show triage items")
    _source(ls)
    ls.add_argument("--status", choices=["open", "labelled", "all"], default="open",
                    help="which items: open (not yet labelled, the default), labelled or all")
    ls.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default 50)")
    add_json_lines(ls, "the items (with both answers)")
    ls.set_defaults(handler=_list)
    lb = sub.add_parser("label", help="label one item")
    _source(lb)
    lb.add_argument("item_id", type=int, metavar="ID", help="the item's id, as `triage list` shows it")
    lb.add_argument("--label", required=True, choices=["strong_needed", "cheap_ok", "skip"],
                    help="strong_needed: the cheap answer was not good enough; cheap_ok: it was; skip: cannot tell")
    lb.set_defaults(handler=_label)
    ex = sub.add_parser("export", help="write labelled items as canonical training data (JSONL + models table)")
    _source(ex)
    ex.add_argument("--out", type=Path, required=True, metavar="FILE.jsonl",
                    help="canonical outcome data to write (a models table is written beside it)")
    ex.add_argument("--include-judge", action="store_true", help="also unlabelled items, scored by the judge")
    ex.set_defaults(handler=_export)

    ag = subparsers.add_parser("judge-agreement",
                               help="how often the shadow judge agrees with reviewers' triage labels (kappa)")
    _source(ag)
    ag.add_argument("--segment", action="append", default=[], metavar="NAME",
                    help="also per value of this segment (language, length_bucket, has_code, topic, client); "
                         "repeatable")
    ag.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    ag.set_defaults(handler=_agreement)

    sig = subparsers.add_parser("signals", help="downstream signal rates per tier and segment")
    _source(sig)
    add_since(sig, DEFAULT_SINCE)
    add_json_lines(sig, "the rates")
    sig.set_defaults(handler=_signals)


def _store(args: argparse.Namespace) -> LabelStore:
    """The label store of `--db` (SQLite) or of `--config`'s `[store]` (SQLite path or PostgreSQL url)."""
    from gearshift.cli.common import existing_store_url
    from gearshift.store.factory import open_label_store

    return open_label_store(existing_store_url(args.db, args.config, store_url=args.store_url))


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gearshift.cli.terminal import safe_cell

    store = _store(args)
    try:
        items = store.triage_items(status=args.status, limit=args.limit)
    finally:
        store.close()
    console = Console(soft_wrap=True)
    if args.json:
        for it in items:
            console.print(json.dumps(it, ensure_ascii=False), markup=False, highlight=False)
        return 0
    if not items:  # an empty table would not say how items arrive
        Console(stderr=True, soft_wrap=True).print(
            f"no triage items ({args.status}): a decision joins the queue when [shadow] routing also asked the other "
            "tier and the judge scored the two answers [shadow.triage] min_gap or more apart",
            markup=False, highlight=False)
        return 0
    table = Table(title=f"{len(items)} triage item(s), {args.status}")
    for col in ("id", "time", "routed", "scores", "gap", "label", "prompt"):
        table.add_column(col, justify="right" if col in ("id", "gap") else "left", overflow="fold")
    for it in items:
        scores = (it.get("judge") or {}).get("scores") or {}
        table.add_row(str(it["id"]), time.strftime("%m-%d %H:%M", time.localtime(it["time"])),
                      safe_cell((it.get("routing") or {}).get("tier")),
                      safe_cell(" ".join(f"{t}={s:.2f}" for t, s in scores.items())), f"{it.get('gap') or 0:.2f}",
                      safe_cell(it.get("label") or ""), safe_cell(str(it.get("prompt") or "")[:80].replace("\n", " ")))
    console.print(table)
    return 0


def _label(args: argparse.Namespace) -> int:
    from rich.console import Console

    store = _store(args)
    try:
        item = store.set_triage_label(args.item_id, args.label, time.time())
    finally:
        store.close()
    if item is None:
        raise ConfigError(f"no triage item {args.item_id}")
    Console().print(f"item {args.item_id} ({item['request_id']}) labelled {args.label}", highlight=False)
    return 0


def _export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.closed_loop.triage import export_triage

    store = _store(args)
    try:
        n = export_triage(store, args.out, include_judge=args.include_judge)
    finally:
        store.close()
    Console().print(f"wrote {n} record(s) to {args.out}", highlight=False)
    return 0


def _agreement(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gearshift.cli.terminal import safe_cell
    from gearshift.learning.judge_agreement import judge_agreement

    store = _store(args)
    try:
        report = judge_agreement(store.triage_items(status="labelled", limit=None), args.segment)
    finally:
        store.close()
    console = Console(soft_wrap=True)
    if args.json:
        console.print(json.dumps(report.to_json()), markup=False, highlight=False)
        return 0
    if report.overall.n == 0:
        console.print(f"no labelled triage item with a judge label yet ({report.skipped} skipped): label some "
                      "with `gearshift triage label ID --label strong_needed|cheap_ok`", highlight=False)
        return 0

    def fmt(x: float | None, f: str) -> str:
        return "n/a" if x is None else format(x, f)

    table = Table(title=f"judge vs reviewers on {report.overall.n} labelled triage item(s) "
                        f"({report.skipped} skipped or unjudged)")
    for col in ("group", "n", "agreement", "kappa", "judge strong / reviewer cheap", "judge cheap / reviewer strong"):
        table.add_column(col, justify="left" if col == "group" else "right")
    groups = [("all", report.overall)] + [(f"{s}={v}", a) for s, vals in report.by_segment.items()
                                         for v, a in vals.items()]
    for name, a in groups:
        table.add_row(safe_cell(name), str(a.n), fmt(a.agreement, ".1%"), fmt(a.kappa, ".2f"),
                      str(a.confusion["cheap_ok"]["strong_needed"]), str(a.confusion["strong_needed"]["cheap_ok"]))
    console.print(table)
    return 0


def _signals(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gearshift.cli.common import parse_since
    from gearshift.cli.terminal import safe_cell
    from gearshift.closed_loop.signals import signal_rates

    since, until = parse_since(args.since), time.time() + 1.0
    store = _store(args)
    try:
        rates = signal_rates(store, since, until)
    finally:
        store.close()
    console = Console(soft_wrap=True)
    if args.json:
        for r in rates:
            console.print(json.dumps(r.to_json()), markup=False, highlight=False)
        return 0
    if not rates:  # an empty table would say nothing about why
        Console(stderr=True, soft_wrap=True).print(
            f"no downstream signals on decisions since {args.since} ago: they come from POST /v1/feedback "
            "(thumbs, ratings, hand-offs) and from conversations' next turns (regenerations, edits); "
            "README: Feedback and implicit signals", markup=False, highlight=False)
        return 0
    table = Table(title=f"downstream signals on decisions since {args.since} ago")
    for col in ("signal", "group", "hits", "decisions", "rate"):
        table.add_column(col, justify="left" if col in ("signal", "group") else "right")
    for r in rates:
        table.add_row(safe_cell(r.signal), safe_cell(r.group), str(r.hits), str(r.decisions), f"{r.rate:.1%}")
    console.print(table)
    return 0
