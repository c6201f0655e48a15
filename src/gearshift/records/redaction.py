"""What a decision record may keep: prompt/answer text per `[store] text`, and never a provider API key.

`full` keeps text as sent, `hash` replaces it with an HMAC-SHA256 under a secret key (joins and dedup still
work; without the key a guessable prompt cannot be confirmed by hashing candidates), `redact` with a length
marker. Provider keys are scrubbed from every string as a last line of defence:
providers already keep them out of error messages, but an upstream could echo one back in any field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gearshift.errors import ConfigError
from gearshift.providers.secrets import scrub_secrets

TextMode = Literal["full", "hash", "redact"]
#: The environment variable `[store] text = "hash"` reads its HMAC key from unless `hash_key_env` names another.
HASH_KEY_ENV = "GEARSHIFT_HASH_KEY"
HASH_PREFIX = "hmac-sha256:"
MIN_HASH_KEY_BYTES = 16

#: Record fields (at any depth) that carry prompt or answer text.
TEXT_FIELDS = frozenset({"prompt", "prompt_text", "answer", "answer_text", "messages", "response_text",
                         "completion", "content", "text", "shadow_answer"})
#: Fields holding upstream text: besides the configured keys, anything credential-shaped is scrubbed there.
ERROR_FIELDS = frozenset({"error_message"})
SECRET_MARK = "***"


@dataclass(frozen=True)
class Concealment:
    """How text is kept: the mode, and for `hash` the HMAC key (the same on every gateway of a fleet, or
    joins across gateways break). A key shorter than 16 bytes is refused: it could be guessed."""

    mode: TextMode = "full"
    key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("full", "hash", "redact"):
            raise ConfigError(f"text mode must be full, hash or redact, got {self.mode!r}")
        if self.mode == "hash" and len(self.key) < MIN_HASH_KEY_BYTES:
            raise ConfigError(
                f"text = \"hash\" needs a secret key of at least {MIN_HASH_KEY_BYTES} bytes in ${HASH_KEY_ENV} "
                "(or the variable [store] hash_key_env names), the same on every gateway sharing a store: "
                "export GEARSHIFT_HASH_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')")

    @classmethod
    def from_env(cls, mode: TextMode, key_env: str = HASH_KEY_ENV) -> Concealment:
        """The concealment for `mode`, reading the hash key from `key_env` only when `mode` is hash."""
        if mode != "hash":
            return cls(mode)
        from gearshift.config import get_env

        return cls(mode, (get_env(key_env) or "").encode("utf-8"))

    def __call__(self, value: Any) -> Any:
        return conceal(value, self)


FULL = Concealment()


def conceal(value: Any, how: Concealment) -> Any:
    if how.mode == "full" or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if how.mode == "hash":
        return HASH_PREFIX + hmac.new(how.key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"[redacted {len(text)} chars]"


def _walk(obj: Any, how: Concealment, secrets: tuple[str, ...]) -> Any:
    if isinstance(obj, Mapping):
        return {k: conceal(_walk(v, FULL, secrets), how) if k in TEXT_FIELDS
                else scrub_secrets(v, secrets) if k in ERROR_FIELDS and isinstance(v, str)
                else _walk(v, how, secrets)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, how, secrets) for v in obj]
    if isinstance(obj, str) and secrets:
        for s in secrets:
            obj = obj.replace(s, SECRET_MARK)
    return obj


def scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, SECRET_MARK)
    return text


Transform = Callable[[Mapping[str, Any]], Mapping[str, Any]]


#: Client-chosen identifiers: concealed like text in hash/redact mode (a client can put anything in them).
CLIENT_FIELDS = ("conversation_id",)
_KNOWN_ROUTER = re.compile(r"^router-[a-z0-9_]+-[0-9.]+$")


def _conceal_record(out: dict[str, Any], how: Concealment, known_models: frozenset[str]) -> dict[str, Any]:
    """Beyond the text fields: upstream error text (which may quote the request) and client-chosen names."""
    for k in CLIENT_FIELDS:
        if out.get(k) is not None:
            out[k] = conceal(out[k], how)
    model = out.get("requested_model")
    if isinstance(model, str) and model not in known_models and not _KNOWN_ROUTER.match(model):
        out["requested_model"] = conceal(model, how)
    if out.get("error_message") is not None:
        out["error_message"] = conceal(out["error_message"], how)
    attempts = out.get("attempts")
    if isinstance(attempts, list):
        out["attempts"] = [{**a, "error_message": conceal(a["error_message"], how)}
                           if isinstance(a, Mapping) and a.get("error_message") is not None else a for a in attempts]
    out["text_mode"] = how.mode
    return out


def record_transform(how: Concealment, secrets: Iterable[str] = (), known_models: Iterable[str] = ()) -> Transform:
    """The per-record transform of the writer and of what extensions (spans) see: text per `mode`, provider
    keys scrubbed everywhere, credential-shaped tokens scrubbed from upstream error text. In hash/redact mode
    also the upstream error text, `conversation_id`, and a `requested_model` that is not one of `known_models`
    (or a router-NAME-THRESHOLD name); `text_mode` says which mode concealed the record."""
    known = frozenset(known_models)
    keys = tuple(sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True))

    def transform(record: Mapping[str, Any]) -> Mapping[str, Any]:
        if how.mode == "full":  # cheap path: only rebuild a record that contains a key or an upstream error
            has_error = bool(record.get("error_message")) or any(
                isinstance(a, Mapping) and a.get("error_message") for a in record.get("attempts") or ())
            if not has_error and not (keys and any(k in json.dumps(record, default=str) for k in keys)):
                return record
        out: dict[str, Any] = _walk(record, how, keys)
        return out if how.mode == "full" else _conceal_record(out, how, known)

    return transform
