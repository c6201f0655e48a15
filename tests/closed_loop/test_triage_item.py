"""A triage item shows the reviewer the routing facts the field list marks `triage`, as the record has them."""

from __future__ import annotations

from gearshift.closed_loop.judge_pairwise import Judgement
from gearshift.closed_loop.triage import triage_item
from gearshift.records.fields import TRIAGE_FIELDS
from support.records import full_record

#: The routing keys a triage item carried before the field list drove them: none may go missing.
KEYS_BEFORE_THE_FIELD_LIST = {"tier", "router", "router_version", "score", "thresholds", "reason", "escalated", "route",
                              "deployment", "confidence", "ood"}


def test_the_routing_part_is_the_lists_triage_fields() -> None:
    rec = full_record()
    verdict = Judgement(scores={"cheap": 0.2, "strong": 0.9}, label="strong_needed", min_tier="strong", gap=0.7)
    item = triage_item(rec, {"messages": [{"role": "user", "content": "q"}]}, "q", {"cheap": "a", "strong": "b"},
                       verdict, 100, ["cheap", "strong"])
    assert item["routing"] == {f.name: f.get(rec) for f in TRIAGE_FIELDS}
    assert set(item["routing"]) >= KEYS_BEFORE_THE_FIELD_LIST
    assert item["routing"]["router_version"] == "heuristic/4" and item["routing"]["thresholds"] == [0.25, 0.75]
    assert "prompt" not in item["routing"] and "api_key_id" not in item["routing"]
