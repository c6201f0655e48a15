"""`gearshift verifiers`: precision, recall and false-accept rate of the cascade verifiers.

Two sources of ground truth: shadow-labelled traffic in the gateway's store (the judge's "cheap_ok" vs
"strong_needed" on the cheapest tier's answer; `--db`, `--config` or `--store-url`), or recorded
outcomes (`--data gsm8k`: RouteLLM's GSM8K answers of both models with their correctness). `--data llmrouter`
measures the agreement verifier instead (a second cheap model must agree; `--first`, `--second`) per task family
on LLMRouter's recorded outcomes (cascade/agreement_quality.py).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import DEFAULT_SINCE, add_store_source, gateway_settings
from gearshift.cli.terminal import add_json_options
from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress

    from gearshift.cascade.verifier_quality import Interval, QualityReport
    from gearshift.store.labels import LabelStore


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("verifiers", help="how well each cascade verifier predicts a good cheap answer")
    add_store_source(p, config=None)  # --config is not exclusive here: it also names the [cascade] verifiers
    p.add_argument("--config", type=Path,
                   help="gateway config: its [cascade] verifiers, and its [store] unless --db/--store-url")
    p.add_argument("--since", default=DEFAULT_SINCE,
                   help=f"traffic labelled since this long ago (30m, 1h, 7d; default {DEFAULT_SINCE})")
    p.add_argument("--data", metavar="gsm8k|llmrouter|FILE.csv",
                   help="recorded outcomes instead of traffic: 'gsm8k' (shared data) or a gsm8k_responses.csv; "
                        "'llmrouter': the agreement verifier per task family")
    p.add_argument("--first", default="gemma-2-9b-it", help="--data llmrouter: the cheap model whose answer ships")
    p.add_argument("--second", default="qwen2.5-7b-instruct",
                   help="--data llmrouter: the second cheap model that must agree")
    p.add_argument("--model", choices=["cheap", "strong"], default="cheap", help="whose recorded answers (--data)")
    p.add_argument("--limit", type=int, default=None, help="at most this many items")
    p.add_argument("--offset", type=int, default=0, help="skip this many recorded rows first (--data)")
    p.add_argument("--fit-answer-model", type=Path, metavar="OUT.json",
                   help="fit the learned answer check (verifier 'answer_model') on the --data answers and save it; "
                        "prints its out-of-fold ship and false-accept rates")
    p.add_argument("--target-ship-rate", type=float, default=0.55,
                   help="--fit-answer-model: the share of answers its threshold ships (default 0.55)")
    add_json_options(p, "the report")
    p.set_defaults(handler=_verifiers)


def _cascade_options(config: Path | None) -> dict[str, Any] | None:
    """The `[cascade]` section when the config enables a cascade or lists its verifiers, else None (all)."""
    if config is None:
        return None
    cascade = gateway_settings(config).cascade.model_dump()
    return cascade if cascade.get("enabled") or "verifiers" in cascade else None


def _open_store(args: argparse.Namespace) -> LabelStore:
    from gearshift.store.factory import open_label_store, settings_url, sqlite_path, store_kind

    if args.db is not None:
        url = f"sqlite:///{args.db}"
    elif args.store_url is not None:
        url = args.store_url
    else:
        url = settings_url(gateway_settings(args.config).store)
    if store_kind(url) == "sqlite" and not Path(sqlite_path(url)).is_file():
        raise ConfigError(f"no gateway store at {sqlite_path(url)} (pass --db, --store-url or --config)")
    return open_label_store(url)


def _gsm8k_path(data: str) -> Path:
    if data.lower() == "gsm8k":
        from gearshift.config import default_data_dir

        path = default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    else:
        path = Path(data)
    if not path.is_file():
        raise ConfigError(f"--data: no GSM8K responses file at {path}")
    return path


def _bar() -> Progress:
    """A transient bar on stderr, drawn only in a terminal (a pipe gets neither the bar nor blank lines)."""
    from rich.console import Console
    from rich.progress import Progress

    err = Console(stderr=True)
    return Progress(transient=True, console=err, disable=not err.is_terminal)


def _recorded(args: argparse.Namespace) -> QualityReport:
    from gearshift.cascade.quality import GSM8K_CHEAP_MODEL, GSM8K_STRONG_MODEL, load_gsm8k_answers
    from gearshift.cascade.verifier_quality import evaluate, verifiers_for

    model = GSM8K_CHEAP_MODEL if args.model == "cheap" else GSM8K_STRONG_MODEL
    items = load_gsm8k_answers(_gsm8k_path(args.data), model, limit=args.limit, offset=args.offset)
    verifiers, combine, more = verifiers_for(_cascade_options(args.config), math=True)
    with _bar() as bar:
        task = bar.add_task("verifying", total=len(items))
        return evaluate(verifiers, items, source=f"gsm8k:{model}", combine=combine,
                        progress=lambda: bar.advance(task), notes=more)


def _traffic(args: argparse.Namespace) -> QualityReport:
    from gearshift.cascade.verifier_quality import traffic_verifier_quality, verifiers_for
    from gearshift.cli.common import parse_since

    since = parse_since(args.since)
    verifiers, combine, notes = verifiers_for(_cascade_options(args.config))
    store = _open_store(args)
    try:
        with _bar() as bar:
            task = bar.add_task("verifying", total=None)
            return traffic_verifier_quality(store, verifiers, since=since, limit=args.limit, combine=combine,
                                            notes=notes, progress=lambda: bar.advance(task))
    finally:
        store.close()


def _agreement(args: argparse.Namespace) -> int:
    """`--data llmrouter`: the agreement verifier per task family, both ends of the unobserved case."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from gearshift.cascade.agreement_quality import Bounded, agreement_quality
    from gearshift.cli.terminal import emit_json, fit_table, json_outputs, print_fitted, stdout_console
    from gearshift.data.registry import load_dataset

    err = Console(stderr=True, soft_wrap=True)
    json_stdout, json_path = json_outputs(args, err)
    with err.status("loading LLMRouter's recorded outcomes"):
        data = [load_dataset(n) for n in ("llmrouter-train", "llmrouter-test")]
    models = set(data[0].models)
    for m in (args.first, args.second):
        if m not in models:
            raise ConfigError(f"no model {m!r} in LLMRouter's data; choose from {sorted(models)}")
    tasks = np.concatenate([np.array(d.segment("task")) for d in data])
    first = np.concatenate([d.scores(args.first) for d in data]) > 0.5  # a few families score 0-1 continuously
    second = np.concatenate([d.scores(args.second) for d in data]) > 0.5
    rows = agreement_quality(first, second, [str(t) for t in tasks])
    if json_stdout or json_path:
        emit_json({"source": "llmrouter", "first": args.first, "second": args.second,
                   "rows": [r.to_json() for r in rows]}, json_stdout, json_path, err, "agreement report")
    if json_stdout:
        return 0
    console = stdout_console()

    def ci(iv: Interval) -> str:
        return "-" if math.isnan(iv.value) else f"{iv.value:.2f} [{iv.low:.2f},{iv.high:.2f}]"

    def ends(b: Bounded) -> str:
        return f"{ci(b.never)} – {ci(b.always)}"

    columns = ("family", "n", "base accuracy", "ship rate", "precision", "recall", "false-accept rate")

    def build(shown: Sequence[str]) -> Table:
        table = Table(title=f"ship {args.first}'s answer when {args.second} agrees (LLMRouter train + test), "
                            "Wilson 95% CI; a – b: if wrong answers never / always coincide")
        for col in shown:
            table.add_column(col, justify="left" if col == "family" else "right", no_wrap=True)
        for r in rows:
            cells = {"family": r.family, "n": str(r.n), "base accuracy": ci(r.base_accuracy),
                     "ship rate": ends(r.ship_rate), "precision": ends(r.precision), "recall": ci(r.recall),
                     "false-accept rate": ends(r.false_accept)}
            table.add_row(*(cells[c] for c in shown))
        return table

    print_fitted(console, fit_table(console, build, columns, ("base accuracy", "recall", "precision", "ship rate")),
                 columns)
    return 0


def _fit_answer_model(args: argparse.Namespace) -> int:
    """Fit `answer_model` on recorded answers with known correctness; the threshold is set out of fold."""
    from rich.console import Console

    from gearshift.cascade.answer_model import AnswerModel, question_text
    from gearshift.cascade.quality import GSM8K_CHEAP_MODEL, GSM8K_STRONG_MODEL, load_gsm8k_answers
    from gearshift.cascade.verifiers import answer_text

    if args.data is None or args.data.lower() == "llmrouter":
        raise ConfigError("--fit-answer-model needs --data gsm8k or a gsm8k_responses.csv-shaped FILE.csv "
                          "(answers with their correctness)")
    model_name = GSM8K_CHEAP_MODEL if args.model == "cheap" else GSM8K_STRONG_MODEL
    items = load_gsm8k_answers(_gsm8k_path(args.data), model_name, limit=args.limit, offset=args.offset)
    err = Console(stderr=True)
    with err.status(f"fitting the answer model on {len(items)} answers (5-fold threshold)"):
        model = AnswerModel(target_ship_rate=args.target_ship_rate).fit(
            [question_text(i.request) for i in items], [answer_text(i.response) for i in items],
            [i.correct for i in items])
    path = model.save(args.fit_answer_model)
    q = model.oof_quality_
    print(f"saved {path}: {model.n_train_} answers of {model_name}, threshold p(correct) >= {model.threshold_:.3f}")
    print(f"out of fold: ships {q['ship_rate']:.1%} at precision {q['precision']:.3f} (base accuracy "
          f"{q['base_accuracy']:.3f}), recall {q['recall']:.3f}, false-accept rate {q['false_accept']:.3f}")
    print(f'serve it: [cascade] verifiers = [..., "answer_model"], answer_model_path = "{path}"')
    return 0


def _fmt(iv: Interval) -> str:
    if math.isnan(iv.value):
        return "-"
    return f"{iv.value:.3f} [{iv.low:.2f}-{iv.high:.2f}]"


def _verifiers(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    if args.limit is not None and args.limit <= 0:
        raise ConfigError("--limit must be > 0")
    if args.data is not None and (args.db is not None or args.store_url is not None):
        raise ConfigError("--data reads recorded outcomes; --db/--store-url are for traffic")
    from gearshift.cli.terminal import emit_json, json_outputs

    if args.fit_answer_model is not None:
        return _fit_answer_model(args)
    if args.data is not None and args.data.lower() == "llmrouter":
        return _agreement(args)
    err = Console(stderr=True, soft_wrap=True)
    json_stdout, json_path = json_outputs(args, err)
    report = _recorded(args) if args.data is not None else _traffic(args)
    if json_stdout or json_path:
        emit_json(report.to_json(), json_stdout, json_path, err, "verifier report")
    if json_stdout:
        return 0
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # pipes and logs: keep a row on one line rather than rich's 80 columns
        console.width = 120
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if report.unavailable is not None:
        Console(stderr=True).print(f"verifier quality on {report.source} unavailable: {report.unavailable}",
                                   highlight=False, markup=False)
        return 1 if report.skipped.get("concealed") else 0
    good = "cheap_ok" if report.source == "traffic" else "correct"
    since = f" since {args.since} ago" if report.source == "traffic" else ""
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items()))
    table = Table(title=f"verifiers on {report.source}{since}: {report.n} answers, {report.correct} {good} "
                        f"({report.correct / report.n:.1%})" + (f"; skipped {skipped}" if skipped else ""))
    for col in ("verifier", "verdicts", "accepted", "precision [95% CI]", "recall [95% CI]", "false-accept rate"):
        table.add_column(col, justify="left" if col == "verifier" else "right", no_wrap=True)
    for row in report.rows:
        table.add_row(row.name, str(row.quality.n - row.no_verdict), f"{row.quality.accept_rate:.1%}",
                      _fmt(row.precision), _fmt(row.recall), _fmt(row.false_accept_rate))
    console.print(table)
    combined = next((r for r in report.rows if r.name == "combined"), None)
    if combined is not None:
        console.print(f"combined: ship only when all of {', '.join(combined.members)} accept (the cascade's rule)",
                      highlight=False, markup=False)
    return 0
