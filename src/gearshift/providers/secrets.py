"""Scrubbing credentials out of text an upstream sent back (error bodies, stream error events).

An upstream may echo the key it was sent, or another one (a proxy's, a cloud's), in its error text. The
deployment's own key is replaced wherever it appears, and so is anything that looks like a credential:
`Bearer <token>`, and tokens with a well-known key prefix (OpenAI `sk-`, Anthropic `sk-ant-`, Groq `gsk_`,
xAI `xai-`, AWS `AKIA`, Google `AIza`, gearshift `gs-`, GitHub `ghp_`, Hugging Face `hf_`). Scrub before
truncating: a key cut in half by a length limit no longer matches itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARK = "***"

_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_PREFIXED = re.compile(
    r"\b(?:sk-(?:ant-|proj-|or-)?|gsk_|xai-|gs-|ghp_|gho_|hf_|AKIA|ASIA|AIza)[A-Za-z0-9_-]{8,}")


def scrub_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """`text` with every `known` secret and every credential-looking token replaced by `***`."""
    for s in sorted((k for k in known if k), key=len, reverse=True):
        text = text.replace(s, MARK)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MARK}", text)
    return _PREFIXED.sub(MARK, text)


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "…"
