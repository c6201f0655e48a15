"""Downstream signals: implicit ones inferred from traffic, and their per-tier / per-segment rates.

A signal belongs to the decision whose answer provoked it: a *regeneration* (the same last user
message sent again in the same conversation), a *correction* ("no, I meant...", "c'est faux", ...) and an
*edit* (the user's message again, reworded: a near-duplicate of the previous one within `edit_window_s`,
either edited in place or re-asked as the next turn) all point at the previous answer; *abandonment* (client
gone before the answer arrived, streamed or not) at the request itself. A *handoff* is derived when the answer
calls a configured tool (`handoff_tools`, e.g. "transfer_to_human") or says a configured phrase (this answer),
or when the user's next message says one (the previous answer). Conversations are keyed like the gateway's
stickiness (`policy.conversations`): the client's conversation header, else hashes of the message history.

A regeneration needs a conversation identity: the header, or earlier turns whose hash matches. The same
first-turn prompt sent twice under one key with neither is two users (or a benchmark, or a batch job)
asking the same thing, not a user rejecting an answer, and writes no signal.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gearshift.data.segments import yes_no
from gearshift.policy.conversations import conversation_keys, next_key
from gearshift.store.labels import LabelStore, SignalEvent

IMPLICIT_SIGNALS = ("regeneration", "correction", "edit", "abandonment", "handoff")
EXPLICIT_SIGNALS = ("thumbs_up", "thumbs_down", "rating", "handoff")

#: Openings of a follow-up that says the previous answer was wrong, in the languages segments detect.
_CORRECTION = re.compile("|".join([
    r"\bno,? (?:i|I) meant\b", r"\bthat'?s (?:wrong|incorrect|not (?:right|correct|what i (?:asked|meant)))\b",
    r"\bthat is (?:wrong|incorrect|not (?:right|correct))\b", r"\byou(?:'re| are) wrong\b",
    r"\bnot what i (?:asked|meant)\b", r"\byou misunderstood\b", r"\bwrong answer\b",
    r"\bno,? me refer[ií]a\b", r"\beso (?:est[aá] mal|es incorrecto|no es (?:correcto|lo que))\b",
    r"\bnon,? je voulais dire\b", r"\bc'est (?:faux|incorrect)\b", r"\bce n'est pas (?:correct|juste|ce que)\b",
    r"\bnein,? ich meinte\b", r"\bdas (?:ist falsch|stimmt nicht)\b",
    r"\bn[aã]o,? (?:eu )?quis dizer\b", r"\bisso (?:est[aá] errado|n[aã]o est[aá] certo)\b",
    r"\bno,? intendevo\b", r"\b[eè] sbagliato\b", r"\bnon [eè] corretto\b",
    r"нет,? я имел в виду", r"это неправильно", r"\bневерно\b",
    r"不对", r"错了", r"我的意思是", r"違います", r"間違って", r"틀렸",
]), re.IGNORECASE)


def is_correction(text: str) -> bool:
    """True when the opening of a user message rejects the previous answer."""
    return bool(_CORRECTION.search(text[:240]))


_WORD = re.compile(r"\w+")


class _Unset:
    """`ImplicitSignals.observe`'s `next_turn` not given (None is a value: no next-turn key)."""


_UNSET = _Unset()


#: characters of a message whose words are kept for the edit check: the memory holds up to `memory` of these
#: sets per table, so a long pasted document must not be kept word by word
EDIT_CHARS = 1000


def words(text: str) -> frozenset[str]:
    """Lower-cased word set of a message's first `EDIT_CHARS` characters, for near-duplicate checks."""
    return frozenset(_WORD.findall(text[:EDIT_CHARS].lower()))


def is_rephrasing(a: frozenset[str], b: frozenset[str], min_similarity: float) -> bool:
    """True when two different messages share most words (Jaccard >= `min_similarity`, three words at least)."""
    union = a | b
    return a != b and len(union) >= 3 and len(a & b) / len(union) >= min_similarity


def _content(message: Mapping[str, Any]) -> str:
    c = message.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
    return ""


def segment_labels(segment: Mapping[str, Any] | None) -> dict[str, str]:
    """The decision record's segment as the string labels signals and SLIs group by."""
    s = segment or {}
    out = {"language": str(s.get("language", "und")), "length_bucket": str(s.get("length_bucket", "short")),
           "has_code": yes_no(bool(s.get("has_code")))}
    for name in ("topic", "client"):  # only when the gateway knew them (`[segments] topics`, an API key)
        if s.get(name) is not None:
            out[name] = str(s[name])
    return out


@dataclass(frozen=True, slots=True)
class _Seen:
    request_id: str
    time: float
    tier: str | None
    segment: dict[str, str]
    words: frozenset[str] = frozenset()


class ImplicitSignals:
    """Remembers recent answers (bounded LRU) and turns each new decision into implicit signal events."""

    def __init__(self, memory: int = 50_000, regeneration_window_s: float = 3600.0, *, edit_window_s: float = 600.0,
                 edit_min_similarity: float = 0.6, handoff_tools: Sequence[str] = (),
                 handoff_phrases: Sequence[str] = ()) -> None:
        self.memory = memory
        self.window_s = regeneration_window_s
        self.edit_window_s = edit_window_s
        self.edit_min_similarity = edit_min_similarity
        self.handoff_tools = frozenset(handoff_tools)
        self.handoff_phrases = tuple(p.lower() for p in handoff_phrases if p.strip())
        self._answered: OrderedDict[str, _Seen] = OrderedDict()  # next-turn key -> decision that answered
        self._asked: OrderedDict[str, _Seen] = OrderedDict()  # (conversation, last user message) -> decision
        self._position: OrderedDict[str, _Seen] = OrderedDict()  # earlier turns (no header) -> decision asked there
        self._lock = threading.Lock()

    def says_handoff(self, text: str | None) -> bool:
        """True when `text` contains one of the configured hand-off phrases (case-insensitive)."""
        low = (text or "").lower()
        return any(p in low for p in self.handoff_phrases)

    def _put(self, table: OrderedDict[str, _Seen], key: str, seen: _Seen) -> None:
        table[key] = seen
        table.move_to_end(key)
        while len(table) > self.memory:
            table.popitem(last=False)

    @staticmethod
    def _ask_key(scope: str, lookup: str | None, messages: Sequence[Mapping[str, Any]]) -> str | None:
        """`lookup`: the request's conversation key (`conversation_keys`)."""
        users = [m for m in messages if m.get("role") == "user"]
        if not users:
            return None
        if lookup is None:  # a first turn without a conversation header: no identity to regenerate within
            return None
        raw = json.dumps([scope, lookup, _content(users[-1])], ensure_ascii=False)
        return hashlib.blake2b(raw.encode("utf-8"), digest_size=12).hexdigest()

    def observe(self, record: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], header: str | None,
                answer: str | None, tools: Sequence[str] = (), *, next_turn: str | _Unset | None = _UNSET
                ) -> list[SignalEvent]:
        """Signals this decision reveals about earlier ones (and about itself: abandonment, a hand-off it made).

        `tools`: names of the tool calls in the answer. `next_turn`: `next_key(header, messages, answer)` when the
        caller already has it (the gateway computes it once per request, for its conversation pin)."""
        rid, now, tier = str(record["request_id"]), float(record["time"]), record.get("tier")
        seg = segment_labels(record.get("segment"))
        out: list[SignalEvent] = []
        if record.get("status") == "client_disconnected":
            out.append(SignalEvent(rid, now, "abandonment", "implicit", 1.0, tier=tier, segment=seg,
                                   decision_time=now))
        if tier is None or not messages:
            return out
        text = _content(messages[-1]) if messages[-1].get("role") == "user" else ""
        me = _Seen(rid, now, tier, seg, words(text))
        if record.get("status") == "ok" and (self.handoff_tools.intersection(tools) or self.says_handoff(answer)):
            out.append(self._event(me, now, "handoff"))
        scope = str(record.get("api_key_id") or "")
        lookup, _ = conversation_keys(header, messages)
        ask = self._ask_key(scope, lookup, messages)
        position = scope + "|" + lookup if lookup is not None and not (header and header.strip()) else None
        with self._lock:
            earlier = self._asked.get(ask) if ask is not None else None
            prev = self._answered.get(scope + "|" + lookup) if lookup is not None else None
            prev = prev if prev is not None and prev.request_id != rid else None
            if earlier is not None and now - earlier.time <= self.window_s and earlier.request_id != rid:
                out.append(self._event(earlier, now, "regeneration"))
            elif prev is not None and is_correction(text):
                out.append(self._event(prev, now, "correction"))
            elif prev is not None and self.says_handoff(text):
                out.append(self._event(prev, now, "handoff"))
            elif (edited := self._edited(prev, position, me)) is not None:
                out.append(self._event(edited, now, "edit"))
            if ask is not None:
                self._put(self._asked, ask, me)
            if position is not None:
                self._put(self._position, position, me)
            nk = next_key(header, messages, answer) if isinstance(next_turn, _Unset) else next_turn
            if nk is not None and record.get("status") == "ok":
                self._put(self._answered, scope + "|" + nk, me)
        return out

    def _edited(self, prev: _Seen | None, position: str | None, me: _Seen) -> _Seen | None:
        """The earlier decision `me` rewords: the answer it follows (re-asked as the next turn) or the request sent
        at the same place in the conversation (edited in place), within the edit window."""
        sibling = self._position.get(position) if position is not None else None
        for seen in (prev, sibling):
            if (seen is not None and seen.request_id != me.request_id and me.time - seen.time <= self.edit_window_s
                    and is_rephrasing(seen.words, me.words, self.edit_min_similarity)):
                return seen
        return None

    @staticmethod
    def _event(seen: _Seen, now: float, signal: str) -> SignalEvent:
        return SignalEvent(seen.request_id, now, signal, "implicit", 1.0, tier=seen.tier, segment=seen.segment,
                           decision_time=seen.time)


@dataclass(frozen=True, slots=True)
class SignalRate:
    """Share of decisions in `group` (e.g. "tier=cheap", "language=fr", "*") that drew `signal`."""

    signal: str
    group: str
    decisions: int
    hits: int

    @property
    def rate(self) -> float:
        return self.hits / self.decisions if self.decisions else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"signal": self.signal, "group": self.group, "decisions": self.decisions, "hits": self.hits,
                "rate": self.rate}


def _keys(tier: str | None, segment_json: str | None) -> list[str]:
    keys = ["*"]
    if tier is not None:
        keys.append(f"tier={tier}")
    seg = json.loads(segment_json) if segment_json else {}
    keys += [f"{k}={v}" for k, v in sorted(seg.items()) if v is not None]
    return keys


def signal_rates(store: LabelStore, since: float, until: float) -> list[SignalRate]:
    """Rates of every signal seen, over decisions made in [since, until), overall, per tier and per segment."""
    totals: dict[str, int] = {}
    for d_tier, d_seg, d_n in store.decision_groups(since, until):
        for k in _keys(d_tier, d_seg):
            totals[k] = totals.get(k, 0) + d_n
    hits: dict[tuple[str, str], int] = {}
    for signal, tier, seg, n in store.signal_groups(since, until):
        for k in _keys(tier, seg):
            hits[(signal, k)] = hits.get((signal, k), 0) + n
    return [SignalRate(signal, group, totals.get(group, 0), n)
            for (signal, group), n in sorted(hits.items(), key=lambda kv: (kv[0][0], kv[0][1] != "*", kv[0][1]))]
