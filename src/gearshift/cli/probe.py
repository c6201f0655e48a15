"""`gearshift probe`: adversarial routing probes against one router, with a flip-rate budget per family.

Trainable routers are fitted on (a sample of) the train part of the fixed 80/20 split, or loaded from
--router-dir; probes run on a seeded sample of the test part. Exit codes: 0 every judged family within
budget, 3 at least one above, 1 on errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.cli.terminal import add_json_options

if TYPE_CHECKING:
    from gearshift.evaluation.probes import ProbeReport
    from gearshift.routers.base import Router

EXIT_OVER_BUDGET = 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("probe", help="adversarial routing probes: flip rates per family against a budget",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--router", metavar="NAME[:k=v,...]", help="router to probe (e.g. heuristic, knn:k=16)")
    p.add_argument("--router-dir", type=Path, help="load a saved router instead of training one")
    p.add_argument("--data", default="mmlu", help="dataset name or canonical .jsonl (default mmlu)")
    p.add_argument("--data-dir", type=Path, help="raw data directory (default: from config)")
    p.add_argument("--n", type=int, default=200, help="test prompts to probe (default 200)")
    p.add_argument("--train-n", type=int, default=3000, help="training prompts for trainable routers (default 3000)")
    p.add_argument("--budget", type=float, default=0.1, help="flip-rate budget per judged family (default 0.1)")
    p.add_argument("--family-budget", action="append", default=[], metavar="FAMILY=RATE",
                   help="budget for one family, repeatable")
    p.add_argument("--families", help="comma-separated families to run (default: all)")
    p.add_argument("--strong-share", type=float, default=0.5,
                   help="set the threshold so this share of the probe prompts goes strong (default 0.5)")
    p.add_argument("--threshold", type=float, help="fixed p_strong threshold (overrides --strong-share)")
    p.add_argument("--strong", help="strong model for training labels (default: highest tier)")
    p.add_argument("--weak", help="weak model for training labels (default: lowest tier)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and perturbations (default 0)")
    add_json_options(p, "the probe report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_probe)


def _budgets(items: list[str]) -> dict[str, float]:
    from gearshift.errors import ConfigError

    out: dict[str, float] = {}
    for item in items:
        name, eq, raw = item.partition("=")
        try:
            out[name.strip()] = float(raw)
        except ValueError:
            raise ConfigError(f"--family-budget {item!r} is not FAMILY=RATE") from None
        if not eq:
            raise ConfigError(f"--family-budget {item!r} is not FAMILY=RATE")
    return out


def _router(args: argparse.Namespace, train_prompts: list[str], gaps: Any) -> Router:
    from gearshift.errors import ConfigError
    from gearshift.routers.base import TrainableRouter
    from gearshift.routers.registry import load_router, make_router, parse_router_spec

    if args.router_dir is not None:
        router = load_router(args.router_dir)
        if args.router and parse_router_spec(args.router)[0] != router.name:
            raise ConfigError(f"--router {args.router} but {args.router_dir} holds a {router.name!r} router")
        return router
    if not args.router:
        raise ConfigError("give --router NAME or --router-dir DIR")
    name, params = parse_router_spec(args.router)
    router = make_router(name, **params)
    if isinstance(router, TrainableRouter) and not router.is_fitted():
        router.fit(train_prompts, gaps)
    return router


def run_probe(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.progress import Progress

    from gearshift.cli.terminal import emit_json, json_outputs, stdout_console
    from gearshift.data.registry import load_dataset
    from gearshift.data.text import dedupe_key
    from gearshift.errors import ConfigError
    from gearshift.evaluation.labels import check_pair, default_pair, outcome_gaps
    from gearshift.evaluation.probes import ProbeConfig, policy_for_share, run_probes
    from gearshift.evaluation.protocols import fixed_split
    from gearshift.routers.policy import TierPolicy

    console = Console(stderr=True, soft_wrap=True)  # progress and info; results go to stdout
    json_stdout, json_path = json_outputs(args, console)
    if args.n < 1 or args.train_n < 2:
        raise ConfigError("--n must be at least 1 and --train-n at least 2")
    families = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else None
    config = ProbeConfig(budget=args.budget, budgets=_budgets(args.family_budget), seed=args.seed,
                         families=families)
    with console.status(f"loading {args.data}"):
        data = load_dataset(args.data, args.data_dir)
    fold = fixed_split(data.ids, keys=[dedupe_key(p) for p in data.prompts])
    rng = np.random.default_rng(args.seed)
    test_idx = np.sort(rng.choice(fold.test, min(args.n, len(fold.test)), replace=False))
    prompts = [data.records[i].prompt for i in test_idx]
    train_prompts: list[str] = []
    gaps: Any = None
    needs_training = args.router_dir is None
    if needs_training:
        train = data.subset(np.sort(rng.choice(fold.train, min(args.train_n, len(fold.train)), replace=False)))
        strong, weak = default_pair(train)
        strong, weak = args.strong or strong, args.weak or weak
        check_pair(train, strong, weak)
        train_prompts, gaps = train.prompts, outcome_gaps(train, strong, weak)
    with console.status(f"preparing router {args.router or args.router_dir}"):
        router = _router(args, train_prompts, gaps)
    policy = TierPolicy(thresholds=(args.threshold,)) if args.threshold is not None \
        else policy_for_share(router, prompts, args.strong_share)
    with Progress(console=console, transient=True, disable=args.no_progress or not console.is_terminal) as progress:
        task = progress.add_task("probing", total=len(config.families or _all_families()))

        def step(family: str) -> None:
            progress.update(task, description=f"probing: {family}", advance=1)

        report = run_probes(router, prompts, policy, config, progress=step)
    if not json_stdout:
        _print(report, stdout_console())
    if json_stdout or json_path:
        emit_json(report.to_json(), json_stdout, json_path, console, "probe report")
    return 0 if report.passed else EXIT_OVER_BUDGET


def _all_families() -> tuple[str, ...]:
    from gearshift.evaluation.probes import FAMILIES

    return FAMILIES


def _print(report: ProbeReport, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"routing probes: {report.router} on {report.n_prompts} prompts "
                        f"(threshold {', '.join(f'{t:.3f}' for t in report.thresholds)}, seed {report.seed})")
    for col in ("family", "kind", "flips", "n", "flip rate", "budget", "verdict"):
        table.add_column(col, justify="left" if col in ("family", "kind", "verdict") else "right")
    for f in report.families:
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[dim]reported[/]"}[f.passed]
        budget = f"{f.budget:.2f}" if f.budget is not None else "-"
        table.add_row(f.family, f.kind, str(f.flips), str(f.n), f"{f.flip_rate:.3f}", budget, verdict)
    console.print(table)
    for f in report.families:
        if f.note:
            console.print(f"  [dim]{escape(f'{f.family}: {f.note}')}[/]", highlight=False)
    status = "[green]all judged families within budget[/]" if report.passed \
        else f"[red]over budget: {', '.join(report.failed)}[/]"
    console.print(status)
