"""`gearshift retrain | ope | promote | rollback | versions | calibrate`: learning from the gateway's own log.

All read the gateway's store: `--db` (a SQLite file), `--store-url`, or `[store]` of `--config` (SQLite
path or PostgreSQL url). Router versions are saved under `<db stem>-versions/` next to a SQLite file (with
PostgreSQL, `--versions-dir` names a directory every gateway can read) and registered beside the decisions. The gateway
serves the champion when its config says `[router] version = "champion"`; `promote` and `rollback` change
the registry only, and a running gateway swaps routers without a restart on `POST /v1/admin/router/reload`,
on SIGHUP (`gearshift serve`), or by itself with `[router] reload_interval_s` (gateway/reload.py).

Exit codes: 0 done; 1 error; 3 refused (no off-policy support, or a challenger failing a promotion gate).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import (
    add_json_lines,
    add_log_source,
    parse_params,
    read,
    registry,
    saved_versions_dir,
    score_prompts,
    store_exists,
)
from gearshift.cli.terminal import add_json_options
from gearshift.errors import GearshiftError

if TYPE_CHECKING:

    from gearshift.learning.gates import Gate
    from gearshift.learning.logs import DecisionLog
    from gearshift.learning.ope import OPEResult
    from gearshift.store.versions import RouterVersion, VersionRegistry

EXIT_REFUSED = 3
#: how a champion change reaches running gateways (printed by promote and rollback)
REACH = ("gateways with [router] version = \"champion\" serve it after POST /v1/admin/router/reload (admin key), "
         "SIGHUP to `gearshift serve`, or within [router] reload_interval_s when set")


def _reward(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", choices=["judge", "feedback", "both"], default="judge",
                   help="judge: shadow/triage labels; feedback: user signals; both: their mean (default judge)")


def register(subparsers: Any) -> None:
    rt = subparsers.add_parser("retrain", help="train a challenger router version from logged traffic")
    add_log_source(rt)
    _reward(rt)
    rt.add_argument("--name", required=True, help="version name; each retrain adds NAME/<next number>")
    rt.add_argument("--router", default="classifier", metavar="NAME[:k=v,...]",
                    help="trainable router and its parameters, as in `gearshift eval --router` (default classifier)")
    rt.add_argument("--param", "--params", action="append", default=[], metavar="K=V", dest="params",
                    help="one more router parameter, repeatable (the older spelling of NAME:k=v)")
    rt.add_argument("--weighting", choices=["ipw", "naive", "explored"], default="ipw",
                    help="ipw: inverse propensity (default); explored: exploration slice only; naive: biased baseline")
    rt.add_argument("--clip", type=float, help="cap importance weights (less variance, some bias)")
    rt.add_argument("--target-strong-share", type=float,
                    help="calibrate the version's threshold to this share (default: the live policy's share)")
    rt.set_defaults(handler=_retrain)

    ope = subparsers.add_parser("ope", help="off-policy estimate of a candidate's quality and cost on logged traffic")
    add_log_source(ope)
    _reward(ope)
    ope.add_argument("--candidate", required=True,
                     help="NAME[/VERSION], 'champion', 'live' (the logging policy without exploration), "
                          "or a router spec like heuristic")
    ope.add_argument("--thresholds", help="thresholds for a router spec (default: the logged ones)")
    ope.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples (default 500)")
    ope.add_argument("--min-ess", type=float, default=30.0, help="smallest effective sample size (default 30)")
    ope.add_argument("--warn-only", action="store_true", help="warn instead of refusing on weak support")
    add_json_options(ope, "the estimates")
    ope.set_defaults(handler=_ope)

    pr = subparsers.add_parser("promote", help="make a version the champion if it beats the current one off-policy")
    add_log_source(pr)
    _reward(pr)
    pr.add_argument("ref", metavar="NAME[/VERSION]", help="the version to promote (NAME alone: its newest)")
    pr.add_argument("--margin", type=float, default=0.0,
                    help="the paired quality gain's lower confidence bound must reach this (default 0: better than "
                         "the champion with 95%% confidence; negative: allowed to be that much worse)")
    pr.add_argument("--max-cost-increase", type=float, default=0.05,
                    help="estimated cost per request at most this fraction above the champion's (default 0.05)")
    pr.add_argument("--ece-tolerance", type=float, default=0.02,
                    help="p_strong's calibration error against judged hardness at most the champion's + this (0.02)")
    pr.add_argument("--estimator", choices=["ips", "snips", "dr"], default="dr", help="estimate compared (dr)")
    pr.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    pr.add_argument("--force", action="store_true", help="promote without the gates (recorded as forced)")
    pr.add_argument("--skip-probes", action="store_true",
                    help="promote even if the candidate fails the routing probes (recorded in the promotion note)")
    pr.add_argument("--probe-budget", type=float, default=0.1,
                    help="flip rate a judged probe family may reach (default 0.1, as gearshift probe)")
    pr.set_defaults(handler=_promote)

    rb = subparsers.add_parser("rollback", help="restore the previous champion")
    add_log_source(rb, since=None)
    rb.set_defaults(handler=_rollback)

    vs = subparsers.add_parser("versions", help="list router versions (champion, challengers, retired)")
    add_log_source(vs, since=None)
    add_json_lines(vs, "the versions")
    vs.set_defaults(handler=_versions)
    # `calibrate`, `train` and `bounds` (cli/calibrate.py, train.py, bounds.py) register themselves (cli/app.py)


def print_ope(console: Any, title: str, result: OPEResult) -> None:
    from rich.table import Table

    from gearshift.cli.terminal import say

    pct = f"{result.confidence:.0%}"
    table = Table(title=title)
    for col in ("estimator", "quality", f"quality {pct} CI", "cost $/req", f"cost {pct} CI"):
        table.add_column(col, justify="left" if col == "estimator" else "right")
    for name, e in result.estimates.items():
        table.add_row(name, f"{e.quality.value:.4f}", f"[{e.quality.lo:.4f}, {e.quality.hi:.4f}]",
                      f"{e.cost.value:.6f}", f"[{e.cost.lo:.6f}, {e.cost.hi:.6f}]")
    console.print(table)
    console.print(f"n={result.n}  effective sample size={result.ess:.1f}  max weight={result.max_weight:.2f}  "
                  f"logged quality={result.logged_quality:.4f}  logged cost={result.logged_cost:.6f}",
                  highlight=False)
    for w in result.warnings:
        say(console, "[yellow]warning:[/]", w)


# -- handlers --------------------------------------------------------------------------------------------------
def _retrain(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from gearshift.learning.retrain import retrain
    from gearshift.routers.calibrate import calibrate_share

    console = Console()
    log = read(args)
    traffic, rows = log.traffic(args.reward)
    from gearshift.routers.registry import parse_router_spec

    name, spec_params = parse_router_spec(args.router)  # `NAME[:k=v,...]`, as `gearshift eval --router` takes it
    params = {**spec_params, **parse_params(args.params)}
    with console.status(f"training {name} on {len(traffic)} logged decisions ({args.weighting})"):
        router = retrain(name, traffic, weighting=args.weighting, clip=args.clip, **params)
    with_prompt = np.flatnonzero([p is not None for p in log.prompts])
    p_new = score_prompts(router, [str(log.prompts[i]) for i in with_prompt])
    share = args.target_strong_share
    if share is None:  # keep the live policy's strong share: a new router should change *which* prompts go up
        share = float(np.mean(log.base_tiers()[with_prompt] == len(log.tiers) - 1))
    cal = calibrate_share(p_new, share, tolerance=0.0)
    reg = registry(args)
    try:
        version = reg.next_version(args.name)
        out = saved_versions_dir(args) / args.name / f"v{version}"
        router.save(out)
        from gearshift.closed_loop.signals import segment_labels
        from gearshift.routers.reference import build_reference, save_reference

        save_reference(out, build_reference(  # drift: the scores of the traffic it was retrained on
            p_new, cal.thresholds, cal.tiers, segments=[segment_labels(log.segments[i]) for i in with_prompt],
            source=f"{len(with_prompt)} logged prompts since {args.since}"))
        metrics = {"trained": {"n": len(traffic), "explored": int(traffic.explored.sum()),
                               "labelled": int(np.isfinite(log.gaps[rows]).sum()), "weighting": args.weighting,
                               "reward": args.reward, "since": args.since, "router": name, "params": params,
                               "strong_share": cal.shares[-1]}}
        v = reg.register(args.name, router.name, out, thresholds=cal.thresholds, metrics=metrics)
    finally:
        reg.close()
    console.print(f"registered challenger [bold]{v.ref}[/] ({router.name}, {len(traffic)} decisions of which "
                  f"{int(traffic.explored.sum())} explored; threshold {cal.thresholds[0]:.4f} sends "
                  f"{cal.shares[-1]:.1%} strong) at {out}", highlight=False)
    return 0


def _ope(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gearshift.cli.terminal import emit_json, json_outputs, say
    from gearshift.learning.candidates import run_ope
    from gearshift.learning.ope import InsufficientSupportError

    console = Console()
    log = read(args)
    thresholds = tuple(float(t) for t in args.thresholds.split(",")) if args.thresholds else None
    reg = registry(args)
    try:
        try:
            result, version = run_ope(log, args.candidate, reg, args.reward, n_boot=args.n_boot, score=score_prompts,
                                      min_ess=args.min_ess, warn_only=args.warn_only, thresholds=thresholds)
        except InsufficientSupportError as exc:
            say(console, "[bold red]refused:[/]", exc.message)
            return EXIT_REFUSED
        if version is not None:
            reg.update_metrics(version.ref, {"ope": {**result.to_json(), "reward": args.reward, "since": args.since}})
    finally:
        reg.close()
    json_stdout, json_path = json_outputs(args, Console(stderr=True, soft_wrap=True))
    if not json_stdout:
        print_ope(console, f"off-policy estimate of {args.candidate} ({args.reward} reward, since {args.since})",
                  result)
    if json_stdout or json_path:
        emit_json({"candidate": args.candidate, "reward": args.reward, **result.to_json()}, json_stdout, json_path,
                  Console(stderr=True, soft_wrap=True), "estimates")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from gearshift.cli.terminal import say
    from gearshift.learning.candidates import LIVE
    from gearshift.learning.gates import Gate
    from gearshift.learning.ope import InsufficientSupportError

    console = Console()
    reg = registry(args)
    try:
        candidate = reg.get(args.ref)
        champion = reg.champion()
        log: DecisionLog | None = None
        gates: list[Gate] = []
        if not args.force:
            log = read(args)
            base_ref = champion.ref if champion is not None else LIVE
            try:
                gates = _ope_gates(args, log, candidate.ref, base_ref, reg, console)
            except InsufficientSupportError as exc:
                say(console, "[bold red]refused:[/]", f"{exc.message} (use --force to promote anyway)")
                return EXIT_REFUSED
        note = "forced" if args.force else f"gates: {args.estimator} lower bound >= {args.margin:+g}, cost, calibration"
        probes = _probe_gate(args, candidate, console, log)
        gates.append(Gate("probes", bool(probes["passed"]), f"tier flips at most {args.probe_budget:.0%} per family",
                          probes))
        reg.update_metrics(candidate.ref, {"probes": probes, "gates": [g.to_json() for g in gates],
                                           "forced": bool(args.force)})
        failed = [g for g in gates if g.passed is False and g.name != "probes"]
        if failed:
            for g in failed:
                console.print(f"[bold red]refused:[/] {candidate.ref} fails the {g.name} gate: {escape(g.rule)}",
                              highlight=False)
            return EXIT_REFUSED
        if not probes["passed"]:
            if not args.skip_probes:
                console.print(f"[bold red]refused:[/] {candidate.ref} fails the routing probes "
                              f"({', '.join(probes['failed'])} over {args.probe_budget:.0%} tier flips); run "
                              f"gearshift probe --router-dir {escape(str(candidate.path))} for the cases, or pass "
                              "--skip-probes to promote anyway", highlight=False)
                return EXIT_REFUSED
            note += f"; probes FAILED ({', '.join(probes['failed'])}), skipped by --skip-probes"
        v = reg.promote(candidate.ref, note=note)
    finally:
        reg.close()
    console.print(f"[green]{v.ref} is the champion[/] in the registry; {escape(REACH)}", highlight=False)
    return 0


def _ope_gates(args: argparse.Namespace, log: DecisionLog, ref: str, base_ref: str, reg: VersionRegistry,
               console: Any) -> list[Gate]:
    """The quality, cost and calibration gates of `ref` against `base_ref` on the logged traffic, printed."""
    from rich.table import Table

    from gearshift.learning.candidates import candidate_probs, policy_scores, resolve_candidate, run_ope
    from gearshift.learning.gates import GateSettings, calibration_gate, paired_gain, quality_and_cost_gates

    new, _ = run_ope(log, ref, reg, args.reward, n_boot=args.n_boot,  # support check; kept with the version
                     score=score_prompts)
    reg.update_metrics(ref, {"ope": {**new.to_json(), "reward": args.reward, "since": args.since}})
    settings = GateSettings(args.estimator, args.margin, args.max_cost_increase, args.ece_tolerance,
                            n_boot=args.n_boot)
    bandit, rows = log.bandit(args.reward)
    probs, scores, targets = [], [], []
    for r in (ref, base_ref):
        router, ths, _ = resolve_candidate(r, reg)
        s = policy_scores(log, rows, router, score_prompts)
        scores.append(s)
        targets.append(str(getattr(router, "target", "soft")))  # the live policy: taken as soft
        probs.append(candidate_probs(log, rows, router, ths, scores=s))
    gain = paired_gain(bandit, probs[0], probs[1], estimator=args.estimator, n_boot=args.n_boot)
    gates = [*quality_and_cost_gates(gain, settings, base_ref),
             calibration_gate(scores[0], scores[1], log.gaps[rows], settings, base_ref,
                              (targets[0], targets[1]))]
    table = Table(title=f"promotion gates: {ref} against {base_ref} on {len(rows)} labelled requests")
    for col in ("gate", "result", "figures", "rule"):
        table.add_column(col)
    for g in gates:
        figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in g.figures.items())
        table.add_row(g.name, {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "n/a"}[g.passed], figures,
                      g.rule)
    console.print(table)
    return gates


PROBE_PROMPTS = 300  #: prompts the promotion gate probes (logged ones when the store has that many)


def _probe_gate(args: argparse.Namespace, candidate: RouterVersion, console: Any,
                log: DecisionLog | None) -> dict[str, Any]:
    """Run the routing probes on the candidate at its own thresholds; a summary for the registry. `log`: the
    decision log when the off-policy check already read it (read here only under --force)."""
    import numpy as np

    from gearshift.evaluation.probes import ProbeConfig, policy_for_share, run_probes
    from gearshift.routers.policy import TierPolicy
    from gearshift.routers.registry import load_router

    router = load_router(candidate.path)
    prompts: list[str] = []
    if log is None and store_exists(args):
        with contextlib.suppress(GearshiftError):  # no log, or nothing logged in the window: built-in prompts
            log = read(args)
    if log is not None:
        prompts = [str(p) for p in log.prompts if p][-PROBE_PROMPTS:]
    source = "logged prompts"
    if len(prompts) < 50:
        from gearshift.data.registry import load_dataset
        from gearshift.evaluation.protocols import fixed_split

        data = load_dataset("mmlu")
        test = fixed_split(data.ids).test
        pick = np.random.default_rng(0).permutation(test)[:PROBE_PROMPTS]
        prompts, source = [data.prompts[int(i)] for i in pick], "MMLU test-side prompts (too few logged)"
    thresholds = candidate.thresholds
    policy = TierPolicy(thresholds=thresholds) if thresholds is not None and len(thresholds) == 1 \
        else policy_for_share(router, prompts, 0.3)
    with console.status(f"probing {candidate.ref} on {len(prompts)} {source}"):
        report = run_probes(router, prompts, policy, ProbeConfig(budget=args.probe_budget))
    console.print(f"probes: {'passed' if report.passed else 'FAILED: ' + ', '.join(report.failed)} "
                  f"({len(prompts)} {source})", highlight=False)
    return {"passed": report.passed, "failed": list(report.failed), "budget": args.probe_budget,
            "n_prompts": len(prompts), "prompts": source,
            "flip_rates": {f.family: round(f.flip_rate, 4) for f in report.families if f.passed is not None}}


def _rollback(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    reg = registry(args)
    try:
        v = reg.rollback()
    finally:
        reg.close()
    Console().print(f"[green]rolled back: {v.ref} is the champion again[/] in the registry; {escape(REACH)}",
                    highlight=False)
    return 0


def _versions(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.table import Table

    reg = registry(args)
    try:
        versions = reg.all()
    finally:
        reg.close()
    console = Console(soft_wrap=True)
    if args.json:
        for v in versions:
            console.print(json.dumps(v.to_json()), markup=False, highlight=False)
        return 0
    table = Table(title=f"{len(versions)} router version(s)")
    for col in ("version", "status", "router", "created", "thresholds", "OPE dr quality", "path"):
        table.add_column(col)
    for v in versions:
        dr = v.metrics.get("ope", {}).get("estimates", {}).get("dr", {}).get("quality")
        table.add_row(v.ref, v.status, v.router, time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created)),
                      ", ".join(f"{t:.4f}" for t in v.thresholds or ()), f"{dr[0]:.4f}" if dr else "-", v.path)
    console.print(table)
    return 0
