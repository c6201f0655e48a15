"""Security (issue 19, items 5-6): what hash/redact mode conceals beyond prompt and answer, and how exports know."""

from __future__ import annotations

from pathlib import Path

import pytest

from gearshift.errors import ConfigError
from gearshift.records.redaction import Concealment, record_transform
from gearshift.store.export import conceal_text

HASH = Concealment("hash", b"k" * 32)
REDACT = Concealment("redact")

ROW = {"request_id": "r", "time": 1.0, "prompt": "hello", "requested_model": "my secret project codename",
       "conversation_id": "alice@example.com thread 7", "tier": "cheap",
       "error_message": "upstream said: cannot answer 'what is alice's salary'",
       "attempts": [{"deployment": "cheap", "outcome": "error", "error_message": "quoted: alice's salary"}]}


def test_redact_mode_conceals_upstream_error_text_and_client_chosen_names() -> None:
    out = record_transform(REDACT, known_models=["cheap", "gearshift/auto"])(ROW)
    flat = str(out)
    for leaked in ("salary", "codename", "alice"):
        assert leaked not in flat, leaked
    assert out["tier"] == "cheap" and out["attempts"][0]["outcome"] == "error" and out["text_mode"] == "redact"
    known = record_transform(HASH, known_models=["cheap"])({**ROW, "requested_model": "cheap"})
    assert known["requested_model"] == "cheap"  # a configured name says nothing about the client
    assert known["conversation_id"].startswith("hmac-sha256:")  # hashed: still joins conversation turns
    assert record_transform(HASH)(ROW)["conversation_id"] == record_transform(HASH)(ROW)["conversation_id"]


def test_export_conceals_a_prompt_that_merely_looks_concealed() -> None:
    looks_hashed = {**ROW, "prompt": "sha256: is my password, please store it"}
    looks_redacted = {**ROW, "prompt": "[redacted by me] my password is hunter2"}
    for row in (looks_hashed, looks_redacted):
        assert "password" not in str(conceal_text(row, REDACT)["prompt"])
    written = record_transform(HASH)(ROW)  # concealed by the gateway: exported as written, not hashed twice
    assert conceal_text(dict(written), HASH)["prompt"] == written["prompt"]


def test_hash_mode_is_keyed_so_a_guessed_prompt_cannot_be_confirmed() -> None:
    """Item 7: an unsalted SHA-256 lets anyone holding the store confirm a guess ("is it 'hello'?")."""
    import hashlib

    guess = hashlib.sha256(b"hello").hexdigest()
    out = record_transform(HASH)(ROW)
    assert guess not in str(out) and out["prompt"].startswith("hmac-sha256:")
    other = record_transform(Concealment("hash", b"another key, 32 bytes long......"))(ROW)
    assert other["prompt"] != out["prompt"]  # a different key: nothing to compare against
    assert record_transform(Concealment("hash", b"k" * 32))(ROW)["prompt"] == out["prompt"]  # a fleet's shared key


def test_hash_mode_without_a_key_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from closed_loop.shadow_harness import KeywordRouter, settings
    from gearshift.gateway.app import create_app
    from support.fake_upstream import FakeUpstream

    monkeypatch.delenv("GEARSHIFT_HASH_KEY", raising=False)
    db = tmp_path / "gw.sqlite"
    with FakeUpstream(answer="cheap") as cheap, FakeUpstream(answer="strong") as strong:
        cfg = settings(cheap, strong, db, store={"path": str(db), "text": "hash"})
        with pytest.raises(ConfigError, match="GEARSHIFT_HASH_KEY"):
            create_app(cfg, router=KeywordRouter())
        monkeypatch.setenv("GEARSHIFT_HASH_KEY", "short")
        with pytest.raises(ConfigError, match="at least 16 bytes"):
            create_app(cfg, router=KeywordRouter())
        cfg = settings(cheap, strong, db, store={"path": str(db), "text": "hash", "hash_key_env": "MY_KEY"})
        monkeypatch.setenv("MY_KEY", "x" * 32)
        create_app(cfg, router=KeywordRouter())  # the variable [store] hash_key_env names is read
