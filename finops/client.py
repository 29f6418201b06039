"""A small typed client of the finops daemon for apps: reserve before an LLM call, settle after it.

finops itself never imports this module: it is an adapter for applications, and it needs only
httpx and the standard library (plus :mod:`finops.errors`, so an app can catch ``FinopsError``).

Usage::

    from finops.client import BudgetExceeded, FinopsClient

    client = FinopsClient("http://finops:8787", token="tok-app-...")
    try:
        with client.reserve(
            "support-gpt-en", model="gpt-4o", input_tokens=1200, max_output_tokens=800
        ) as hold:
            reply = openai.chat.completions.create(..., max_tokens=800)
            hold.settle({"id": reply.id, "ts": ..., "provider": "openai", "model": reply.model,
                         "input_tokens": reply.usage.prompt_tokens,
                         "output_tokens": reply.usage.completion_tokens})
    except BudgetExceeded as denied:
        ...  # the cap would be passed: denied.reason says which budget, denied.answer the numbers

Leaving the ``with`` block by an exception, or without settling, releases the hold. Money at
stake fails closed: a network error, a timeout, a 429 or a 5xx on ``reserve`` raises
:class:`FinopsUnavailable` after the retries, never an allow. Every reserve carries a
``request_id`` (one is generated per call), and the daemon answers the same id with the same
decision, so a retry after a timeout never holds twice.

Retries: network errors, timeouts, 429 and 502/503/504 are sent again, ``retries`` times. A 429
or 503 with ``Retry-After`` (seconds, or an HTTP date) is sent again after the time the server
asks (the daemon asks 5 s while its database is away); one that asks for more than
``max_retry_after_s`` (default 5 s) is not waited for: the client gives up at once with
:class:`FinopsUnavailable`, whose message says what the server asked. Without ``Retry-After`` the
waits are ``retry_wait_s``, doubled each time.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from finops.errors import FinopsError

__all__ = [
    "BudgetExceeded",
    "CheckAnswer",
    "FinopsClient",
    "FinopsClientError",
    "FinopsUnavailable",
    "Hold",
]

log = logging.getLogger("finops.client")

Money = Decimal | str | int
#: Answers worth asking again (the daemon or its database is away for now, or busy); other errors
#: are final.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Answers whose ``Retry-After`` says when to ask again (RFC 9110 §10.2.3).
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class FinopsClientError(FinopsError):
    """finops refused the request, or answered something unusable; ``status`` and ``answer`` say
    what came back (``None`` when nothing did)."""

    def __init__(self, message: str, *, status: int | None = None, answer: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


class FinopsUnavailable(FinopsClientError):
    """No decision could be had (network error, timeout, 429, 5xx): treat it as a deny."""


class BudgetExceeded(FinopsClientError):
    """The reserve was denied: ``reason`` says which budget; ``answer`` is the daemon's JSON."""

    def __init__(self, reason: str, answer: Mapping[str, Any]) -> None:
        super().__init__(f"budget exceeded: {reason}", status=200, answer=answer)
        self.reason = reason


@dataclass(frozen=True)
class CheckAnswer:
    """The answer of ``GET /v1/budgets/{flow}/check``: a read, it holds nothing."""

    allow: bool
    reason: str
    remaining_usd: Decimal | None
    held_usd: Decimal | None
    answer: Mapping[str, Any]


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _usd(value: Money, name: str) -> str:
    """Dollars as an exact decimal string; a float is refused (it is not an exact amount)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"{name} takes a Decimal, str or int of dollars (exact), not {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} takes a number of dollars, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} takes a non-negative number of dollars, got {value!r}")
    return str(amount)


@dataclass
class Hold:
    """Money held for one call until :meth:`settle` (the call's usage replaces it) or
    :meth:`release` (the call failed or was not made); else it lapses at ``expires_at``.

    As a context manager it releases the hold when the block ends without a settlement."""

    client: FinopsClient = field(repr=False)
    flow: str
    tags: Mapping[str, str]
    reservation_id: str
    request_id: str
    expires_at: datetime
    estimate_usd: Decimal | None
    remaining_usd: Decimal | None
    answer: Mapping[str, Any] = field(repr=False)
    state: str = "open"  # open | settled | released

    def settle(self, usage: Mapping[str, Any]) -> dict[str, Any]:
        """Store the call's usage record with this hold's ``reservation_id``: its actual cost
        replaces the hold. ``flow`` and ``tags`` default to the reservation's (another flow is a
        ``ValueError``: it would not settle the hold). Returns the
        daemon's batch answer; a rejected record raises and leaves the hold open."""
        if self.state != "open":
            raise FinopsClientError(f"reservation {self.reservation_id} is already {self.state}")
        record = dict(usage)
        if record.get("reservation_id", self.reservation_id) != self.reservation_id:
            raise ValueError("the usage record names another reservation_id than this hold's")
        record["reservation_id"] = self.reservation_id
        if record.setdefault("flow", self.flow) != self.flow:
            raise ValueError(
                f"the usage record's flow {record['flow']!r} is not this hold's ({self.flow!r}): "
                "a hold is settled by usage of its own flow"
            )
        if self.tags:
            record.setdefault("tags", dict(self.tags))
        answer = self.client.record_usage([record])
        if answer.get("stored", 0) + answer.get("duplicates", 0) != 1:
            raise FinopsClientError(
                f"the usage record was not stored: {_first_reason(answer)}", status=200, answer=answer
            )
        self.state = "settled"
        return answer

    def release(self) -> str:
        """Give the money back now (the call failed or was not made); returns what the daemon
        did: ``released``, or the state the hold already had (``settled``, ``lapsed``)."""
        status = self.client.release(self.reservation_id)
        if self.state == "open":
            self.state = "released"
        return status

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.state != "open":
            return
        try:
            self.release()
        except FinopsClientError as problem:  # the hold lapses at expires_at: money stays held till then
            log.warning(
                "finops: could not release reservation %s (%s); it lapses at %s",
                self.reservation_id,
                problem,
                self.expires_at.isoformat(),
            )


def _first_reason(answer: Mapping[str, Any]) -> str:
    rejections = answer.get("rejections") or []
    if rejections and isinstance(rejections[0], dict):
        return str(rejections[0].get("reason", "rejected"))
    return str(answer.get("error", "rejected"))


class FinopsClient:
    """The finops daemon over HTTP (``finops run``). Thread-safe; close it, or use ``with``.

    ``retries`` and ``retry_wait_s`` (doubled each time) apply to network errors, timeouts, 429
    and 502/503/504: every request the client sends is safe to send again (reserve by its
    ``request_id``, usage by its record ``id``, release by design). A 429 or 503 with
    ``Retry-After`` waits what the server asks instead, up to ``max_retry_after_s``; asked for
    longer, the client gives up at once with :class:`FinopsUnavailable` (0: never wait on it).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        retry_wait_s: float = 0.2,
        max_retry_after_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not max_retry_after_s >= 0:  # NaN too
            raise ValueError(f"max_retry_after_s takes a number of seconds >= 0, got {max_retry_after_s!r}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.max_retry_after_s = max_retry_after_s

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FinopsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ admission control
    def reserve(
        self,
        flow: str,
        *,
        estimate_usd: Money | None = None,
        model: str | None = None,
        provider: str | None = None,
        input_tokens: int | None = None,
        prompt: str | None = None,
        max_output_tokens: int | None = None,
        tags: Mapping[str, str] | None = None,
        ttl_s: int = 120,
        request_id: str | None = None,
    ) -> Hold:
        """Hold money for one call on ``flow``, or raise :class:`BudgetExceeded`.

        Say what to hold: ``estimate_usd``, or ``model`` with ``input_tokens`` (or the
        ``prompt`` text, counted by the daemon and never stored) and ``max_output_tokens``, and
        finops holds the call's worst case at the price in force::

            with client.reserve("support-gpt-en", estimate_usd="0.012") as hold:
                ...
                hold.settle(usage_record)
        """
        body: dict[str, Any] = {"ttl_s": ttl_s, "request_id": request_id or f"req_{uuid.uuid4().hex}"}
        if estimate_usd is not None:
            body["estimate_usd"] = _usd(estimate_usd, "estimate_usd")
        optional = {
            "model": model,
            "provider": provider,
            "input_tokens": input_tokens,
            "prompt": prompt,
            "max_output_tokens": max_output_tokens,
            "tags": dict(tags) if tags else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        doc = self._send("POST", f"/v1/budgets/{quote(flow, safe='')}/reserve", json=body)
        if doc.get("allow") is not True:
            if doc.get("allow") is False and doc.get("decision") == "deny":
                raise BudgetExceeded(str(doc.get("reason", "denied")), doc)
            raise FinopsClientError("finops answered a reserve without a decision", status=200, answer=doc)
        try:
            expires = datetime.fromisoformat(str(doc["expires_at"]))
            reservation_id = str(doc["reservation_id"])
        except (KeyError, ValueError):
            raise FinopsClientError(
                "finops allowed a reserve without a reservation_id and expires_at", status=200, answer=doc
            ) from None
        return Hold(
            client=self,
            flow=flow,
            tags=dict(tags or {}),
            reservation_id=reservation_id,
            request_id=body["request_id"],
            expires_at=expires,
            estimate_usd=_money(doc.get("estimate_usd")),
            remaining_usd=_money(doc.get("remaining_usd")),
            answer=doc,
        )

    def release(self, reservation_id: str) -> str:
        """Release a hold by id; releasing twice is harmless. Returns ``released``, or the state
        the reservation already had (``settled``, ``lapsed``)."""
        doc = self._send("DELETE", f"/v1/reservations/{quote(reservation_id, safe='')}")
        return str(doc.get("status"))

    def check(
        self, flow: str, *, tags: Mapping[str, str] | None = None, estimate_usd: Money | None = None
    ) -> CheckAnswer:
        """Ask whether ``flow`` may spend now (holds nothing: use :meth:`reserve` to enforce a cap
        under concurrency). A deny is an answer, not an exception."""
        params: list[tuple[str, str]] = [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
        if estimate_usd is not None:
            params.append(("estimate_usd", _usd(estimate_usd, "estimate_usd")))
        doc = self._send("GET", f"/v1/budgets/{quote(flow, safe='')}/check", params=params)
        if not isinstance(doc.get("allow"), bool):
            raise FinopsClientError("finops answered a check without a decision", status=200, answer=doc)
        return CheckAnswer(
            allow=doc["allow"],
            reason=str(doc.get("reason", "")),
            remaining_usd=_money(doc.get("remaining_usd")),
            held_usd=_money(doc.get("held_usd")),
            answer=doc,
        )

    # ------------------------------------------------------------------ the ledger
    def record_usage(self, records: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Store usage records (docs/design.md §2); a record with ``reservation_id`` settles that
        hold. Returns the batch answer (``stored``, ``duplicates``, ``rejected``, ``rejections``);
        raises when every record was rejected (422)."""
        batch = [dict(records)] if isinstance(records, Mapping) else [dict(r) for r in records]
        return self._send("POST", "/v1/usage", json=batch)

    # ------------------------------------------------------------------ transport
    def _send(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One request, sent again on network errors, timeouts, 429 and 502/503/504 (after the
        ``Retry-After`` of a 429 or 503, within ``max_retry_after_s``); any other non-2xx raises
        with the daemon's one-line error."""
        return _with_retries(
            lambda: self._http.request(method, path, **kw),
            self.retries,
            self.retry_wait_s,
            self.max_retry_after_s,
        )


def _with_retries(
    send: Callable[[], httpx.Response], retries: int, wait_s: float, max_retry_after_s: float
) -> dict[str, Any]:
    attempt = 0
    while True:
        asked_s: float | None = None  # the server's Retry-After, in seconds from now
        try:
            response = send()
        except httpx.TransportError as exc:
            problem: FinopsClientError = FinopsUnavailable(
                f"finops did not answer ({type(exc).__name__}: {exc}); no decision was made"
            )
        else:
            doc = _document(response)
            if response.is_success:
                return doc
            status = response.status_code
            message = str(
                doc.get("error") or (doc.get("rejections") and _first_reason(doc)) or response.reason_phrase
            )
            if status < 500 and status not in _RETRY_STATUSES:
                raise FinopsClientError(
                    f"finops refused the request ({status}): {message}", status=status, answer=doc
                )
            what = "is busy" if status == 429 else "failed"
            problem = FinopsUnavailable(
                f"finops {what} ({status}): {message}; no decision was made", status=status, answer=doc
            )
            if status not in _RETRY_STATUSES:
                raise problem
            header = response.headers.get("retry-after") if status in _RETRY_AFTER_STATUSES else None
            asked_s = _retry_after_s(header)
            if asked_s is not None and asked_s > max_retry_after_s:
                raise FinopsUnavailable(
                    f"finops {what} ({status}): {message}; it asks to be retried after "
                    f"Retry-After: {_shown(header)} ({_seconds(asked_s)} s), longer than this client waits "
                    f"(max_retry_after_s={max_retry_after_s:g}): gave up; no decision was made",
                    status=status,
                    answer=doc,
                )
        if attempt >= retries:
            raise problem
        time.sleep(asked_s if asked_s is not None else wait_s * 2**attempt)
        attempt += 1


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from now that a ``Retry-After`` asks for: delay-seconds (a fraction is accepted), or
    an HTTP date (one in the past is 0). ``None`` when absent or unreadable: the usual waits apply."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # RFC 9110's IMF-fixdate is GMT
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _shown(header: str | None) -> str:
    text = " ".join(str(header).split())
    return text if len(text) <= 64 else text[:61] + "..."


def _document(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    if response.is_success:
        raise FinopsClientError(
            f"finops answered {response.status_code} with something other than a JSON object",
            status=response.status_code,
        )
    return {}
