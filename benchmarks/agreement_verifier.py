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

Second part (`--gsm8k-texts`, on by default): RouteLLM's GSM8K file keeps both models' answer *texts*, so there
the unobserved case is observed: ship Mixtral's answer when GPT-4's final number is the same, read two ways (the
consistency verifier's `agreement`, which needs "the answer is N" / `####` / `\\boxed{}`; and the last number of
each answer). The second opinion is the strong model here, so this measures how often wrong answers coincide and
what agreement can do, not a cheap configuration.

    .venv/bin/python benchmarks/agreement_verifier.py
    .venv/bin/python benchmarks/agreement_verifier.py --first gemma-2-9b-it --second qwen2.5-7b-instruct
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gearshift.cascade.agreement_quality import Bounded, agreement_quality
from gearshift.cascade.consistency import agreement
from gearshift.cascade.quality import GSM8K_CHEAP_MODEL, GSM8K_STRONG_MODEL, load_gsm8k_answers
from gearshift.cascade.verifier_quality import wilson
from gearshift.cascade.verifiers import answer_text
from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace("$", ""))
    return float(found[-1].replace(",", "")) if found else None


def gsm8k_text_agreement(data_dir: Path | None) -> list[dict[str, Any]]:
    """Ship Mixtral's GSM8K answer when GPT-4's final number agrees, on all 1,319 recorded answer pairs."""
    path = (data_dir or default_data_dir()) / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    cheap, strong = load_gsm8k_answers(path, GSM8K_CHEAP_MODEL), load_gsm8k_answers(path, GSM8K_STRONG_MODEL)
    a = np.array([x.correct for x in cheap])
    b = np.array([x.correct for x in strong])
    texts = [(answer_text(x.response) or "", answer_text(y.response) or "") for x, y in zip(cheap, strong, strict=True)]
    rules = {"consistency verifier (marked final answers)": [agreement(t, u)[0] for t, u in texts],
             "last number of each answer": [last_number(t) is not None and last_number(t) == last_number(u)
                                            for t, u in texts]}
    out = []
    for name, agree in rules.items():
        ship = np.array(agree, dtype=bool)
        both_wrong = ~a & ~b
        out.append({"rule": name, "n": int(a.size), "base_accuracy": wilson(int(a.sum()), a.size).to_json(),
                    "ship_rate": wilson(int(ship.sum()), a.size).to_json(),
                    "precision": wilson(int((ship & a).sum()), int(ship.sum())).to_json(),
                    "recall": wilson(int((ship & a).sum()), int(a.sum())).to_json(),
                    "false_accept": wilson(int((ship & ~a).sum()), int((~a).sum())).to_json(),
                    "wrong_answers_coincide": wilson(int((ship & both_wrong).sum()), int(both_wrong.sum())).to_json()})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first", default="gemma-2-9b-it", help="the cheap model whose answer ships (the cheapest)")
    ap.add_argument("--second", default="qwen2.5-7b-instruct", help="the second opinion (another cheap family)")
    ap.add_argument("--no-gsm8k-texts", action="store_true", help="skip the RouteLLM GSM8K answer-text part")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args(argv)
    data = [load_dataset(n, args.data_dir) for n in ("llmrouter-train", "llmrouter-test")]
    tasks = np.concatenate([np.array(d.segment("task")) for d in data])
    a = np.concatenate([d.scores(args.first) for d in data]) > 0.5
    b = np.concatenate([d.scores(args.second) for d in data]) > 0.5
    rows = agreement_quality(a, b, [str(t) for t in tasks])  # as `gearshift verifiers --data llmrouter`
    table = Table(title=f"ship {args.first}'s answer when {args.second} agrees (LLMRouter, train + test); "
                        "a–b: if wrong answers never / always coincide", min_width=110)
    for col in ("family", "n", "base acc", "ship rate", "precision", "recall", "false-accept"):
        table.add_column(col, justify="left" if col == "family" else "right")

    def rng(x: Bounded) -> str:
        return f"{x.never.value:.2f}–{x.always.value:.2f}"

    for r in rows:
        table.add_row(r.family, str(r.n), f"{r.base_accuracy.value:.2f}", rng(r.ship_rate), rng(r.precision),
                      f"{r.recall.value:.2f}", rng(r.false_accept))
    Console(width=140).print(table)
    texts = [] if args.no_gsm8k_texts else gsm8k_text_agreement(args.data_dir)
    if texts:
        t2 = Table(title="RouteLLM GSM8K: ship Mixtral's answer when GPT-4's final number agrees (Wilson 95% CI)")
        for col in ("rule", "ship rate", "precision", "recall", "false-accept", "both wrong: same number"):
            t2.add_column(col, justify="left" if col == "rule" else "right")

        def ci(d: dict[str, Any]) -> str:
            return f"{d['value']:.3f} [{d['low']:.2f},{d['high']:.2f}] ({d['k']}/{d['n']})"

        for r in texts:
            t2.add_row(r["rule"], ci(r["ship_rate"]), ci(r["precision"]), ci(r["recall"]), ci(r["false_accept"]),
                       ci(r["wrong_answers_coincide"]))
        Console(width=200).print(t2)
    if args.json:
        args.json.write_text(json.dumps({"llmrouter": [r.to_json() for r in rows], "gsm8k_texts": texts}, indent=2),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
