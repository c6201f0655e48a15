"""The cascade serves the Anthropic surface as it serves chat completions: a cut cheap answer escalates, JSON and
`stream_mode = "buffer"` streams alike, and the client sees Anthropic's shapes."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest

from gateway.harness import make_settings, serve
from gearshift.store.base import DecisionQuery
from support.fake_upstream import Behaviour, FakeUpstream


@pytest.mark.parametrize("stream", [False, True])
def test_cascade_escalates_a_messages_request(tmp_path: Path, stream: bool) -> None:
    with FakeUpstream(answer="a cut off cheap answer", default=Behaviour(finish_reason="length")) as cheap, \
            FakeUpstream(answer="the strong answer is 42") as strong:
        server = serve(make_settings([cheap], strong, tmp_path / "d.sqlite", cascade={
            "enabled": True, "verifiers": ["empty", "truncation"], "stream_mode": "buffer"}))
        try:
            client = anthropic.Anthropic(base_url=server.root, api_key="unused", max_retries=0)
            request = {"model": "gearshift/auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
            if stream:
                with client.messages.stream(**request) as s:
                    text = "".join(s.text_stream)
                    final = s.get_final_message()
            else:
                final = client.messages.create(**request)
                text = final.content[0].text
            server.flush()
            store = server.gateway.store
            assert store is not None
            (rec,) = store.query(DecisionQuery(limit=None))
        finally:
            server.stop()
    assert text == "the strong answer is 42" and final.stop_reason == "end_turn"
    assert rec["escalated"] and [s["tier"] for s in rec["cascade"]] == ["cheap", "strong"]
    assert not any(req.json.get("stream") for req in cheap.chat_requests)  # verified whole, then replayed
