"""`gearshift eval`: evaluate routers offline on recorded outcomes; with no arguments, the demo job.

The demo evaluates the built-in routers on MMLU and GSM8K under the fixed 80/20 split, prints the
metrics with reference rows and writes the HTML report to ./gearshift-report.html.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.status import Status
from rich.text import Text

from gearshift.cli.terminal import add_json_options

if TYPE_CHECKING:

    from gearshift.data.records import Dataset
    from gearshift.evaluation.runner import EvalResult
    from gearshift.routers.base import Router

#: Routers the demo (and `--router` left out) compares: the baselines, the best router (stack: sparse TF-IDF +
#: shape trees, ~35 s to fit on MMLU at folds=3) and the others on the model-free hashing embedder, so a cold
#: machine needs no e5 download or distillation (e5-static costs minutes cold).
DEFAULT_ROUTERS = ("random", "heuristic", "stack:folds=3", "knn:embedder=hashing",
                   "classifier:embedder=hashing,folds=3", "mf:embedder=hashing,max_iter=150")
DEMO_DATASETS = ("mmlu", "gsm8k")
DEFAULT_REPORT = Path("gearshift-report.html")
DEFAULT_STRONG_SHARE = 0.3  # the operating point a cost-minded user starts from: 7 of 10 requests cheap


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="evaluate routers on recorded outcomes (no args: the demo)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", help="training data: a dataset name or a canonical .jsonl")
    p.add_argument("--test", help="test data: a dataset name or a canonical .jsonl")
    p.add_argument("--router", action="append", metavar="NAME[:k=v,...]",
                   help=f"router to evaluate, repeatable (default: {', '.join(DEFAULT_ROUTERS)})")
    p.add_argument("--strong", help="strong model (default: highest tier in the models table)")
    p.add_argument("--weak", help="weak model (default: lowest tier in the models table)")
    p.add_argument("--protocol", choices=("split", "kfold", "group", "cross"),
                   help="split: fixed 80/20 by id hash; kfold; group: held-out values of --group-by; "
                        "cross: train on --train, test on --test (default when they differ, else split)")
    p.add_argument("--group-by", help="segment for --protocol group (default: the dataset's first segment)")
    p.add_argument("--folds", type=int, default=5, help="folds for kfold/group (default 5)")
    add_json_options(p, "the metrics")
    p.add_argument("--report", type=Path, help="write the HTML report here")
    p.add_argument("--scores", type=Path, help="write one JSONL line per test prompt (id, p_strong, label)")
    p.add_argument("--data-dir", type=Path, help="raw data directory (default: from config)")
    p.add_argument("--seed", type=int, default=0, help="seed for folds and the bootstrap (default 0)")
    p.add_argument("--eps", type=float, default=0.0, help="gap tolerance: strong needed iff gap > eps")
    p.add_argument("--target-strong-share", type=float, default=DEFAULT_STRONG_SHARE, metavar="SHARE",
                   help="operating point for the confusion matrix, q-loss and cost: the threshold that sends this "
                        f"share of the test prompts strong (label-free; default {DEFAULT_STRONG_SHARE})")
    p.add_argument("--threshold", type=float,
                   help="a fixed p_strong threshold instead (trained routers' scores are on different scales)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-cache", action="store_true",
                   help="always refit trainable routers (default: reuse fits cached under the gearshift cache dir)")
    p.set_defaults(handler=run_eval)


def _default_routers() -> list[str]:
    from gearshift.routers.registry import ROUTERS

    return [r for r in DEFAULT_ROUTERS if r.partition(":")[0] in ROUTERS]


def _labels(specs: list[str]) -> dict[str, str]:
    """Show a router by its name, or by its full spec when the same router is compared under several settings."""
    from gearshift.routers.registry import parse_router_spec

    names = [parse_router_spec(s)[0] for s in specs]
    return {s: n if names.count(n) == 1 else s for s, n in zip(specs, names, strict=True)}


def _evaluate_one(spec: str, label: str, train: Dataset | None, test: Dataset, strong: str, weak: str,
                  protocol: str, args: argparse.Namespace, console: Console) -> EvalResult:
    from gearshift.errors import ConfigError
    from gearshift.evaluation.metrics import MetricSettings
    from gearshift.evaluation.protocols import fixed_split, group_kfold, kfold
    from gearshift.evaluation.runner import default_fit_cache, evaluate, evaluate_folds
    from gearshift.routers.registry import make_router, parse_router_spec

    name, params = parse_router_spec(spec)
    settings = MetricSettings(threshold=args.threshold, eps=args.eps) if args.threshold is not None else \
        MetricSettings(target_strong_share=args.target_strong_share, eps=args.eps)
    kw: dict[str, Any] = {"settings": settings,
                          "n_boot": args.n_boot, "seed": args.seed, "progress": args.show_progress,
                          "console": console, "label": label,
                          "fit_cache": None if args.no_cache else default_fit_cache()}

    def make() -> Router:
        return make_router(name, **params)

    if protocol == "cross":
        return evaluate(make(), train, test, strong, weak, **kw)
    from gearshift.data.text import dedupe_key

    keys = [dedupe_key(p) for p in test.prompts]  # copies of a prompt never straddle train and test
    if protocol == "split":
        folds = [fixed_split(test.ids, keys=keys)]
    elif protocol == "kfold":
        folds = kfold(len(test), args.folds, args.seed, keys=keys)
    else:
        group_by = args.group_by or next(iter(test.segment_names()), None)
        if group_by is None or group_by not in test.segment_names():
            raise ConfigError(f"--protocol group needs --group-by SEGMENT; {test.name!r} has segments: "
                              f"{', '.join(test.segment_names()) or 'none'}")
        folds = group_kfold(test.segment(group_by), args.folds, args.seed, keys=keys)
        protocol = f"group:{group_by}"
    return evaluate_folds(make, test, folds, strong, weak, protocol=protocol, **kw)


_COLUMNS = ("router", "APGR", "95% CI", "CPT50", "CPT80", "CPT95", "AIQ", "strong", "q-loss")
#: narrow terminals lose these first: the router name, APGR and the operating point stay
_DROP_ORDER = ("CPT95", "95% CI", "AIQ", "CPT80", "CPT50")


def flag_line(r: EvalResult) -> str:
    """The flagged segments of one router, each with its count of quality losses (not a bare name)."""
    parts = []
    for s in r.flagged:
        c = s.metrics.confusion
        parts.append(f"{s.segment}={s.value} ({c.quality_loss} of {s.metrics.n} lost)")
    overall = r.metrics.confusion.quality_loss_rate
    return (f"quality-loss hot spots for {r.router} (rate > 2x the overall {overall:.1%}, n >= 30, z >= 3, "
            f">= 3 losses): " + ", ".join(parts))


def _print_results(results: list[EvalResult], console: Console) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from gearshift.cli.terminal import fit_table, print_fitted
    from gearshift.evaluation.legend import REFERENCE_LABELS
    from gearshift.evaluation.metrics import clean

    def f(v: float | None, d: int = 3) -> str:
        return "–" if v is None or clean(v) is None else f"{v:.{d}f}"

    by_set: dict[str, list[EvalResult]] = {}
    for r in results:
        by_set.setdefault(r.dataset, []).append(r)
    for dataset, rs in by_set.items():
        first = rs[0]
        title = escape(f"{dataset}: {first.strong} vs {first.weak}; {first.n_test} test prompts, protocol "
                       f"{first.protocol}")
        rows: list[dict[str, str]] = []
        for r in rs:
            ci = r.ci.intervals["apgr"] if r.ci else None
            m = r.metrics
            rows.append({"router": escape(r.router), "APGR": f(m.apgr),
                         "95% CI": f"{f(ci.lo, 2)}–{f(ci.hi, 2)}" if ci else "–",
                         **{f"CPT{round(t * 100)}": f(m.cpt[t]) for t in m.cpt}, "AIQ": f(m.aiq, 4),
                         "strong": f(m.confusion.strong_share, 2), "q-loss": f(m.confusion.quality_loss_rate, 2)})
        n_routers = len(rows)
        for name, ref in first.references.items():
            rows.append({"router": f"({REFERENCE_LABELS.get(name, name)})", "APGR": f(ref.apgr), "95% CI": "–",
                         **{f"CPT{round(t * 100)}": f(ref.cpt[t]) if ref.cpt else "–" for t in first.metrics.cpt},
                         "AIQ": f(ref.aiq, 4), "strong": f(ref.strong_share, 2), "q-loss": "–"})

        def build(columns: Sequence[str], title: str = title, rows: list[dict[str, str]] = rows,
                  n_routers: int = n_routers) -> Table:
            table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                          collapse_padding=True)
            for col in columns:
                table.add_column(col, justify="left" if col == "router" else "right", no_wrap=True)
            for i, row in enumerate(rows):
                table.add_row(*(row.get(c, "–") for c in columns), style="dim" if i >= n_routers else None)
            return table

        print_fitted(console, fit_table(console, build, _COLUMNS, _DROP_ORDER), _COLUMNS)
        for r in rs:
            if r.flagged:
                console.print(f"[yellow]{escape(flag_line(r))}[/]", highlight=False)
        for note in dict.fromkeys(n for r in rs for n in r.notes):
            console.print(f"[dim]note:[/] {escape(note)}", highlight=False)


def _print_legend(results: list[EvalResult], console: Console) -> None:
    """What the columns mean, last, under the operating points (the same words as the HTML report)."""
    from rich.markup import escape

    from gearshift.evaluation.legend import legend

    for line in legend(results[0].settings):
        console.print(f"[dim]{escape(line)}[/]", highlight=False)


#: an operating point further than this from its target share landed where tied scores let it (a share of
#: prompts: 0.01 is one point; continuous scores land within rounding of the target)
TIE_GAP = 0.01


def _print_operating_points(results: list[EvalResult], console: Console) -> None:
    """Where the threshold-dependent columns were measured: a trained router's raw 0.5 is no operating point."""
    for r in results:
        s, m = r.settings, r.metrics
        target = s.target_strong_share
        how = (f"threshold {s.threshold:.4g} (sends {target:.0%} of these prompts strong)"
               if target is not None else f"fixed threshold {s.threshold:g}")
        if target is not None and abs(m.confusion.strong_share - target) > TIE_GAP:
            how = (f"threshold {s.threshold:.4g} (aimed at {target:.0%} of these prompts strong; its scores tie in "
                   f"blocks, so the nearest a threshold gets is {m.confusion.strong_share:.1%})")
        cost = f", ${m.cost * 1000:.4f} per 1k prompts" if m.cost == m.cost else ""
        console.print(f"[dim]operating point[/] {r.dataset} / {r.router}: {how}: strong share "
                      f"{m.confusion.strong_share:.1%}, quality loss {m.confusion.quality_loss_rate:.1%}, "
                      f"mean score {m.quality:.3f}{cost}", highlight=False)


def _write_scores(results: list[EvalResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in results:
            need = r.needs_strong()
            for i, pid in enumerate(r.ids):
                fh.write(json.dumps({"id": pid, "p_strong": float(r.p_strong[i]), "needs_strong": bool(need[i]),
                                     "gap": float(r.gaps[i]), "router": r.router, "dataset": r.dataset}) + "\n")


class _Elapsed:
    """A status text that shows its own running time (the spinner redraws it)."""

    def __init__(self, text: str) -> None:
        self.text, self.start = text, time.monotonic()

    def __rich__(self) -> Text:
        return Text(f"{self.text}  {time.monotonic() - self.start:.0f} s")


class StepConsole(Console):
    """The stderr console of `gearshift eval`: every spinner says which router of how many runs, and for how long."""

    step = ""

    def status(self, status: Any, **kw: Any) -> Status:
        return super().status(_Elapsed(f"{self.step}{status}"), **kw)


def run_eval(args: argparse.Namespace) -> int:
    from gearshift.cli.terminal import emit_json, json_outputs, progress_enabled, stdout_console
    from gearshift.data.registry import load_dataset
    from gearshift.errors import ConfigError
    from gearshift.evaluation.labels import check_pair, default_pair
    from gearshift.evaluation.report import write_report

    # results on stdout; progress and info on stderr
    out, console = stdout_console(), StepConsole(stderr=True, soft_wrap=True)
    args.show_progress = progress_enabled(args.no_progress, console)
    json_stdout, json_path = json_outputs(args, console)
    demo = args.test is None and args.train is None
    routers = args.router or _default_routers()
    if demo:
        jobs = [(None, name, "split") for name in DEMO_DATASETS]
        report = args.report or DEFAULT_REPORT
        console.print(f"[bold]gearshift eval demo[/]: routers {', '.join(routers)} on {', '.join(DEMO_DATASETS)}, "
                      "fixed 80/20 split by prompt id", highlight=False)
    else:
        test_name = args.test or args.train
        protocol = args.protocol or ("cross" if args.train and args.train != test_name else "split")
        if protocol != "cross" and args.train and args.train != test_name:
            raise ConfigError(f"--protocol {protocol} evaluates within one dataset; use --protocol cross to train "
                              f"on {args.train} and test on {test_name}")
        jobs = [(args.train if protocol == "cross" else None, test_name, protocol)]
        report = args.report
    results: list[EvalResult] = []
    labels = _labels(routers)
    n_steps, step = len(jobs) * len(labels), 0
    for train_name, test_name, protocol in jobs:
        with console.status(f"loading {test_name}") if args.show_progress else nullcontext():
            test = load_dataset(test_name, args.data_dir)
            train = load_dataset(train_name, args.data_dir) if train_name else None
        strong, weak = default_pair(test)
        strong, weak = args.strong or strong, args.weak or weak
        check_pair(test, strong, weak)
        for spec, label in labels.items():
            step += 1
            console.step = f"[{step}/{n_steps}] "
            result = _evaluate_one(spec, label, train, test, strong, weak, protocol, args, console)
            result.spec = spec
            results.append(result)
    if not json_stdout:
        _print_results(results, out)
        _print_operating_points(results, out)
        _print_legend(results, out)
    if json_stdout or json_path:
        payload: Any = results[0].to_json() if len(results) == 1 else {"results": [r.to_json() for r in results]}
        emit_json(payload, json_stdout, json_path, console, "metrics")
    if args.scores:
        _write_scores(results, args.scores)
        console.print(f"per-prompt scores: {args.scores}", markup=False, highlight=False)
    if report:
        path = write_report(results, report)
        console.print(f"HTML report: {path.resolve()}", markup=False, highlight=False)
    return 0
