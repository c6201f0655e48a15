"""`gearshift drift --since 1d`: the live drift check (`[slo.drift]`) replayed from the store.

The decisions of the window are compared with a reference exactly as the gateway does it
(`closed_loop.drift_report.compare`): PSI and KS on p_strong, PSI and chi-square on tier shares and segment mix,
then the reading: drift (strong share and cost up), collapse (cheap share up, quality down), shift (moved, neither).

The reference, first that applies: `--reference FILE|DIR`; `--router NAME[/VERSION]|champion` (the registered
version's saved `score_reference.json`; only that version's decisions are compared); `--config`'s
`[slo.drift] reference`, `[router] version` or `[router] path`; else the decisions of the period just before the
window, of the same length (yesterday's traffic for `--since 1d`). Quality evidence: bad-answer signals (thumbs
down, regenerations, corrections, hand-offs) and shadow labels whose cheapest sufficient tier was above the served
one, from the same store.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import add_since, add_store_source
from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from gearshift.closed_loop.drift_report import DriftReport, DriftRules
    from gearshift.routers.reference import ScoreReference


def register(subparsers: Any) -> None:
    from gearshift.cli.terminal import add_json_options

    p = subparsers.add_parser("drift", help="compare recent decisions with the router's reference: drift, collapse",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_source(p, config="read [store], [router] and [slo.drift] from this gateway config")
    add_since(p)
    p.add_argument("--reference", type=Path, metavar="FILE|DIR", help="a score_reference.json, or a saved router "
                                                                      "directory holding one")
    p.add_argument("--router", metavar="REF", help="a registered version (NAME[/VERSION] or champion): its reference "
                                                  "and only its decisions")
    p.add_argument("--min-samples", type=int, help="routed decisions needed to compare (default: [slo.drift], 200)")
    add_json_options(p, "the comparison")
    p.set_defaults(handler=run_drift)


def _rules(args: argparse.Namespace) -> DriftRules:
    from dataclasses import replace

    from gearshift.cli.common import gateway_settings
    from gearshift.closed_loop.drift_watch import rules_of

    rules = rules_of(gateway_settings(args.config).slo.drift)
    return rules if args.min_samples is None else replace(rules, min_samples=args.min_samples)


def _configured(args: argparse.Namespace, url: str) -> tuple[ScoreReference | None, str | None, str]:
    """(reference, the version whose decisions to compare or None, where the reference came from)."""
    from gearshift.routers.reference import load_reference

    if args.reference is not None:
        ref = load_reference(args.reference)
        if ref is None:
            raise ConfigError(f"--reference {args.reference}: no score reference there")
        return ref, None, str(args.reference)
    if args.router is not None:
        from gearshift.store.factory import live_version

        v = live_version(url, args.router)
        ref = load_reference(v.path)
        if ref is None:
            raise ConfigError(f"router version {v.ref} was saved without a score reference ({v.path})")
        return ref, v.ref, f"version {v.ref}"
    if args.config is None:
        return None, None, ""
    from gearshift.cli.common import gateway_settings

    s = gateway_settings(args.config)
    if s.slo.drift.reference is not None:
        return load_reference(s.slo.drift.reference), None, s.slo.drift.reference
    if s.router.version is not None:
        from gearshift.store.factory import live_version

        v = live_version(url, s.router.version)
        return load_reference(v.path), v.ref, f"version {v.ref}"
    if s.router.path is not None:
        return load_reference(s.router.path), None, str(s.router.path)
    return None, None, ""


def _baseline(rows: list[dict[str, Any]], since: float, span: float, min_samples: int) -> ScoreReference:
    """The decisions of [since - span, since) as the reference, when no saved one applies."""
    from gearshift.closed_loop.drift_report import decided
    from gearshift.routers.reference import MIX_SEGMENTS, build_reference

    before = [d for d in map(decided, rows) if d is not None and since - span <= d.time < since]
    if len(before) < min_samples:
        raise ConfigError(f"no score reference to compare with and only {len(before)} routed decisions in the "
                          f"period before the window: pass --reference, --router or --config (a router saved by "
                          f"`gearshift train` carries one), or widen --since")
    thresholds = max(before, key=lambda d: d.time).thresholds
    by: dict[str, list[float]] = {}
    for d in before:
        by.setdefault(d.tier, []).append(d.score)
    tiers = tuple(sorted(by, key=lambda t: sum(by[t]) / len(by[t])))  # cheap to strong: by mean score served
    if len(tiers) != len(thresholds) + 1:
        raise ConfigError(f"the decisions before the window served {len(tiers)} tier(s) but their thresholds imply "
                          f"{len(thresholds) + 1}: pass --reference or --config")
    return build_reference([d.score for d in before], thresholds, tiers,
                           segments=[dict(zip(MIX_SEGMENTS, d.mix, strict=True)) for d in before],
                           source=f"the {len(before)} routed decisions of the period before the window")


def _bad(url: str, since: float, tiers: tuple[str, ...]) -> set[str]:
    """Request ids with a bad-answer signal, or a shadow label whose cheapest sufficient tier is above the served one
    (the live check's `observe_bad`)."""
    from gearshift.learning.signal_model import is_bad
    from gearshift.store.factory import open_label_store

    store = open_label_store(url)
    try:
        out = {str(e["request_id"]) for e in store.signals(since=since) if is_bad(e)}
        for lab in store.labels(since=since):
            tier, need = lab.get("tier"), lab.get("min_tier")
            if tier in tiers and need in tiers and tiers.index(str(need)) > tiers.index(str(tier)):
                out.add(str(lab["request_id"]))
    finally:
        store.close()
    return out


def run_drift(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.cli.common import existing_store_url, parse_since
    from gearshift.cli.terminal import emit_json, json_outputs
    from gearshift.closed_loop.drift_report import compare
    from gearshift.store.base import DecisionQuery
    from gearshift.store.factory import open_decision_store

    url = existing_store_url(args.db, args.config, store_url=args.store_url)
    now = time.time()
    since = parse_since(args.since, now)
    rules = _rules(args)
    ref, version, source = _configured(args, url)
    store = open_decision_store(url)
    try:
        rows = store.query(DecisionQuery(since=since if ref is not None else since - (now - since), limit=None))
    finally:
        store.close()
    if ref is None:
        ref = _baseline(rows, since, now - since, rules.min_samples)
        source = ref.source
    window = [r for r in rows if float(r["time"]) >= since and (version is None or r.get("router_version") == version)]
    report = compare(ref, window, rules, _bad(url, since, ref.tiers))
    err = Console(stderr=True, soft_wrap=True)
    to_stdout, path = json_outputs(args, err)
    if to_stdout or path is not None:
        emit_json({"since": args.since, "reference": source, "version": version, **report.to_json()}, to_stdout,
                  path, err, "drift")
    if not to_stdout:
        _print(Console(soft_wrap=True), report, args.since, source)
    return 0


def _print(console: Any, report: DriftReport, since: str, source: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"decisions since {since} ago against {escape(source)}", highlight=False)
    if not report.enough:
        console.print(escape(report.summary()), highlight=False)
        return
    colour = {"drift": "red", "collapse": "red", "shift": "yellow"}.get(report.reading or "", "green")
    console.print(f"reading: [bold {colour}]{report.reading or 'stable'}[/]", highlight=False)
    table = Table()
    for col in ("compared", "PSI", "test", "drifted", "live", "reference"):
        table.add_column(col, justify="left" if col in ("compared", "live", "reference") else "right")
    if report.scores is not None:
        s = report.scores
        table.add_row("p_strong", f"{s.psi:.3f}", f"KS {s.ks_statistic:.3f} (p={s.ks_p_value:.2g})",
                      "yes" if s.drifted else "no", f"n={s.n_current}", f"n={s.n_reference}")
    shifts = ([("tier shares", report.tiers)] if report.tiers is not None else []) + \
        [(f"{k} mix", v) for k, v in report.mix.items()]
    for name, sh in shifts:
        table.add_row(name, f"{sh.psi:.3f}", f"chi2 p={sh.p_value:.2g}", "yes" if sh.drifted else "no",
                      _shares(sh.live), _shares(sh.reference))
    console.print(table)
    console.print(escape(report.summary()), highlight=False)


def _shares(shares: dict[str, float]) -> str:
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{k} {v:.0%}" for k, v in top)
