"""What one upstream call used and cost, for the record: reported usage when the upstream sends it, else an estimate.

The gateway's one token estimate for answers it was not told the size of (~4 characters per token, as
`data/tokens.py` for datasets, but floored and 0 for no text: the figures recorded so far use this rule).
"""

from __future__ import annotations

from typing import Any


def estimate_tokens(text: str) -> int:
    """~4 characters per token: only used when the upstream reports no usage."""
    return max(1, len(text) // 4) if text else 0


def estimated_usage(prompt: str, answer: str) -> dict[str, int]:
    """An OpenAI `usage` object from `estimate_tokens`, for upstreams that report none."""
    tin, tout = estimate_tokens(prompt), estimate_tokens(answer)
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}


def answer_text(body: dict[str, Any]) -> str | None:
    """The first choice's string content, None when the body has none (the record's and signals' answer)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    msg = choices[0].get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    return content if isinstance(content, str) else None


def cost_usd(tokens_in: int | None, tokens_out: int | None, input_price_per_m: float,
             output_price_per_m: float) -> float | None:
    if tokens_in is None and tokens_out is None:
        return None
    return ((tokens_in or 0) * input_price_per_m + (tokens_out or 0) * output_price_per_m) / 1e6
