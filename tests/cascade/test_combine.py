"""Verdicts combined per segment (cascade/combine.py), and through the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.harness import make_settings, serve
from gearshift.cascade.combine import CombineRule
from gearshift.cascade.verifiers import Verdict
from gearshift.errors import ConfigError
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour, FakeUpstream

OK, BAD = Verdict("a", True), Verdict("b", False)


def test_all_any_and_weighted() -> None:
    assert CombineRule("all").rejects([OK, BAD]) and not CombineRule("any").rejects([OK, BAD])
    assert CombineRule("any").rejects([BAD]) and not CombineRule("all").rejects([])
    weighted = CombineRule("weighted", {"a": 3.0, "b": 1.0}, min_score=0.7)
    assert not weighted.rejects([OK, BAD])  # 3 of 4
    assert CombineRule("weighted", {"a": 1.0, "b": 3.0}, min_score=0.7).rejects([OK, BAD])  # 1 of 4
    by = CombineRule("all", by_segment={"has_code=yes": "any", "language=fr": "any"})
    assert not by.rejects([OK, BAD], {"has_code": True}) and by.rejects([OK, BAD], {"has_code": False})
    assert not by.rejects([OK, BAD], {"language": "fr"}) and by.rejects([OK, BAD], {"language": "en"})
    with pytest.raises(ConfigError):
        CombineRule("most")
    with pytest.raises(ConfigError):
        CombineRule(by_segment={"fr": "any"})


def test_a_segment_can_ship_what_another_escalates(tmp_path: Path) -> None:
    """Cut cheap answers: code requests (mode any: the non-empty check passes) ship them; others escalate."""
    with FakeUpstream(answer="def f(): return 1", default=Behaviour(finish_reason="length")) as cheap, \
            FakeUpstream(answer="strong answer") as strong:
        settings = make_settings([cheap], strong, tmp_path / "d.sqlite",  # every request starts cheap:
                                 router={"name": "heuristic", "thresholds": [0.999]}, cascade={
            "enabled": True, "verifiers": ["empty", "truncation"], "combine_by_segment": {"has_code=yes": "any"}})
        server = serve(settings)
        try:
            with server.client() as c:
                code = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                    {"role": "user", "content": "fix this:\n```python\ndef f(:\n    return 1\n```"}]})
                prose = c.post("/v1/chat/completions", json={"model": "gearshift/auto", "messages": [
                    {"role": "user", "content": "say hello"}]})
            server.flush()
            store = server.gateway.store
            assert store is not None
            rows = {r["request_id"]: r for r in store.query(DecisionQuery(limit=None))}
        finally:
            server.stop()
    assert code.headers["x-gearshift-tier"] == "cheap" and prose.headers["x-gearshift-tier"] == "strong"
    assert rows[code.headers["x-gearshift-request-id"]]["segment"]["has_code"] is True
    assert rows[prose.headers["x-gearshift-request-id"]]["escalated"]
