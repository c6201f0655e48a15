"""RouteLLM's recorded MMLU and GSM8K outcomes (lm-sys/RouteLLM, routellm/evals/*).

Two models answered every prompt: gpt-4-1106-preview (strong, tier 1) and Mixtral-8x7B-Instruct
(weak, tier 0); a boolean column per model says whether the answer was correct. Prompts listed as
`eval_prompt` in `contaminated_prompts.jsonl` overlap RouteLLM's router training data and are dropped,
matched on exact text as RouteLLM's own evaluation does.
"""

from __future__ import annotations

from pathlib import Path

from gearshift.data.parsing import outcome, parse_bool, read_csv, record
from gearshift.data.records import Dataset, ModelInfo, Outcome, PromptRecord, iter_jsonl
from gearshift.data.tokens import TOKEN_RULE_NOTE, cost_usd, estimate_tokens, price_note
from gearshift.errors import DataError

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"

#: List prices at the time of the recordings: OpenAI's gpt-4-1106-preview price ($10/$30 per M tokens,
#: Nov 2023) and Mixtral-8x7B-Instruct on common hosts (Together AI / Anyscale, ~$0.60/$0.60).
MODELS: dict[str, ModelInfo] = {
    WEAK: ModelInfo(name=WEAK, input_price_per_m=0.6, output_price_per_m=0.6, tier=0),
    STRONG: ModelInfo(name=STRONG, input_price_per_m=10.0, output_price_per_m=30.0, tier=1),
}
PRICE_SOURCE = "OpenAI list price Nov 2023 for gpt-4-1106-preview; Together/Anyscale host price for Mixtral-8x7B"

#: MMLU responses are not recorded; RouteLLM grades the answer letter, so one output token is assumed.
MMLU_OUTPUT_TOKENS = 1


def routellm_dir(data_dir: Path) -> Path:
    return data_dir / "routellm"


def load_contaminated(path: Path) -> set[str]:
    """The `eval_prompt` texts of a contaminated_prompts.jsonl file."""
    out: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        text = obj.get("eval_prompt")
        if not isinstance(text, str):
            raise DataError("missing string field 'eval_prompt'", path=path, line=lineno)
        out.add(text)
    return out


def _outcomes(prompt_tokens: int, correct: dict[str, bool], out_tokens: dict[str, int]) -> dict[str, Outcome]:
    res: dict[str, Outcome] = {}
    for name, info in MODELS.items():
        n_out = out_tokens[name]
        res[name] = outcome(1.0 if correct[name] else 0.0, cost_usd(prompt_tokens, n_out, info), n_out)
    return res


def _notes(dataset: str, dropped: int, n_contaminated: int, output_rule: str) -> list[str]:
    return [
        f"source: lm-sys/RouteLLM routellm/evals/{dataset}; strong={STRONG} (tier 1), weak={WEAK} (tier 0)",
        f"dropped {dropped} prompt(s) matching the {n_contaminated} eval_prompt texts of contaminated_prompts.jsonl",
        TOKEN_RULE_NOTE,
        f"output tokens: {output_rule}",
        price_note(MODELS, PRICE_SOURCE),
    ]


def mmlu_files(data_dir: Path) -> list[Path]:
    base = routellm_dir(data_dir) / "mmlu"
    files = sorted(base.glob("mmlu_*.csv"))
    if not files:
        raise DataError("no mmlu_<subject>.csv files (run `gearshift data fetch`)", path=base)
    return files


def load_mmlu(data_dir: Path) -> Dataset:
    """MMLU: 57 subject files, segments dataset="mmlu" and subject=<file subject>; ids mmlu/<subject>/<row>."""
    base = routellm_dir(data_dir) / "mmlu"
    contaminated = load_contaminated(base / "contaminated_prompts.jsonl")
    records: list[PromptRecord] = []
    dropped = 0
    out_tokens = dict.fromkeys(MODELS, MMLU_OUTPUT_TOKENS)
    for path in mmlu_files(data_dir):
        subject = path.stem.removeprefix("mmlu_")
        segments = {"dataset": "mmlu", "subject": subject}
        for row_i, (line, row) in enumerate(read_csv(path, ["prompt", *MODELS])):
            prompt = row["prompt"]
            correct = {m: parse_bool(row[m], path, line, m) for m in MODELS}
            if prompt in contaminated:
                dropped += 1
                continue
            outs = _outcomes(estimate_tokens(prompt), correct, out_tokens)
            records.append(record(f"mmlu/{subject}/{row_i}", prompt, dict(segments), outs))
    notes = _notes("mmlu", dropped, len(contaminated), f"{MMLU_OUTPUT_TOKENS} (answer letter; responses not recorded)")
    return Dataset(name="mmlu", records=records, models=dict(MODELS), notes=notes)


def load_gsm8k(data_dir: Path) -> Dataset:
    """GSM8K: segment dataset="gsm8k"; output tokens from each model's recorded response; ids gsm8k/<row>."""
    base = routellm_dir(data_dir) / "gsm8k"
    contaminated = load_contaminated(base / "contaminated_prompts.jsonl")
    path = base / "gsm8k_responses.csv"
    columns = ["prompt", *MODELS, *(f"{m}_response" for m in MODELS)]
    records: list[PromptRecord] = []
    dropped = 0
    for row_i, (line, row) in enumerate(read_csv(path, columns)):
        prompt = row["prompt"]
        correct = {m: parse_bool(row[m], path, line, m) for m in MODELS}
        if prompt in contaminated:
            dropped += 1
            continue
        out_tokens = {m: estimate_tokens(row[f"{m}_response"]) for m in MODELS}
        outs = _outcomes(estimate_tokens(prompt), correct, out_tokens)
        records.append(record(f"gsm8k/{row_i}", prompt, {"dataset": "gsm8k"}, outs))
    notes = _notes("gsm8k", dropped, len(contaminated), "estimated from each model's recorded response text")
    return Dataset(name="gsm8k", records=records, models=dict(MODELS), notes=notes)
