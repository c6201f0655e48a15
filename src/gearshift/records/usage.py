"""What one upstream call used and cost, for the record: reported usage when the upstream sends it, else an estimate.

The gateway's one token estimate for answers it was not told the size of (~4 characters per token, as
`data/tokens.py` for datasets, but floored and 0 for no text: the figures recorded so far use this rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


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


def completion_tokens_estimate(body: dict[str, Any]) -> int:
    """`estimate_tokens` summed over every choice (n > 1 is n answers, all paid for), not just the first."""
    choices = body.get("choices")
    total = 0
    for choice in choices if isinstance(choices, list) else []:
        msg = choice.get("message") if isinstance(choice, dict) else None
        content = msg.get("content") if isinstance(msg, dict) else None
        total += estimate_tokens(content) if isinstance(content, str) else 0
    return total


def cost_usd(tokens_in: int | None, tokens_out: int | None, input_price_per_m: float,
             output_price_per_m: float) -> float | None:
    if tokens_in is None and tokens_out is None:
        return None
    return ((tokens_in or 0) * input_price_per_m + (tokens_out or 0) * output_price_per_m) / 1e6


class Prices(Protocol):
    """A deployment's prices per million tokens (`Deployment`, `DeploymentSettings`)."""

    @property
    def input_price_per_m(self) -> float: ...
    @property
    def output_price_per_m(self) -> float: ...
    @property
    def cached_input_price_per_m(self) -> float | None: ...
    @property
    def cache_write_price_per_m(self) -> float | None: ...


def usage_cost(usage: Mapping[str, Any], prices: Prices) -> float:
    """What an OpenAI `usage` cost: prompt tokens read from (or, Anthropic, written to) the provider's prompt
    cache at their own prices when the deployment has them (`prompt_tokens_details`), the rest at the input price."""
    tin, tout = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    cached = min(tin, int(details.get("cached_tokens") or 0))
    written = min(tin - cached, int(details.get("cache_creation_tokens") or 0))
    read_p = prices.input_price_per_m if prices.cached_input_price_per_m is None else prices.cached_input_price_per_m
    write_p = prices.input_price_per_m if prices.cache_write_price_per_m is None else prices.cache_write_price_per_m
    return ((tin - cached - written) * prices.input_price_per_m + cached * read_p + written * write_p
            + tout * prices.output_price_per_m) / 1e6
