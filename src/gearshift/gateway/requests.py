"""Reading and validating a chat request body: size limit, JSON, then an OpenAI-shaped schema.

The schema checks only what the gateway relies on and allows every other field, so new OpenAI
parameters pass through to the upstream unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gearshift.errors import InvalidRequestError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # no "1" -> true coercion (found by schemathesis)

    role: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # no "1" -> true coercion (found by schemathesis)

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # no "1" -> true coercion (found by schemathesis)

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    n: int | None = Field(default=None, ge=1)


def validate_chat(payload: dict[str, Any]) -> ChatRequest:
    """Schema check; the error names the first offending field (`messages.0.role`) as `param`."""
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise InvalidRequestError(f"invalid field '{loc}': {err['msg']}{more}", param=loc) from None
