"""AlpacaEval 2 judge preferences (tatsu-lab/alpaca_eval) as a two-model routing dataset.

Each row is one judged pair on one of 805 instructions: `model` against the reference gpt4_1106_preview.
`preference` is the judge's weighted probability in [1, 2] that output 2 — the *compared model* — is
better: 1 means the reference wins, 2 means the compared model wins. (The shared data README says the
opposite; the upstream annotations put the reference in output_1, and the mean of `preference - 1`
reproduces `ae2_leaderboard.csv`'s win_rate, e.g. 13.74% for Mixtral-8x7B-Instruct-v0.1_concise.)

Mapping to scores, per prompt: score_weak = preference - 1 and score_reference = 2 - preference, so
the two scores sum to 1 and a router's "quality" is the judged win probability of the chosen answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gearshift.data.parsing import outcome, parse_float, parse_int, read_csv, record
from gearshift.data.records import Dataset, ModelInfo, PromptRecord, iter_jsonl
from gearshift.data.tokens import TOKEN_RULE_NOTE, cost_usd, estimate_tokens, price_note, tokens_from_chars
from gearshift.errors import DataError

REFERENCE = "gpt4_1106_preview"
#: Mid-tier open model (13.7% win rate), the same Mixtral as RouteLLM's weak model, so prices agree.
DEFAULT_WEAK = "Mixtral-8x7B-Instruct-v0.1_concise"
#: Rows that exist to game the judge.
EXCLUDED = frozenset({"NullModel", "gpt4_gamed"})
PREFERENCES_FILE = "ae2_weighted_gpt4turbo_vs_gpt4_1106_preview.csv"
COLUMNS = ("idx", "model", "reference_model", "preference", "model_output_chars", "reference_output_chars")

#: Published list prices ($ per million input/output tokens) where a model has one; others get the
#: fallback, a typical hosted open-model price. Each load says which applied in Dataset.notes.
KNOWN_PRICES: dict[str, tuple[float, float]] = {
    REFERENCE: (10.0, 30.0),
    "Mixtral-8x7B-Instruct-v0.1_concise": (0.6, 0.6),
    "gpt-3.5-turbo-1106": (1.0, 2.0),
    "gpt-3.5-turbo-1106_concise": (1.0, 2.0),
    "gpt-3.5-turbo-1106_verbose": (1.0, 2.0),
    "gpt-3.5-turbo-0301": (1.5, 2.0),
    "gpt35_turbo_instruct": (1.5, 2.0),
    "claude-2": (8.0, 24.0),
    "claude-2.1": (8.0, 24.0),
    "claude-2.1_concise": (8.0, 24.0),
    "claude-instant-1.2": (0.8, 2.4),
}
FALLBACK_PRICE = (0.6, 0.6)


@dataclass(frozen=True, slots=True)
class Preference:
    """One judged pair: `preference - 1` is the probability that `model` beat the reference."""

    idx: int
    model: str
    preference: float
    model_output_chars: int
    reference_output_chars: int


def _dir(data_dir: Path) -> Path:
    return data_dir / "alpaca_eval"


def load_preferences(data_dir: Path) -> list[Preference]:
    """Every judged pair except the NullModel / gpt4_gamed rows and the reference against itself."""
    path = _dir(data_dir) / PREFERENCES_FILE
    out: list[Preference] = []
    for line, row in read_csv(path, COLUMNS):
        model = row["model"]
        if model in EXCLUDED or model == REFERENCE:
            continue
        if row["reference_model"] != REFERENCE:
            raise DataError(f"reference_model is {row['reference_model']!r}, expected {REFERENCE!r}",
                            path=path, line=line)
        out.append(Preference(
            idx=parse_int(row["idx"], path, line, "idx"),
            model=model,
            preference=parse_float(row["preference"], path, line, "preference", 1.0, 2.0),
            model_output_chars=parse_int(row["model_output_chars"], path, line, "model_output_chars"),
            reference_output_chars=parse_int(row["reference_output_chars"], path, line, "reference_output_chars"),
        ))
    return out


def load_instructions(data_dir: Path) -> dict[int, tuple[str, str]]:
    """idx -> (instruction, source subset such as helpful_base)."""
    path = _dir(data_dir) / "instructions.jsonl"
    out: dict[int, tuple[str, str]] = {}
    for lineno, obj in iter_jsonl(path):
        idx, text, subset = obj.get("idx"), obj.get("instruction"), obj.get("dataset", "")
        if not isinstance(idx, int) or not isinstance(text, str):
            raise DataError("needs integer 'idx' and string 'instruction'", path=path, line=lineno)
        out[idx] = (text, str(subset))
    return out


def _model_info(name: str, tier: int) -> ModelInfo:
    pin, pout = KNOWN_PRICES.get(name, FALLBACK_PRICE)
    return ModelInfo(name=name, input_price_per_m=pin, output_price_per_m=pout, tier=tier)


def load_alpaca_eval(data_dir: Path, weak_model: str = DEFAULT_WEAK) -> Dataset:
    """`weak_model` (tier 0) against gpt4_1106_preview (tier 1) on every instruction both answered."""
    prefs = load_preferences(data_dir)
    available = sorted({p.model for p in prefs})
    if weak_model not in available:
        raise DataError(f"unknown or excluded weak model {weak_model!r}; choose one of: {', '.join(available)}",
                        path=_dir(data_dir) / PREFERENCES_FILE)
    instructions = load_instructions(data_dir)
    weak, strong = _model_info(weak_model, 0), _model_info(REFERENCE, 1)
    records: list[PromptRecord] = []
    for p in sorted((p for p in prefs if p.model == weak_model), key=lambda p: p.idx):
        if p.idx not in instructions:
            raise DataError(f"idx {p.idx} of {weak_model!r} has no instruction in instructions.jsonl",
                            path=_dir(data_dir) / PREFERENCES_FILE)
        text, subset = instructions[p.idx]
        n_in = estimate_tokens(text)
        n_weak, n_ref = tokens_from_chars(p.model_output_chars), tokens_from_chars(p.reference_output_chars)
        win = min(1.0, max(0.0, p.preference - 1.0))
        outs = {
            weak.name: outcome(win, cost_usd(n_in, n_weak, weak), n_weak),
            strong.name: outcome(1.0 - win, cost_usd(n_in, n_ref, strong), n_ref),
        }
        records.append(record(f"alpaca-eval/{p.idx}", text, {"dataset": "alpaca-eval", "source": subset}, outs))
    fallback = [] if weak_model in KNOWN_PRICES else [
        f"{weak_model} has no published price here: assumed ${FALLBACK_PRICE[0]:g}/${FALLBACK_PRICE[1]:g} per M"
    ]
    notes = [
        "source: tatsu-lab/alpaca_eval weighted_alpaca_eval_gpt4_turbo annotations (AlpacaEval 2), CC BY-NC 4.0",
        f"scores: {weak_model} = preference - 1, {REFERENCE} = 2 - preference (judged win probability)",
        f"{len(records)} of {len(instructions)} instructions have a judgement for {weak_model}",
        TOKEN_RULE_NOTE,
        "output tokens: from the recorded *_output_chars columns (chars / 4)",
        price_note({weak.name: weak, strong.name: strong}, "OpenAI/Anthropic list prices; hosted open-model price"),
        *fallback,
    ]
    return Dataset(name="alpaca-eval", records=records, models={weak.name: weak, strong.name: strong}, notes=notes)
