"""Business outcomes (docs/design.md §5): did the work the calls served succeed?

An outcome links to usage by ``request_ids``, else ``trace_id``, else
``session_id``; it may arrive hours after the usage. Cost per successful
outcome is all of a flow's spend in a period (failed and retried calls
included) divided by its successes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from finops.domain.money import usd_to_nanos
from finops.domain.text import TextError, check_name, check_text, shown
from finops.domain.usage import RecordError, parse_timestamp

__all__ = ["OUTCOME_STATUSES", "Outcome", "parse_outcome"]

OUTCOME_STATUSES = ("success", "partial", "failure")
_STATUS = {
    "success": "success",
    "succeeded": "success",
    "ok": "success",
    "resolved": "success",
    "partial": "partial",
    "failure": "failure",
    "failed": "failure",
    "error": "failure",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    id: str
    ts_us: int
    flow: str | None
    status: str
    request_ids: tuple[str, ...]
    trace_id: str | None
    session_id: str | None
    event: str | None
    value_nanos: int | None

    def content(self) -> tuple[object, ...]:
        """What the sender said; the same id with other content is a conflict."""
        return (
            self.ts_us,
            self.flow,
            self.status,
            self.request_ids,
            self.trace_id,
            self.session_id,
            self.event,
            self.value_nanos,
        )


def _text(obj: Mapping[str, object], name: str, limit: int = 512, *, is_name: bool = False) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise RecordError(f"{name} must be a string")
    text = value if isinstance(value, str) else str(value) if abs(value) < 10**64 else "?" * (limit + 1)
    try:
        return (check_name if is_name else check_text)(text, name, limit)
    except TextError as exc:
        raise RecordError(str(exc)) from None


def parse_outcome(obj: object) -> Outcome:
    """Validate one outcome; raises ``RecordError`` with the reason."""
    if not isinstance(obj, Mapping):
        raise RecordError(f"an outcome must be a JSON object, got {type(obj).__name__}")
    oid = _text(obj, "id", 256)
    if oid is None:
        raise RecordError("missing required field id (a stable, sender-chosen string)")
    if "ts" not in obj:
        raise RecordError("missing required field ts (ISO 8601 with offset, or epoch seconds)")
    ts = parse_timestamp(obj["ts"])
    raw_status = obj.get("status")
    status = _STATUS.get(str(raw_status).lower()) if isinstance(raw_status, str) else None
    if status is None:
        raise RecordError(f"status must be one of {', '.join(OUTCOME_STATUSES)}, got {shown(raw_status)}")
    ids = obj.get("request_ids") or ()
    if not isinstance(ids, list | tuple) or not all(isinstance(i, str) and i for i in ids):
        raise RecordError("request_ids must be a list of usage record ids")
    if len(ids) > 10_000:
        raise RecordError("request_ids has more than 10,000 ids")
    try:
        for rid in ids:
            check_text(rid, "a request id", 256)
    except TextError as exc:
        raise RecordError(str(exc)) from None
    trace, session = _text(obj, "trace_id"), _text(obj, "session_id")
    flow = _text(obj, "flow", 128, is_name=True)
    if not ids and trace is None and session is None and flow is None:
        raise RecordError("an outcome needs request_ids, trace_id, session_id or at least flow")
    value = obj.get("value_usd")
    value_nanos = None
    if value is not None:
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int | float)
            or (isinstance(value, int) and value.bit_length() > 64)
            or (isinstance(value, str) and len(value) > 40)
        ):
            raise RecordError(f"value_usd must be a number of dollars, got {shown(value)}")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise RecordError(f"value_usd must be a number of dollars, got {shown(value)}") from None
        if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 12:
            raise RecordError(f"value_usd must be a non-negative amount, got {shown(value)}")
        value_nanos = usd_to_nanos(amount)
    ts_us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return Outcome(
        oid,
        ts_us,
        flow,
        status,
        tuple(dict.fromkeys(ids)),
        trace,
        session,
        _text(obj, "event", 128),
        value_nanos,
    )
