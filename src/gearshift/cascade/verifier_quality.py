"""Cascade verifier quality on live traffic, with the shadow judge's hardness label as ground truth.

A shadow-labelled decision says whether the cheapest tier's answer was good enough ("cheap_ok") or the
strong tier was needed ("strong_needed"). Re-running each verifier on that cheap answer gives the same
confusion counts the recorded-outcome evaluation (`cascade/quality.py`) gives on GSM8K: an *accept* that
meets "strong_needed" is a false accept (a bad answer the cascade would ship), a reject of "cheap_ok" is a
wasted escalation. Counts come with Wilson intervals because shadow samples are small.

The cheap answer comes from the label's `cheap_answer` (kept by `ShadowRunner`), else, for labels stored
before it was kept, from the triage item (which exists only when the tiers disagreed, so that fallback
over-represents hard prompts; the report counts it). Under `[store] text = "hash"|"redact"` the answer
text is not kept and verifiers cannot be re-run: the report says so instead of guessing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gearshift.cascade.quality import LabelledAnswer, VerifierQuality
from gearshift.cascade.verifiers import Verdict, Verifier, run_verifier
from gearshift.errors import ConfigError
from gearshift.store.labels import LabelStore

#: Hardness labels that decide an item; anything else (None: the judge could not score) is skipped.
TRAFFIC_LABELS = ("cheap_ok", "strong_needed")
MATH_VERIFIERS = ("final_answer", "arithmetic")


@dataclass(frozen=True, slots=True)
class Interval:
    """A proportion and its Wilson score interval (NaN when the denominator is 0)."""

    value: float
    low: float
    high: float
    k: int
    n: int

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 6)

        return {"value": num(self.value), "low": num(self.low), "high": num(self.high), "k": self.k, "n": self.n}


def wilson(k: int, n: int, z: float = 1.96) -> Interval:
    """Wilson score interval: sane at 0/n and n/n, unlike the normal approximation."""
    if n <= 0:
        nan = float("nan")
        return Interval(nan, nan, nan, k, n)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), k, n)


@dataclass(frozen=True, slots=True)
class VerifierStats:
    """One row: a verifier (or the combination, `members` > 1) with counts, verdict coverage and intervals."""

    quality: VerifierQuality
    no_verdict: int  # items the verifier had nothing to say about (they count as accepted)
    members: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.quality.name

    @property
    def precision(self) -> Interval:
        q = self.quality
        return wilson(q.true_accept, q.true_accept + q.false_accept)

    @property
    def recall(self) -> Interval:
        q = self.quality
        return wilson(q.true_accept, q.true_accept + q.false_reject)

    @property
    def false_accept_rate(self) -> Interval:
        q = self.quality
        return wilson(q.false_accept, q.false_accept + q.true_reject)

    @property
    def accept_rate(self) -> Interval:
        q = self.quality
        return wilson(q.true_accept + q.false_accept, q.n)

    def to_json(self) -> dict[str, Any]:
        q = self.quality
        return {"verifier": q.name, "members": list(self.members), "n": q.n, "true_accept": q.true_accept,
                "false_accept": q.false_accept, "false_reject": q.false_reject, "true_reject": q.true_reject,
                "no_verdict": self.no_verdict, "precision": self.precision.to_json(), "recall": self.recall.to_json(),
                "false_accept_rate": self.false_accept_rate.to_json(), "accept_rate": self.accept_rate.to_json()}


@dataclass(frozen=True)
class QualityReport:
    """Every verifier's row then the combination's; `unavailable` says why there are no rows, if so."""

    source: str  # "traffic" or "gsm8k:<model>"
    rows: list[VerifierStats]
    n: int
    correct: int  # items whose answer was good ("cheap_ok" on traffic, correct on recorded data)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None

    def row(self, name: str) -> VerifierStats:
        return next(r for r in self.rows if r.name == name)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "n": self.n, "correct": self.correct, "skipped": self.skipped,
                "notes": self.notes, "unavailable": self.unavailable, "rows": [r.to_json() for r in self.rows]}


async def aevaluate(verifiers: Sequence[Verifier], items: Iterable[LabelledAnswer], *,
                    combine: Sequence[str] | None = None, progress: Callable[[], None] | None = None
                    ) -> tuple[list[VerifierStats], int, int]:
    """(rows, n, correct): each verifier runs once per item; the "combined" row reuses the verdicts of
    `combine` (default: all) and accepts as the cascade ships (every one passed or had no verdict)."""
    names = tuple(v.name for v in verifiers)
    members = tuple(combine) if combine is not None else names
    unknown = [m for m in members if m not in names]
    if unknown:
        raise ConfigError(f"cannot combine verifiers {unknown}: not among {list(names)}")
    joint = [names.index(m) for m in members]
    counts = {n: [0, 0, 0, 0] for n in (*names, "combined")}
    silent = dict.fromkeys((*names, "combined"), 0)
    n = correct = 0
    for item in items:
        verdicts: list[Verdict | None] = [await run_verifier(v, item.request, item.response) for v in verifiers]
        n += 1
        correct += item.correct
        col = 0 if item.correct else 1
        for name, verdict in zip(names, verdicts, strict=True):
            silent[name] += verdict is None
            counts[name][(0 if verdict is None or verdict.passed else 2) + col] += 1
        chosen = [verdicts[i] for i in joint]
        accepted = all(v is None or v.passed for v in chosen)
        silent["combined"] += all(v is None for v in chosen)
        counts["combined"][(0 if accepted else 2) + col] += 1
        if progress is not None:
            progress()
    rows = [VerifierStats(VerifierQuality(name, *counts[name]), silent[name], (name,)) for name in names]
    if len(members) > 1:
        rows.append(VerifierStats(VerifierQuality("combined", *counts["combined"]), silent["combined"], members))
    return rows, n, correct


def evaluate(verifiers: Sequence[Verifier], items: Iterable[LabelledAnswer], *, source: str,
             combine: Sequence[str] | None = None, progress: Callable[[], None] | None = None,
             notes: Sequence[str] = ()) -> QualityReport:
    """Sync :func:`aevaluate` as a report (offline use, not inside a running event loop)."""
    rows, n, correct = asyncio.run(aevaluate(verifiers, items, combine=combine, progress=progress))
    return QualityReport(source, rows, n, correct, notes=list(notes))


def verifiers_for(cascade: Mapping[str, Any] | None, *, math: bool = False
                  ) -> tuple[list[Verifier], tuple[str, ...], list[str]]:
    """(verifiers, names to combine, notes). With a `[cascade]` section: its verifiers, all combined. Without:
    every model-less verifier (defaults + math) scored alone, and the cascade's default set combined, plus
    the math checks when `math` (they reject any answer without a "####"-style final number, so they only
    suit math prompts). The LLM judge verifier needs a live deployment and is left out."""
    from gearshift.cascade.factory import DEFAULT_VERIFIERS, build_cascade

    notes: list[str] = []
    options: dict[str, Any] = dict(cascade) if cascade is not None else {
        "verifiers": [*DEFAULT_VERIFIERS, *MATH_VERIFIERS]}
    names = list(options.get("verifiers", DEFAULT_VERIFIERS))
    if "judge" in names:
        names.remove("judge")
        notes.append("the 'judge' verifier calls a model and is not re-run here")
    options["verifiers"] = names
    _, verifiers = build_cascade(options)
    combine = tuple(names) if cascade is not None else (*DEFAULT_VERIFIERS, *(MATH_VERIFIERS if math else ()))
    return verifiers, combine, notes


def _response(content: str, finish_reason: Any, tool_calls: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if isinstance(tool_calls, list) and tool_calls:
        message["tool_calls"] = tool_calls
    return {"object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


def _request(messages: Any, response_format: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": messages if isinstance(messages, list) else []}
    if response_format is not None:
        out["response_format"] = response_format
    return out


def label_answer(label: Mapping[str, Any], triage: Mapping[str, Any] | None = None,
                 decision: Mapping[str, Any] | None = None) -> tuple[LabelledAnswer | None, str]:
    """(the cheap answer labelled cheap_ok=True, its source) or (None, why it cannot be used)."""
    hardness = label.get("label")
    if hardness not in TRAFFIC_LABELS:
        return None, "undecided"
    ok = hardness == "cheap_ok"
    kept = label.get("cheap_answer")
    if isinstance(kept, Mapping):
        if kept.get("text_mode", "full") != "full":
            return None, "concealed"
        request = _request(None, kept.get("response_format"))
        response = _response(str(kept.get("content") or ""), kept.get("finish_reason"), kept.get("tool_calls"))
        return LabelledAnswer(request, response, ok), str(kept.get("source") or "label")
    if triage is None:
        return None, "no_cheap_answer"
    scores = label.get("scores") or {}
    answers = triage.get("answers") or {}
    tier = next((t for t in triage.get("tier_order") or [] if t in scores and t in answers), None)
    if tier is None:
        return None, "no_cheap_answer"
    finish = decision.get("finish_reason") if decision is not None and decision.get("tier") == tier else None
    return LabelledAnswer(_request(triage.get("messages"), None), _response(str(answers[tier]), finish), ok), "triage"


def traffic_answers(store: LabelStore, *, since: float | None = None, limit: int | None = None
                    ) -> tuple[list[LabelledAnswer], dict[str, int]]:
    """The usable shadow-labelled cheap answers since `since`, and counts by source and skip reason."""
    labels = store.labels(since=since, limit=limit)
    triage: dict[str, dict[str, Any]] = {}
    if any(not isinstance(lab.get("cheap_answer"), Mapping) for lab in labels):
        triage = {str(it["request_id"]): it for it in store.triage_items(status="all", limit=None)}
    items: list[LabelledAnswer] = []
    counts: dict[str, int] = {}
    for lab in labels:
        rid = str(lab.get("request_id"))
        item_t = triage.get(rid)
        decision = store.decision(rid) if item_t is not None and "cheap_answer" not in lab else None
        item, why = label_answer(lab, item_t, decision)
        counts[why] = counts.get(why, 0) + 1
        if item is not None:
            items.append(item)
    return items, counts


_SKIPS = ("undecided", "no_cheap_answer", "concealed")


def traffic_verifier_quality(store: LabelStore, verifiers: Sequence[Verifier], *, since: float | None = None,
                             limit: int | None = None, combine: Sequence[str] | None = None,
                             notes: Sequence[str] = (),
                             progress: Callable[[], None] | None = None) -> QualityReport:
    """Precision, recall and false-accept rate of `verifiers` on the shadow-labelled traffic since `since`."""
    items, counts = traffic_answers(store, since=since, limit=limit)
    skipped = {k: v for k, v in counts.items() if k in _SKIPS}
    sources = {k: v for k, v in counts.items() if k not in _SKIPS}
    out_notes = list(notes)
    if sources.get("triage"):
        out_notes.append(f"{sources['triage']} answer(s) from triage items (kept only on disagreement: biased "
                         "towards hard prompts)")
    if not items:
        if skipped.get("concealed"):
            why = (f"{skipped['concealed']} shadow label(s) keep the cheap answer only as a hash/redaction "
                   "([store] text is not \"full\"), so verifiers cannot be re-run on traffic")
        elif not counts:
            why = "no shadow labels in the window (is [shadow] enabled?)"
        else:
            why = f"no shadow label with a judged cheap answer ({', '.join(f'{k}={v}' for k, v in skipped.items())})"
        return QualityReport("traffic", [], 0, 0, skipped, out_notes, unavailable=why)
    rows, n, correct = asyncio.run(aevaluate(verifiers, items, combine=combine, progress=progress))
    return QualityReport("traffic", rows, n, correct, skipped, out_notes)
