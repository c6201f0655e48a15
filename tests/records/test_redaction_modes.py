"""Security (issue 19, items 5-6): what hash/redact mode conceals beyond prompt and answer, and how exports know."""

from __future__ import annotations

from gearshift.records.redaction import record_transform
from gearshift.store.export import conceal_text

ROW = {"request_id": "r", "time": 1.0, "prompt": "hello", "requested_model": "my secret project codename",
       "conversation_id": "alice@example.com thread 7", "tier": "cheap",
       "error_message": "upstream said: cannot answer 'what is alice's salary'",
       "attempts": [{"deployment": "cheap", "outcome": "error", "error_message": "quoted: alice's salary"}]}


def test_redact_mode_conceals_upstream_error_text_and_client_chosen_names() -> None:
    out = record_transform("redact", known_models=["cheap", "gearshift/auto"])(ROW)
    flat = str(out)
    for leaked in ("salary", "codename", "alice"):
        assert leaked not in flat, leaked
    assert out["tier"] == "cheap" and out["attempts"][0]["outcome"] == "error" and out["text_mode"] == "redact"
    known = record_transform("hash", known_models=["cheap"])({**ROW, "requested_model": "cheap"})
    assert known["requested_model"] == "cheap"  # a configured name says nothing about the client
    assert known["conversation_id"].startswith("sha256:")  # hashed: still joins conversation turns
    assert record_transform("hash")(ROW)["conversation_id"] == record_transform("hash")(ROW)["conversation_id"]


def test_export_conceals_a_prompt_that_merely_looks_concealed() -> None:
    looks_hashed = {**ROW, "prompt": "sha256: is my password, please store it"}
    looks_redacted = {**ROW, "prompt": "[redacted by me] my password is hunter2"}
    for row in (looks_hashed, looks_redacted):
        assert "password" not in str(conceal_text(row, "redact")["prompt"])
    written = record_transform("hash")(ROW)  # concealed by the gateway: exported as written, not hashed twice
    assert conceal_text(dict(written), "hash")["prompt"] == written["prompt"]
