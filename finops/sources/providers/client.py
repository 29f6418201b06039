"""GET a provider's admin API over HTTP: retries where waiting helps, one clear error where it does not.

- 429: wait what ``Retry-After`` says (seconds or an HTTP date), capped, then try again.
- 5xx and network errors: exponential backoff, then try again.
- 401/403: a :class:`~finops.errors.ConfigError` naming the setting to fix; waiting would not help.
- other 4xx: an :class:`~finops.errors.IngestError` with the provider's own message.

The admin key is sent in a header and never appears in a log line or an error
message: the provider's error text is scrubbed of it before it is shown.
JSON numbers with a fraction are parsed as ``Decimal`` so no amount ever
passes through a float.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from finops.errors import ConfigError, IngestError

__all__ = ["ProviderClient", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request before the poll gives up (the next poll resumes from the cursor)."""

    attempts: int = 6
    backoff_s: float = 1.0  # doubled after each 5xx, up to max_backoff_s
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 120.0  # a provider asking for longer is waited on at the next poll
    timeout_s: float = 60.0


class ProviderClient:
    """One provider's admin API: a base URL, auth headers, and the name of the setting holding the key."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: dict[str, str],
        secret: str,
        key_setting: str,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.retry = retry or RetryPolicy()
        self.retries = 0
        self.requests = 0
        self._secret = secret
        self._key_setting = key_setting
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=self.retry.timeout_s,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, path: str, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """The JSON object at ``path``; retried as the module docstring says.

        Raises ConfigError (bad key), IngestError (anything else that retries did not cure).
        """
        policy = self.retry
        backoff = policy.backoff_s
        problem = ""
        for attempt in range(1, policy.attempts + 1):
            self.requests += 1
            try:
                response = self._http.get(path, params=list(params))
            except httpx.TransportError as exc:
                problem = f"could not be reached ({type(exc).__name__})"
                wait = backoff
                backoff = min(backoff * 2, policy.max_backoff_s)
            else:
                status = response.status_code
                if status == 200:
                    return self._json(response, path)
                if status in (401, 403):
                    raise ConfigError(
                        f"{self.name} refused the admin key (HTTP {status}) at {path}: set "
                        f"{self._key_setting} to an admin key with read access to usage and costs"
                    )
                if status == 429:
                    problem = "answered 429 Too Many Requests"
                    wait = min(_retry_after(response) or backoff, policy.max_retry_after_s)
                    backoff = min(backoff * 2, policy.max_backoff_s)
                elif status >= 500:
                    problem = f"answered HTTP {status}"
                    wait = backoff
                    backoff = min(backoff * 2, policy.max_backoff_s)
                else:
                    raise IngestError(
                        f"{self.name} answered HTTP {status} at {path}: {self._scrub(response.text)[:300]}"
                    )
            if attempt == policy.attempts:
                break
            self.retries += 1
            self._sleep(wait)
        raise IngestError(
            f"{self.name} {problem} at {path} {policy.attempts} times in a row; the next poll "
            "resumes where this one stopped"
        )

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            doc = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise IngestError(f"{self.name} answered {path} with something that is not JSON") from None
        if not isinstance(doc, dict):
            raise IngestError(f"{self.name} answered {path} with JSON that is not an object")
        return doc

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After``: a number of seconds or an HTTP date; ``None`` if absent."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
