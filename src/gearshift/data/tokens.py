"""The one token and cost estimate: for datasets that record text but no usage, and for live text (segments,
answers of upstreams that report no usage).

None of the public datasets carries token counts, so every loader uses the same rule: ~4 characters per
token (OpenAI's published rule of thumb for English; within ~10% of tiktoken on these prompts), never
less than one token. Using one rule everywhere keeps cost *ratios* between models honest even where the
absolute numbers are approximations. Live text (`text_tokens`) counts a non-ASCII character as a token of
its own (a CJK character or an accented letter is about one), since a gateway sees every language; a
dataset loader that knows only a character count uses `tokens_from_chars`.
"""

from __future__ import annotations

import math

from gearshift.data.records import ModelInfo

CHARS_PER_TOKEN = 4.0

#: Sentence for Dataset.notes, so reports say how costs were made.
TOKEN_RULE_NOTE = (
    "costs estimated from text: tokens ~= ceil(characters / 4) (min 1); "
    "cost_usd = in_tokens * input_price / 1e6 + out_tokens * output_price / 1e6"
)


def tokens_from_chars(n_chars: int) -> int:
    """Tokens for a text of `n_chars` characters (the ~4 chars/token rule)."""
    return max(1, math.ceil(n_chars / CHARS_PER_TOKEN))


def estimate_tokens(text: str) -> int:
    return tokens_from_chars(len(text))


def text_tokens(text: str) -> int:
    """ceil(ASCII characters / 4) + non-ASCII characters; 0 for no text."""
    ascii_chars = len(text) if text.isascii() else len(text.encode("ascii", "ignore"))
    return -(-ascii_chars // int(CHARS_PER_TOKEN)) + (len(text) - ascii_chars)


def list_price_usd(input_tokens: int, output_tokens: int, input_price_per_m: float | None,
                   output_price_per_m: float | None) -> float:
    """The one cost formula: tokens at list prices per million; a missing price counts as free."""
    return (input_tokens * (input_price_per_m or 0.0) + output_tokens * (output_price_per_m or 0.0)) / 1e6


def cost_usd(input_tokens: int, output_tokens: int, model: ModelInfo) -> float:
    """List-price cost of one call of `model` (the models table says which prices are missing)."""
    return list_price_usd(input_tokens, output_tokens, model.input_price_per_m, model.output_price_per_m)


def price_note(models: dict[str, ModelInfo], source: str) -> str:
    """One line naming every price used and where it came from."""
    parts = [
        f"{m.name} ${m.input_price_per_m:g}/${m.output_price_per_m:g}"
        for m in models.values()
        if m.input_price_per_m is not None and m.output_price_per_m is not None
    ]
    return f"prices per million input/output tokens ({source}): " + ", ".join(parts)
