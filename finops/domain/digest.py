"""What finops keeps of input it refused: a keyed hash, never the text.

A rejected line may hold a prompt, an email or a secret; the dead letters keep where it was,
why it was refused and this digest, so an operator holding the source can still match it
(same key, same input, same digest) while the database never holds its words. The key is the
ledger's user-hash key, so a short guessable input cannot be looked up without it.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["input_digest"]


def input_digest(data: bytes | str, key: bytes) -> str:
    """``hmac-sha256:<32 hex> (<n> bytes)`` of ``data``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    mac = hmac.new(key, raw, hashlib.sha256).hexdigest()[:32]
    return f"hmac-sha256:{mac} ({len(raw):,} bytes)"
