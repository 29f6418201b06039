"""What slack-sdk needs to deliver safely: retry handlers that never double-post, and secret scrubbing.

Retries happen inside slack-sdk's HTTP loop, so the handlers installed decide
what may be sent twice. Only answers that prove Slack did *not* take the message
are retried here: HTTP 429 (Slack says when to come back) and 5xx. slack-sdk's
``ConnectionErrorRetryHandler`` is deliberately absent: it also retries
``RemoteDisconnected`` and resets that happen after the request was sent, when
Slack may already have posted the message.

Every wait and attempt is bounded (:func:`max_call_s`), and a :class:`CallDeadline` set by
the caller stops the handlers from starting an attempt that could end after it: the outbox
claims a message for that long, and nothing of ours may reach Slack once the claim has ended.

A bot token or webhook URL is a password. :class:`Scrubber` removes them from
any text finops produces, and :func:`scrubbing_logger` gives slack-sdk a logger
that does the same (its debug log prints the webhook URL).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

__all__ = [
    "MAX_INLINE_WAIT_S",
    "SERVER_ERROR_BACKOFF_S",
    "BoundedRateLimitRetryHandler",
    "CallDeadline",
    "Scrubber",
    "ServerErrorRetryHandler",
    "max_call_s",
    "retry_after",
    "scrubbing_logger",
]

_log = logging.getLogger("finops.notify.slack")

#: A Retry-After longer than this is not slept through inside one send: the outbox retries later.
MAX_INLINE_WAIT_S = 30.0
#: slack-sdk adds up to a second of random jitter to every wait between attempts.
_JITTER_S = 1.0
#: The 5xx back-off: the first retry waits this long, each next one twice as long (slack-sdk's
#: ``backoff_factor``), plus the jitter. Read when a sender is made: the tests set it lower to
#: wait less between the 5xx answers of their fake Slack; nothing in finops changes it.
SERVER_ERROR_BACKOFF_S = 0.5
_REDACTED = "[redacted]"
#: Slack token shapes and webhook paths, scrubbed even when they are not the configured secret.
_PATTERNS = (
    re.compile(r"xox[a-z]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"(?:https?://)?hooks\.slack(?:-gov)?\.com/[^\s'\"<>]+"),
)


def retry_after(headers: Any) -> float | None:
    """The Retry-After header in seconds, whatever its case and container (dict, list values)."""
    if not headers:
        return None
    for key in list(headers.keys()):
        if str(key).lower() == "retry-after":
            value = headers[key]
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def max_call_s(timeout_s: float, max_retries: int) -> float:
    """The longest one Slack API call may take with its retries.

    Every attempt may use the timeout twice (connecting, then waiting for the answer), and
    every wait between attempts may be as long as we honour: a Retry-After up to
    ``MAX_INLINE_WAIT_S`` or the 5xx backoff, plus slack-sdk's jitter.
    """
    longest_wait = max(MAX_INLINE_WAIT_S, SERVER_ERROR_BACKOFF_S * 2.0 ** max(max_retries - 1, 0)) + _JITTER_S
    return (max_retries + 1) * 2 * timeout_s + max_retries * longest_wait


class CallDeadline:
    """When the call in progress must be over (epoch seconds; None: no deadline).

    Set by the sender around one call and read by the retry handlers: an attempt (up to
    ``attempt_s``) is started only if it, and the wait before it, end by the deadline.
    """

    def __init__(self, attempt_s: float) -> None:
        self.attempt_s = attempt_s
        self.at: float | None = None

    def allows(self, wait_s: float = 0.0) -> bool:
        return self.at is None or time.time() + wait_s + self.attempt_s <= self.at


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (sleeps Retry-After, then retries), unless Slack asks for a long wait.

    A daemon blocked for minutes on one channel delays every other alert; a long
    Retry-After is returned to the caller as ``retry`` with ``retry_after_s`` instead. So is
    one that would end the retry after the caller's deadline.
    """

    def __init__(self, max_retry_count: int = 1, deadline: CallDeadline | None = None) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._deadline = deadline

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None
        wait = retry_after(response.headers)
        if wait is not None and (wait > MAX_INLINE_WAIT_S or wait != int(wait)):
            return False  # slack-sdk would raise on "1.5" after the answer came: the outbox waits instead
        slept = (1.0 if wait is None else int(wait)) + _JITTER_S  # as slack-sdk sleeps it
        return self._deadline is None or self._deadline.allows(slept)


class ServerErrorRetryHandler(RetryHandler):
    """Retries HTTP 500, 502, 503 and 504 with exponential backoff (0.5 s, 1 s, 2 s... plus up to 1 s jitter;
    ``SERVER_ERROR_BACKOFF_S`` is the first wait).

    slack-sdk ships a handler of this name only for 500 and 503 and not in every 3.x
    release; proxies in front of Slack answer 502 and 504 too.
    """

    STATUSES = frozenset({500, 502, 503, 504})

    def __init__(self, max_retry_count: int = 1, deadline: CallDeadline | None = None) -> None:
        self._backoff_s = SERVER_ERROR_BACKOFF_S
        super().__init__(max_retry_count, BackoffRetryIntervalCalculator(backoff_factor=self._backoff_s))
        self._deadline = deadline

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code not in self.STATUSES:
            return False
        slept = self._backoff_s * 2.0**state.current_attempt + _JITTER_S
        return self._deadline is None or self._deadline.allows(slept)


class Scrubber:
    """Replaces the configured secrets (and anything shaped like a Slack token or webhook) in text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found: set[str] = set()
        for secret in secrets:
            if not secret or len(secret.strip()) < 6:
                continue
            secret = secret.strip()
            found.add(secret)
            if "://" in secret:  # the URL without its scheme, and its last path segment (the key)
                rest = secret.split("://", 1)[1]
                found.add(rest)
                tail = rest.rstrip("/").rsplit("/", 1)[-1]
                if len(tail) >= 8:
                    found.add(tail)
        self._secrets = sorted(found, key=len, reverse=True)  # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(_REDACTED, text)
        return text


class _ScrubFilter(logging.Filter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call must not break delivery
            message = str(record.msg)
        record.msg, record.args = self._scrub(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def scrubbing_logger(scrub: Scrubber) -> logging.Logger:
    """A logger for slack-sdk that scrubs every record, then passes it to ``finops.notify.slack``.

    It is private to one sender (not registered with ``logging.getLogger``), so
    its filter only ever holds that sender's secrets.
    """
    logger = logging.Logger(f"{_log.name}.sdk")
    logger.parent = _log
    logger.addFilter(_ScrubFilter(scrub))
    return logger
