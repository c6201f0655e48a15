"""The hot-path decision row must be exactly what the pydantic record would have stored."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gearshift.data.segments import language_of as detect_language
from gearshift.records.record import DecisionRecord, record_row, segment_of, segment_row

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "def f(x):\n    return x;  why?"}]


def _full_rec() -> dict[str, Any]:
    return {
        "request_id": "gs-b", "time": 1, "api_key_id": "k", "requested_model": "gearshift/auto", "stream": True,
        "segment": segment_row("def f(x): return x", MESSAGES), "route": "auto", "router": "heuristic",
        "router_version": "1", "thresholds": [np.float64(0.5)], "score": np.float32(0.25), "confidence": 0.8,
        "reason": "p_strong=0.250", "tier": "cheap", "propensity": 1, "tier_probabilities": [0.2, np.float64(0.8)],
        "explored": True, "deployment": "cheap", "attempts": [{"deployment": "cheap", "outcome": "error"}, {}],
        "tokens_in": np.int64(20), "tokens_out": 10, "cost_usd": 1e-5, "status": "error", "http_status": 502,
        "error_type": "upstream_error", "error_message": "boom", "usage_estimated": True, "finish_reason": "stop",
        "cascade": [{"tier": "cheap", "deployment": None, "shipped": True, "verdicts": [], "cost_usd": 0.0001}],
    }


@pytest.mark.parametrize("rec", [{"request_id": "gs-a", "time": 12.5}, _full_rec()], ids=["minimal", "full"])
def test_record_row_equals_the_pydantic_row(rec: dict[str, Any]) -> None:
    want = DecisionRecord(**rec).to_row()
    got = record_row(rec)
    assert got == want and list(got) == list(want)
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    assert DecisionRecord.model_validate(got).to_row() == want


def test_record_row_defaults_are_fresh_per_row() -> None:
    a = record_row({"request_id": "a", "time": 1.0})
    a["attempts"].append({"x": 1})
    a["segment"]["language"] = "xx"
    assert record_row({"request_id": "b", "time": 1.0})["attempts"] == []
    assert record_row({"request_id": "b", "time": 1.0})["segment"]["language"] == "und"


def test_record_row_refuses_what_the_model_refuses() -> None:
    with pytest.raises(ValueError, match="unknown"):
        record_row({"request_id": "a", "time": 1.0, "tierr": "cheap"})
    with pytest.raises(ValueError, match="status"):
        record_row({"request_id": "a", "time": 1.0, "status": "fine"})


@pytest.mark.parametrize("text", ["What is the capital of France?", "Le chat et le chien de la maison",
                                  "```python\nimport os\n```", "<b>hi</b> there", "a => b", "plain words only",
                                  "Привет, как дела у тебя сегодня?", ""])
def test_segment_row_matches_segment_of(text: str) -> None:
    msgs = [{"role": "user", "content": text}]
    assert segment_row(text, msgs) == segment_of(text, msgs).model_dump()


def test_language_is_an_iso_code_from_the_language_id_model() -> None:
    assert detect_language("Pourquoi le ciel est-il bleu ?") == "fr"
    assert detect_language("Warum ist der Himmel blau?") == "de"
