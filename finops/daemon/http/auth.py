"""Bearer tokens, one per source: the source of what a request sends is its token's source.

Tokens are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured
token, so the time taken says nothing about how much of a token matched, or which one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["ANONYMOUS_SOURCE", "TokenTable"]

#: The source of requests to a daemon that listens on loopback only and has no tokens set.
ANONYMOUS_SOURCE = "local"


class TokenTable:
    def __init__(self, tokens: Mapping[str, str], *, anonymous: bool) -> None:
        """``tokens``: token -> source. ``anonymous``: no token needed (loopback, none configured)."""
        self._digests = [(hashlib.sha256(t.encode()).digest(), s) for t, s in tokens.items()]
        self.anonymous = anonymous

    def source(self, authorization: str | None) -> str | None:
        """The source of a request's ``Authorization`` header, or ``None`` if it is not allowed."""
        if self.anonymous:
            return ANONYMOUS_SOURCE
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = hashlib.sha256(token.strip().encode()).digest()
        found: str | None = None
        for digest, source in self._digests:  # no early exit: every token is compared
            if hmac.compare_digest(digest, given):
                found = source
        return found
