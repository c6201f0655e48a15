"""What one upstream call used and cost, for the record: reported usage when the upstream sends it, else an estimate.

The token rule and the cost formula are the ones of `data/tokens.py` (one estimate for datasets, segments
and records alike); this module adds what the gateway needs around them: an OpenAI `usage` object, every
choice of an `n > 1` answer, and no cost at all when no token count is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gearshift.data.tokens import list_price_usd, text_tokens


def estimate_tokens(text: str) -> int:
    """`data.tokens.text_tokens`: only used when the upstream reports no usage."""
    return text_tokens(text)


def estimated_usage(prompt: str, answer: str) -> dict[str, int]:
    """An OpenAI `usage` object from `estimate_tokens`, for upstreams that report none."""
    tin, tout = estimate_tokens(prompt), estimate_tokens(answer)
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}


def message_text(message: object) -> str | None:
    """A chat message's text: string content, or the text parts of list content joined; None when it has none."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return None


def answer_text(body: Mapping[str, Any]) -> str | None:
    """The first choice's text, None when the body has none (the record's, the signals' and the verifiers' answer)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return None
    return message_text(choices[0].get("message"))


def completion_tokens_estimate(body: Mapping[str, Any]) -> int:
    """`estimate_tokens` summed over every choice (n > 1 is n answers, all paid for), not just the first."""
    choices = body.get("choices")
    total = 0
    for choice in choices if isinstance(choices, list) else []:
        text = message_text(choice.get("message")) if isinstance(choice, Mapping) else None
        total += estimate_tokens(text) if text is not None else 0
    return total


def cost_usd(tokens_in: int | None, tokens_out: int | None, input_price_per_m: float,
             output_price_per_m: float) -> float | None:
    """`data.tokens.list_price_usd`, or None when neither token count is known (nothing to price)."""
    if tokens_in is None and tokens_out is None:
        return None
    return list_price_usd(tokens_in or 0, tokens_out or 0, input_price_per_m, output_price_per_m)


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
