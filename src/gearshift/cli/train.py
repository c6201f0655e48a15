"""`gearshift train`: fit a router on recorded outcomes, calibrate its operating point, save it for `serve`.

    gearshift train --data my-outcomes.jsonl --router stack --target-strong-share 0.3 --out routers/my-router

The directory holds the router (`manifest.json`, `state.npz`: no pickle) and `operating_point.json` (the
thresholds, the target they were calibrated to out of fold, and what they achieved there). Serve it with
`[router] path = "routers/my-router"`; it is also registered in the gateway store's version registry (as
`NAME/<n>`, a challenger), so `gearshift ope` / `promote` can take it from there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gearshift.cli.common import add_log_source
from gearshift.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="fit a router on recorded outcomes and save it, calibrated, for serve",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="recorded outcomes: a dataset name or FILE.jsonl")
    p.add_argument("--router", default="stack", help="trainable router (default stack)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", dest="params",
                   help="router parameter, repeatable (e.g. --param C=1.0)")
    p.add_argument("--strong", help="strong model (default: highest tier in the models table)")
    p.add_argument("--weak", help="weak model (default: lowest tier in the models table)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-strong-share", type=float, metavar="SHARE",
                        help="send this share of requests strong (default 0.3 when no target is given)")
    target.add_argument("--target-cost-per-1k", type=float, metavar="USD", help="average USD per 1,000 requests")
    target.add_argument("--max-quality-loss", type=float, metavar="LOSS",
                        help="quality loss vs all-strong to stay under, with --confidence (risk control)")
    p.add_argument("--confidence", type=float, default=0.95, help="risk control confidence (default 0.95)")
    p.add_argument("--folds", type=int, default=3, help="out-of-fold splits for the calibration (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed for the folds and the router (default 0)")
    p.add_argument("--out", type=Path, required=True, help="directory to save the router in (created)")
    p.add_argument("--overwrite", action="store_true", help="replace a router already saved in --out")
    p.add_argument("--name", help="version name in the registry (default: the router name)")
    p.add_argument("--no-register", action="store_true", help="only save the directory, do not register it")
    p.add_argument("--data-dir", type=Path, help="raw data directory for dataset names (default: from config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_log_source(p, since=None)
    p.set_defaults(handler=run_train)


def _target(args: argparse.Namespace) -> Any:
    from gearshift.learning.train import DEFAULT_TARGET, Target

    if args.target_cost_per_1k is not None:
        return Target("cost_per_1k", args.target_cost_per_1k)
    if args.max_quality_loss is not None:
        return Target("max_quality_loss", args.max_quality_loss, args.confidence)
    share = args.target_strong_share if args.target_strong_share is not None else DEFAULT_TARGET[1]
    return Target("strong_share", share)


def _tier_names(n: int) -> tuple[str, ...]:
    """Placeholder names: a gateway compares by position, cheap to strong, whatever its tiers are called."""
    return ("cheap", "strong") if n == 2 else tuple(f"tier{i}" for i in range(n))


def run_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gearshift.cli.common import parse_params, registry_for_write
    from gearshift.cli.terminal import progress_enabled
    from gearshift.data.registry import load_dataset
    from gearshift.evaluation.labels import default_pair
    from gearshift.learning.train import train
    from gearshift.routers.operating_point import save_operating_point

    console = Console(soft_wrap=True)  # paths and the TOML snippet must survive copy-paste: never wrapped
    err = Console(stderr=True)
    target = _target(args)
    params = parse_params(args.params)
    with err.status(f"loading {args.data}"):
        data = load_dataset(args.data, args.data_dir)
    strong, weak = default_pair(data)
    strong, weak = args.strong or strong, args.weak or weak
    if args.out.exists() and any(args.out.iterdir()):
        if not (args.out / "manifest.json").exists():
            raise ConfigError(f"--out {args.out} exists and is not a saved router: choose an empty or new directory")
        if not args.overwrite:  # a version registered from it would silently start serving the new fit
            raise ConfigError(f"--out {args.out} already holds a saved router (a registered version may point at it): "
                              "choose a new directory, or pass --overwrite to replace it")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not progress_enabled(args.no_progress, err)) as bar:
        task = bar.add_task(f"fitting {args.router} on {len(data)} prompts: fold 1 of {args.folds}",
                            total=args.folds + 1)

        def step(done: int, total: int, what: str) -> None:
            nxt = f"fold {done + 1} of {args.folds}" if done < args.folds else "final fit on all prompts"
            bar.update(task, completed=done, description=f"fitting {args.router} on {len(data)} prompts: {nxt}")

        trained = train(data, args.router, params, strong, weak, target, folds=args.folds, seed=args.seed,
                        progress=step)
    out = trained.router.save(args.out)
    save_operating_point(out, trained.point)
    from gearshift.routers.base import prompt_text
    from gearshift.routers.reference import build_reference, save_reference

    # drift: what the gateway's live scores are compared with (`[slo.drift]`, `gearshift drift`)
    save_reference(out, build_reference(
        trained.oof_p_strong, trained.point.thresholds, _tier_names(len(trained.point.thresholds) + 1),
        prompts=[prompt_text(p) for p in data.prompts], quality_loss_rate=trained.point.measured.get(
            "quality_loss_rate"), source=f"out-of-fold scores of {len(data)} {data.name} prompts"))
    console.print(f"trained [bold]{args.router}[/] on {len(data)} prompts of {escape(data.name)} "
                  f"({escape(strong)} vs {escape(weak)}), saved to {escape(str(out))}", highlight=False)
    console.print(f"operating point: {trained.point.describe()}", highlight=False)
    apgr = trained.point.measured.get("apgr")
    if apgr is not None:
        console.print(f"out-of-fold APGR {apgr:.3f} (0.5 = random routing, 1.0 = the oracle)", highlight=False)
    if not args.no_register:
        reg = registry_for_write(args)
        try:
            name = args.name or args.router
            v = reg.register(name, trained.router.name, out.resolve(), thresholds=trained.point.thresholds,
                             metrics={"trained": {**trained.point.trained_on, "target": trained.point.target,
                                                  "out_of_fold": trained.point.measured}})
        finally:
            reg.close()
        console.print(f"registered as challenger [bold]{escape(v.ref)}[/] (gearshift versions; promote with "
                      f"gearshift promote {escape(v.ref)})", highlight=False)
    console.print(escape(f'serve it: in gearshift.toml\n\n[router]\npath = "{out.resolve()}"\n'), highlight=False)
    return 0
