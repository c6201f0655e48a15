"""All built-in datasets pooled into one, each prompt tagged with its family and priced on one tier pair.

The datasets record different models: RouteLLM has GPT-4 vs Mixtral, AlpacaEval judged preferences of the
same pair, LLMRouter nine open models at three prices. A router trained for general traffic needs one target,
"does the strong tier do clearly better here", so each dataset's models are mapped to the two tiers by price
(`price_pair`): the best-scoring model among the most expensive ones is `strong`, the best-scoring among the
cheapest is `weak`. Outcomes are renamed to those two names; the original pair stays in the notes.

A *family* is what a leave-one-family-out protocol holds out whole: `mmlu`, `gsm8k`, `alpaca-eval`, and each
LLMRouter task (`llmrouter:math`, `llmrouter:mbpp`, ...). Prompts whose `dedupe_key` repeats are kept once
(first dataset wins), so no held-out prompt is also a training prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from gearshift.data.records import Dataset, ModelInfo, PromptRecord
from gearshift.data.text import dedupe_key
from gearshift.errors import DataError

STRONG, WEAK = "strong", "weak"
POOLED_SOURCES = ("mmlu", "gsm8k", "alpaca-eval", "llmrouter-train", "llmrouter-test")


def _price(info: ModelInfo | None) -> float:
    if info is None or info.input_price_per_m is None or info.output_price_per_m is None:
        return float("nan")
    return info.input_price_per_m + info.output_price_per_m


def price_pair(dataset: Dataset) -> tuple[str, str]:
    """(strong, weak): the best-scoring model at the highest price and the best-scoring at the lowest."""
    names = dataset.model_names()
    priced = [(n, _price(dataset.models.get(n))) for n in names]
    priced = [(n, p) for n, p in priced if p == p]
    if len({p for _, p in priced}) < 2:
        raise DataError(f"dataset {dataset.name!r} needs models at two different prices to map to tiers")
    hi = max(p for _, p in priced)
    lo = min(p for _, p in priced)
    mean = {n: float(dataset.scores(n).mean()) for n, _ in priced}
    strong = max((n for n, p in priced if p == hi), key=lambda n: (mean[n], n))
    weak = max((n for n, p in priced if p == lo), key=lambda n: (mean[n], n))
    return strong, weak


def family_of(source: str, record: PromptRecord) -> str:
    if source.startswith("llmrouter"):
        return f"llmrouter:{record.segments.get('task') or 'unknown'}"
    return source


def pool(datasets: Sequence[Dataset], name: str = "pooled") -> Dataset:
    """One dataset of every record, outcomes renamed to `strong`/`weak` by `price_pair`, segment `family`."""
    records: list[PromptRecord] = []
    seen: set[str] = set()
    notes: list[str] = []
    strong_info = ModelInfo(name=STRONG, tier=1)
    weak_info = ModelInfo(name=WEAK, tier=0)
    for ds in datasets:
        strong, weak = price_pair(ds)
        notes.append(f"{ds.name}: strong = {strong}, weak = {weak} (by price)")
        dropped = 0
        for r in ds.records:
            key = dedupe_key(r.prompt)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            segs = dict(r.segments)
            segs["family"] = family_of(ds.name, r)
            segs["source"] = ds.name
            records.append(PromptRecord(id=f"{ds.name}/{r.id}", prompt=r.prompt, segments=segs,
                                        outcomes={STRONG: r.outcomes[strong], WEAK: r.outcomes[weak]}))
        if dropped:
            notes.append(f"{ds.name}: {dropped} prompts dropped as copies of earlier ones (same normalised text)")
    return Dataset(name=name, records=records, models={WEAK: weak_info, STRONG: strong_info}, notes=notes)
