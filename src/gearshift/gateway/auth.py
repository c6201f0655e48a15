"""Gateway API keys: configured as SHA-256 digests; a request's key maps to a key id for the record."""

from __future__ import annotations

import hashlib
import hmac

from gearshift.errors import AuthenticationError
from gearshift.gateway.settings import AuthSettings


class KeyChecker:
    """No configured keys means an open gateway (the local demo); otherwise a Bearer key is required."""

    def __init__(self, settings: AuthSettings) -> None:
        self._by_digest = {k.sha256: k.id for k in settings.keys}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def check(self, authorization: str | None) -> str | None:
        """The key id for an `Authorization` header value; raises AuthenticationError when required."""
        if not self._by_digest:
            return None
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(authorization[7:].strip().encode("utf-8")).hexdigest()
        for known, key_id in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return key_id
        raise AuthenticationError("invalid API key")
