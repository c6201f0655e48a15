"""A two-cheap-model agreement verifier on LLMRouter's recorded outcomes, per task family (issue #14 item 1).

The verifier: ask a second cheap model (a different family) and ship the first cheap model's answer only when
the two agree. LLMRouter records whether each model's answer was correct, not the answers themselves, so what
the verifier would do is known exactly in three of four cases and bounded in the fourth:
- both correct: the answers agree (there is one right answer) -> shipped, correct;
- one correct: they disagree -> escalated;
- both wrong: they may have given the same wrong answer (shipped, a false accept) or not (escalated). The table
  gives both ends: `lo` assumes wrong answers never coincide, `hi` that they always do.
Precision = P(correct | shipped), recall = P(shipped | correct), false-accept = P(shipped | wrong), ship rate =
P(shipped), next to the first model's base accuracy (what shipping everything gets). Wilson 95 % intervals on
the exact end. Scores above 0.5 count as correct (a few families score 0-1 continuously).

    .venv/bin/python benchmarks/agreement_verifier.py
    .venv/bin/python benchmarks/agreement_verifier.py --first gemma-2-9b-it --second qwen2.5-7b-instruct
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gearshift.cascade.verifier_quality import wilson
from gearshift.data.registry import load_dataset


def measure(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    both, one_wrong, both_wrong = a & b, a ^ b, ~a & ~b
    n, correct, wrong = len(a), int(a.sum()), int((~a).sum())
    ship_lo, ship_hi = int(both.sum()), int(both.sum() + both_wrong.sum())
    return {
        "n": n, "base_accuracy": correct / n if n else float("nan"),
        "ship_rate": [ship_lo / n, ship_hi / n],
        "precision": [1.0 if ship_lo else float("nan"), ship_lo / ship_hi if ship_hi else float("nan")],
        "recall": wilson(int(both.sum()), correct).to_json(),
        "false_accept": [0.0, int(both_wrong.sum()) / wrong if wrong else float("nan")],
        "disagree": int(one_wrong.sum()) / n if n else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first", default="gemma-2-9b-it", help="the cheap model whose answer ships (the cheapest)")
    ap.add_argument("--second", default="qwen2.5-7b-instruct", help="the second opinion (another cheap family)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args(argv)
    data = [load_dataset(n, args.data_dir) for n in ("llmrouter-train", "llmrouter-test")]
    tasks = np.concatenate([np.array(d.segment("task")) for d in data])
    a = np.concatenate([d.scores(args.first) for d in data]) > 0.5
    b = np.concatenate([d.scores(args.second) for d in data]) > 0.5
    rows = [{"family": "all", **measure(a, b)}]
    rows += [{"family": t, **measure(a[tasks == t], b[tasks == t])} for t in sorted(set(tasks))]
    table = Table(title=f"ship {args.first}'s answer when {args.second} agrees (LLMRouter, train + test); "
                        "a–b: if wrong answers never / always coincide", min_width=110)
    for col in ("family", "n", "base acc", "ship rate", "precision", "recall", "false-accept"):
        table.add_column(col, justify="left" if col == "family" else "right")

    def rng(x: list[float]) -> str:
        return f"{x[0]:.2f}–{x[1]:.2f}"

    for r in rows:
        table.add_row(r["family"], str(r["n"]), f"{r['base_accuracy']:.2f}", rng(r["ship_rate"]), rng(r["precision"]),
                      f"{r['recall']['value']:.2f}", rng(r["false_accept"]))
    Console(width=140).print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
