"""The disagreement triage queue: what a reviewer sees, and how labelled items become training data.

An item holds the prompt, every tier's answer, the routing decision and the judge's scores and
reasoning. Human labels ("strong_needed", "cheap_ok"; "skip" drops the item) become canonical
`PromptRecord` outcomes per tier (tiers as models, with a models table giving their order), so
`gearshift.data.records.read_jsonl` and every trainable router read the export as they read the
recorded benchmarks. Unlabelled items can optionally be exported from the judge's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gearshift.closed_loop.judge_pairwise import Judgement
from gearshift.closed_loop.signals import segment_labels
from gearshift.data.records import Dataset, ModelInfo, Outcome, PromptRecord, write_jsonl
from gearshift.errors import DataError
from gearshift.records.fields import TRIAGE_FIELDS
from gearshift.records.redaction import Concealment
from gearshift.store.labels import LabelStore

_ROUTING_KEYS = tuple(f.name for f in TRIAGE_FIELDS)


def triage_item(record: Mapping[str, Any], payload: Mapping[str, Any], prompt: str, answers: Mapping[str, str],
                verdict: Judgement, max_chars: int, tier_order: Sequence[str]) -> dict[str, Any]:
    """The JSON a reviewer needs; the request's messages are kept so the prompt can be re-sent."""
    return {
        "prompt": prompt[:max_chars],
        "messages": payload.get("messages"),
        "segments": segment_labels(record.get("segment")),
        "answers": {t: a[:max_chars] for t, a in answers.items()},
        "routing": {k: record.get(k) for k in _ROUTING_KEYS},
        "judge": verdict.to_json(),
        "tier_order": [t for t in tier_order if t in answers],
    }


def conceal_triage(item: dict[str, Any], how: Concealment) -> dict[str, Any]:
    """The item with its text (prompt, messages, answers, the judge's reasoning) kept per `[store] text`."""
    if how.mode == "full":
        return item
    judge = dict(item.get("judge") or {})
    judge["reasoning"] = [how(r) for r in judge.get("reasoning") or []]
    return {**item, "prompt": how(item.get("prompt")), "messages": how(item.get("messages")),
            "answers": {t: how(a) for t, a in (item.get("answers") or {}).items()}, "judge": judge,
            "text_mode": how.mode}


def label_outcomes(label: str, tier_order: Sequence[str]) -> dict[str, float]:
    """Per-tier scores a human label implies: "strong_needed" fails every tier below the top one."""
    if label == "cheap_ok":
        return {t: 1.0 for t in tier_order}
    if label == "strong_needed":
        return {t: (1.0 if i == len(tier_order) - 1 else 0.0) for i, t in enumerate(tier_order)}
    raise DataError(f"label {label!r} has no outcomes")


def export_triage(store: LabelStore, out: str | Path, tier_order: Sequence[str] | None = None, *,
                  include_judge: bool = False) -> int:
    """Write labelled items (and, with `include_judge`, unlabelled ones scored by the judge) as canonical
    JSONL plus its models table; returns how many records were written. `tier_order` defaults to the
    order the items list their tiers in (cheap first, as the gateway configures them)."""
    items = store.triage_items(status="all", limit=None)
    order = list(tier_order) if tier_order is not None else _tier_order(items)
    records: list[PromptRecord] = []
    for it in items:
        label = it.get("label")
        if label == "skip" or (label is None and not include_judge):
            continue
        if label is not None:
            scores = label_outcomes(label, order)
            source = "human"
        else:
            judged = (it.get("judge") or {}).get("scores") or {}
            if not all(t in judged for t in order):
                continue
            scores = {t: float(judged[t]) for t in order}
            source = "judge"
        segments = {**(it.get("segments") or {}), "label_source": source}
        records.append(PromptRecord(id=str(it["request_id"]), prompt=str(it.get("prompt") or ""), segments=segments,
                                    outcomes={t: Outcome(score=min(max(s, 0.0), 1.0)) for t, s in scores.items()}))
    if not records:
        raise DataError("nothing to export: no labelled triage items" + ("" if include_judge else
                                                                         " (try --include-judge)"))
    models = {t: ModelInfo(name=t, tier=i) for i, t in enumerate(order)}
    write_jsonl(Dataset(name=Path(out).name.removesuffix(".jsonl"), records=records, models=models,
                        notes=["exported from the gearshift triage queue; models are gateway tiers"]), out)
    return len(records)


def _tier_order(items: Sequence[Mapping[str, Any]]) -> list[str]:
    order: list[str] = []
    for it in items:
        for t in it.get("tier_order") or []:
            if t not in order:
                order.append(t)
    return order
