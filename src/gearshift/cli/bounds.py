"""`gearshift bounds`: is the router doing real work? The live router against all-cheap and all-strong.

On logged traffic (`--db`, `--config`, `--store-url`; run `[experiment] misroute_fraction` and/or
`[exploration]` so both tiers are served on every kind of prompt) the three policies are self-normalised
inverse-propensity estimates over the whole log, once with quality from judge labels (shadow/triage) and
once from downstream signals (learning/signal_model.py: a thumbs down, low rating, hand-off, regeneration or
correction makes an answer bad; abandonment says nothing about the answer).
Offline, `--data mmlu|gsm8k|FILE --router NAME` reads them off recorded outcomes of both models.

"Real work" means beating a random router with the same strong share (the straight line from all-cheap
to all-strong) with a bootstrap confidence interval above zero. The money check sets the dollars saved
against all-strong against the extra bad answers at `--cost-per-bad-answer` each.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import add_log_source
from gearshift.cli.terminal import add_json_options
from gearshift.errors import ConfigError, DataError

if TYPE_CHECKING:
    from gearshift.learning.bounds_check import SourceResult

def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bounds", help="live router vs forced all-cheap / all-strong, with a money check",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_log_source(p)
    p.add_argument("--cost-per-bad-answer", type=float, default=0.05, help="USD a bad answer costs downstream "
                                                                            "(default 0.05)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples for the intervals (default 500)")
    p.add_argument("--data", help="offline: recorded outcomes (mmlu, gsm8k or FILE.jsonl) instead of the log")
    p.add_argument("--router", default="heuristic", help="offline: router spec or NAME[/VERSION] (default heuristic)")
    p.add_argument("--threshold", type=float, default=0.5, help="offline: p_strong needed for strong (default 0.5)")
    p.add_argument("--n", type=int, default=2000, help="offline: prompts sampled from --data (default 2000)")
    add_json_options(p, "the report")
    p.set_defaults(handler=run_bounds)


def _warn(text: str) -> None:
    from rich.console import Console

    from gearshift.cli.terminal import say

    say(Console(stderr=True), "[yellow]warning:[/]", text)


def _offline(args: argparse.Namespace) -> dict[str, SourceResult]:
    import numpy as np

    from gearshift.cli.common import score_prompts
    from gearshift.data.registry import load_dataset
    from gearshift.evaluation.labels import default_pair
    from gearshift.evaluation.metrics import Outcomes
    from gearshift.learning.bounds_check import recorded_result
    from gearshift.learning.candidates import resolve_candidate

    router, _, _ = resolve_candidate(args.router, None)
    if router is None:
        raise ConfigError("offline bounds need a router (--router), not the live policy")
    data = load_dataset(args.data)
    rng = np.random.default_rng(0)
    data = data.subset(np.sort(rng.choice(len(data), min(args.n, len(data)), replace=False)))
    strong, weak = default_pair(data)
    o = Outcomes.from_dataset(data, strong, weak)
    if not (np.all(np.isfinite(o.c_strong)) and np.all(np.isfinite(o.c_weak))):
        raise DataError(f"{args.data}: recorded outcomes lack costs for {strong} or {weak}")
    routed = score_prompts(router, data.prompts, f"scoring {args.data}") >= args.threshold
    return {"recorded": recorded_result(o.s_strong, o.s_weak, o.c_strong, o.c_weak, routed,
                                        cost_per_bad_answer=args.cost_per_bad_answer, source="recorded",
                                        n_boot=args.n_boot)}


def _print(results: dict[str, SourceResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for source, res in results.items():
        rep = res.report
        table = Table(title=f"{source}: {rep.n} requests ({rep.source})")
        for col in ("policy", "quality", "cost / request", "strong share", "n"):
            table.add_column(col, justify="left" if col == "policy" else "right")
        for v in (rep.all_cheap, rep.router, rep.all_strong):
            table.add_row(v.name, f"{v.quality:.4f}", f"${v.cost_usd:.6f}", f"{v.strong_share:.1%}", str(v.n))
        console.print(table)
        if res.arm_means:
            console.print("served per arm: " + ", ".join(f"{a} n={m['n']} quality={m['quality']:.3f}"
                                                         for a, m in res.arm_means.items()), highlight=False)
        console.print(res.verdict, highlight=False)


def run_bounds(args: argparse.Namespace) -> int:
    if args.cost_per_bad_answer < 0:
        raise ConfigError("--cost-per-bad-answer must be >= 0")
    if args.data:
        results = _offline(args)
    else:
        from gearshift.cli.common import parse_since, read, store_url
        from gearshift.learning.bounds_check import bad_answer_ids, logged_results

        log = read(args)
        since, url = parse_since(args.since), store_url(args)
        arms = dict(zip(log.request_ids, log.experiment_arms, strict=True))  # read with the log, not again
        if not any(a is not None for a in arms.values()) and not log.explored.any():
            _warn("no misroute experiment or exploration in the window: only the router's own choices were "
                  "served, so the bounds are biased; set [experiment] misroute_fraction")
        results = logged_results(log, arms, bad_answer_ids(url, since),
                                 cost_per_bad_answer=args.cost_per_bad_answer, n_boot=args.n_boot, warn=_warn)
    from rich.console import Console

    from gearshift.cli.terminal import emit_json, json_outputs

    err = Console(stderr=True, soft_wrap=True)
    json_stdout, json_path = json_outputs(args, err)
    if not json_stdout:
        _print(results)
    if json_stdout or json_path:
        emit_json({k: v.to_json() for k, v in results.items()}, json_stdout, json_path, err, "bounds")
    return 0
