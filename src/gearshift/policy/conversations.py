"""Conversation stickiness: a conversation keeps the tier it was first routed to unless escalated.

Switching models mid-conversation changes tone and can lose context-dependent quality, so downgrades
are opt-in. The id is the client's `x-gearshift-conversation-id` header, else a hash of the earlier messages:
turn n stores its tier under hash(its messages + its answer), which turn n+1 looks up as
hash(its messages before the last one).

The store is an async protocol: `LRUConversationStore` keeps pins in one process's memory (the default);
with `[redis] url` set the gateway uses `store.redis_state.RedisConversationStore`, so every gateway of
a fleet sees the same pins, wrapped in `FailOpenConversationStore` (a Redis failure means "no pin").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from gearshift.records.failopen import FailOpenLog


class ConversationStore(Protocol):
    async def get(self, conversation_id: str) -> int | None:
        """The tier index this conversation is on, if known."""
        ...

    async def set(self, conversation_id: str, tier_index: int) -> None: ...


class LRUConversationStore:
    """In-memory, bounded, thread-safe: the pins of one process (see `RedisConversationStore` for a fleet)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, conversation_id: str) -> int | None:
        with self._lock:
            tier = self._data.get(conversation_id)
            if tier is not None:
                self._data.move_to_end(conversation_id)
            return tier

    async def set(self, conversation_id: str, tier_index: int) -> None:
        with self._lock:
            self._data[conversation_id] = tier_index
            self._data.move_to_end(conversation_id)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class FailOpenConversationStore:
    """Wraps a shared store: a failing `get` is "no pin" (None), a failing `set` is skipped; both reported."""

    def __init__(self, inner: ConversationStore, errors: FailOpenLog) -> None:
        self.inner = inner
        self.errors = errors

    async def get(self, conversation_id: str) -> int | None:
        try:
            tier = await self.inner.get(conversation_id)
        except Exception as exc:
            self.errors.failed("conversation_get", exc)
            return None
        self.errors.recovered("conversation_get")
        return tier

    async def set(self, conversation_id: str, tier_index: int) -> None:
        try:
            await self.inner.set(conversation_id, tier_index)
        except Exception as exc:
            self.errors.failed("conversation_set", exc)
            return
        self.errors.recovered("conversation_set")


_PLAIN = (str, type(None))


def _digest(messages: Sequence[Mapping[str, Any]]) -> str:
    canon = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
    raw: bytes | None = None
    if all(type(c["content"]) in _PLAIN and type(c["role"]) in _PLAIN for c in canon):
        # orjson writes exactly the json module's bytes for string/None values (same escapes, compact, sorted
        # keys): pins stored by either version match. Anything else (parts lists, numbers) takes json.
        with contextlib.suppress(orjson.JSONEncodeError):  # a lone surrogate: json takes it
            raw = orjson.dumps(canon, option=orjson.OPT_SORT_KEYS)
    if raw is None:
        raw = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return "h-" + hashlib.blake2b(raw, digest_size=12).digest().hex()


def conversation_keys(header: str | None, messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(key to look this request up under, function input for the key its next turn will use).

    With the client header both are the header. Otherwise the lookup key is a hash of the messages
    before the last one (None on a first turn: nothing to stick to), and the next turn's key is a hash
    of all messages plus the answer, which is exactly what the next request's earlier messages will be
    when the client sends the history back verbatim. See `next_key`.
    """
    if header and header.strip():
        cid = header.strip()[:200]
        return cid, cid
    lookup = _digest(messages[:-1]) if len(messages) > 1 else None
    return lookup, None


def scoped(key: str | None, api_key_id: str | None) -> str | None:
    """The pin's store key: a conversation id names a conversation *of one API key*, so one key cannot steer
    (or learn) another's tier by sending the same id."""
    return key if key is None or api_key_id is None else f"key={api_key_id}/{key}"


def next_key(header: str | None, messages: Sequence[Mapping[str, Any]], answer: str | None) -> str | None:
    """The key the follow-up request of this conversation will look up."""
    if header and header.strip():
        return header.strip()[:200]
    if answer is None:
        return None
    return _digest([*messages, {"role": "assistant", "content": answer}])


TOOL_PREFIX = "tool:"


def tool_result_key(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The pin key of the tool call this turn returns a result for: the last `tool` message after the last
    assistant turn (None when the request carries no tool results). Tool-call ids are unique per call, so
    this finds the tier that issued the call even without a conversation header or a verbatim history."""
    for m in reversed(messages):
        role = m.get("role")
        if role == "tool":
            cid = m.get("tool_call_id")
            return TOOL_PREFIX + cid[:200] if isinstance(cid, str) and cid else None
        if role == "assistant":
            return None
    return None


def tool_call_keys(ids: Sequence[str]) -> list[str]:
    """The pin keys under which a served answer's tool calls are remembered (see `tool_result_key`)."""
    return [TOOL_PREFIX + i[:200] for i in ids if i]
