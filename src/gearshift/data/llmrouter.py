"""LLMRouter's dcrouter split (ulab-uiuc/LLMRouter): nine hosted open models, 0/1-ish scores per query.

Upstream defects handled here: 119 test questions also appear in train (dropped from test by normalised
text) and `scores` is sometimes a Python-dict string (parsed with `ast.literal_eval`, never `eval`).
Tiers are dense price ranks: models with equal prices share a tier (size is not a price, and routing
between same-price models is a quality choice, not a cost one).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any, Literal

from gearshift.data.parsing import load_json, outcome, record
from gearshift.data.records import Dataset, ModelInfo, Outcome, PromptRecord, iter_jsonl
from gearshift.data.tokens import TOKEN_RULE_NOTE, cost_usd, estimate_tokens, price_note
from gearshift.errors import DataError

Split = Literal["train", "test"]

CANDIDATES_FILE = "data_example_data_llm_candidates_default_llm.json"

#: Responses are not recorded, so output length is assumed per task family (tokens). Every model gets
#: the same length, so cost differences between models come from prices only.
OUTPUT_TOKENS_BY_TASK: dict[str, int] = {
    "mmlu": 16, "gpqa": 16, "commonsense_qa": 16, "openbook_qa": 16, "arc_challenge": 16,
    "natural_qa": 32, "trivia_qa": 32, "commongen": 64,
    "gsm8k": 256, "math": 256, "agentverse-mgsm": 256, "agentverse-logicgrid": 256,
    "mbpp": 256, "human_eval": 256,
}
DEFAULT_OUTPUT_TOKENS = 128
UNKNOWN_TASK = "unknown"


def normalise(text: str) -> str:
    """Case-folded text with whitespace runs collapsed: the key for de-duplication."""
    return " ".join(text.casefold().split())


def _dir(data_dir: Path) -> Path:
    return data_dir / "llmrouter"


def load_models(data_dir: Path, names: set[str] | None = None) -> dict[str, ModelInfo]:
    """The models table from the candidates file, restricted to `names`, tiers by dense price rank."""
    path = _dir(data_dir) / CANDIDATES_FILE
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise DataError("expected an object {model: {input_price, output_price, ...}}", path=path)
    prices: dict[str, tuple[float, float]] = {}
    for name, info in raw.items():
        if names is not None and name not in names:
            continue
        try:
            pin, pout = float(info["input_price"]), float(info["output_price"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"model {name!r}: needs numeric input_price and output_price", path=path) from None
        prices[name] = (pin, pout)
    if names is not None and (missing := sorted(names - prices.keys())):
        raise DataError(f"no prices for model(s) {missing}", path=path)
    levels = sorted({p[0] + p[1] for p in prices.values()})
    ordered = sorted(prices, key=lambda n: (prices[n][0] + prices[n][1], n))
    return {
        n: ModelInfo(name=n, input_price_per_m=prices[n][0], output_price_per_m=prices[n][1],
                     tier=levels.index(prices[n][0] + prices[n][1]))
        for n in ordered
    }


def _parse_scores(value: Any, path: Path, item: int) -> dict[str, float]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise DataError(f"item {item}: 'scores' is not a dict literal", path=path) from None
    if not isinstance(value, dict) or not value:
        raise DataError(f"item {item}: 'scores' must be a non-empty dict", path=path)
    out: dict[str, float] = {}
    for k, v in value.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0 or math.isnan(v):
            raise DataError(f"item {item}: score for {k!r} must be a number in [0, 1], found {v!r}", path=path)
        out[str(k)] = float(v)
    return out


def _read_split(data_dir: Path, split: Split) -> list[tuple[int, str, dict[str, float]]]:
    path = _dir(data_dir) / f"data_dcrouter_preprocessed_{split}.json"
    raw = load_json(path)
    if not isinstance(raw, list):
        raise DataError("expected a JSON list of {question, scores}", path=path)
    rows = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise DataError(f"item {i}: needs a string 'question'", path=path)
        rows.append((i, item["question"], _parse_scores(item.get("scores"), path, i)))
    return rows


def _tasks(data_dir: Path, split: Split) -> dict[str, str]:
    """Normalised query text -> task_name; the first occurrence wins where a query is listed twice."""
    path = _dir(data_dir) / f"data_example_data_query_data_default_query_{split}.jsonl"
    out: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path):
        q, task = obj.get("query"), obj.get("task_name")
        if not isinstance(q, str) or not isinstance(task, str):
            raise DataError("needs string fields 'query' and 'task_name'", path=path, line=lineno)
        out.setdefault(normalise(q), task)
    return out


def load_llmrouter(data_dir: Path, split: Split) -> Dataset:
    """One split as a Dataset named llmrouter-<split>; ids llmrouter-<split>/<item index>, segment task."""
    rows = _read_split(data_dir, split)
    names = set(rows[0][2]) if rows else set()
    models = load_models(data_dir, names)
    tasks = _tasks(data_dir, split)
    exclude: set[str] = set()
    if split == "test":
        exclude = {normalise(q) for _, q, _ in _read_split(data_dir, "train")}
    seen: set[str] = set()
    records: list[PromptRecord] = []
    n_leak = n_dup = n_untasked = 0
    path = _dir(data_dir) / f"data_dcrouter_preprocessed_{split}.json"
    for i, question, scores in rows:
        key = normalise(question)
        if key in exclude:
            n_leak += 1
            continue
        if key in seen:
            n_dup += 1
            continue
        seen.add(key)
        if set(scores) != names:
            raise DataError(f"item {i}: models {sorted(scores)} differ from the first item's", path=path)
        task = tasks.get(key, UNKNOWN_TASK)
        n_untasked += task == UNKNOWN_TASK
        n_in = estimate_tokens(question)
        n_out = OUTPUT_TOKENS_BY_TASK.get(task, DEFAULT_OUTPUT_TOKENS)
        outs: dict[str, Outcome] = {
            m: outcome(scores[m], cost_usd(n_in, n_out, info), n_out) for m, info in models.items()
        }
        records.append(record(f"llmrouter-{split}/{i}", question, {"dataset": "llmrouter", "task": task}, outs))
    notes = [
        f"source: ulab-uiuc/LLMRouter data/dcrouter_preprocessed/{split}.json; task from the query file joined on text",
        f"de-duplicated by normalised text: dropped {n_leak} question(s) also in train, {n_dup} repeated in-file",
        f"{n_untasked} question(s) had no task in the query file (segment task={UNKNOWN_TASK!r})",
        "tiers are dense ranks of input+output price; equal prices share a tier",
        TOKEN_RULE_NOTE,
        f"output tokens: responses not recorded, assumed per task {OUTPUT_TOKENS_BY_TASK} "
        f"(else {DEFAULT_OUTPUT_TOKENS})",
        price_note(models, "LLMRouter default_llm.json, NVIDIA-hosted list prices"),
    ]
    return Dataset(name=f"llmrouter-{split}", records=records, models=models, notes=notes)
