"""Anthropic's Admin API usage and cost reports: request parameters and page parsers. Pure: no I/O.

Sources (read 2026-11; Claude platform API reference):

- ``GET /v1/organizations/usage_report/messages``
  (https://platform.claude.com/docs/en/api/admin/usage_report/retrieve_messages). Headers:
  ``x-api-key: <admin key sk-ant-admin...>``, ``anthropic-version: 2023-06-01``. Query:
  ``starting_at`` (RFC 3339; buckets starting at or after it), ``ending_at`` (buckets ending before
  it), ``bucket_width`` ``1d|1h|1m`` (default ``1d``), ``group_by[]`` (``api_key_id``,
  ``workspace_id``, ``model``, ``service_tier``, ``context_window``, ``inference_geo``, ...),
  ``limit`` (buckets; for ``1d`` default 7, max 31), ``page`` (the previous ``next_page``).
  Answer: ``{"data": [{"starting_at", "ending_at", "results": [{"uncached_input_tokens",
  "cache_read_input_tokens", "cache_creation": {"ephemeral_5m_input_tokens",
  "ephemeral_1h_input_tokens"}, "output_tokens", "server_tool_use": {"web_search_requests"},
  "model", "service_tier", "workspace_id", "api_key_id", "context_window"}]}], "has_more",
  "next_page"}``. There is no request count (``requests`` is stored as 0) and no total:
  Anthropic's ``uncached_input_tokens`` EXCLUDES cache reads and writes, so finops's inclusive
  ``input_tokens`` = uncached + cache reads + 5-minute writes + 1-hour writes.
- ``GET /v1/organizations/cost_report``
  (https://platform.claude.com/docs/en/api/admin/cost_report/retrieve): ``starting_at``,
  ``ending_at``, ``bucket_width`` (only ``1d``), ``group_by[]`` (``workspace_id``, ``description``),
  ``limit``, ``page``. Results: ``{"amount": "123.78912", "currency": "USD", "description",
  "cost_type", "token_type", "model", "service_tier", "context_window", "workspace_id"}``.
  ``amount`` is "Cost amount in lowest currency units (e.g. cents) as a decimal string. For
  example, "123.45" in "USD" represents $1.23" (sic: $1.2345): finops divides by 100, exactly.
  The usage and cost guide (https://platform.claude.com/docs/en/manage-claude/usage-cost-api)
  says Priority Tier costs are not in the cost report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from finops.domain.money import usd_to_nanos
from finops.errors import IngestError
from finops.sources.providers.common import envelope
from finops.sources.providers.rows import (
    Bucket,
    CostRow,
    Page,
    UsageRow,
    group_key,
    merge_rows,
    need_int,
    rfc3339_us,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "COSTS_PATH",
    "PROVIDER",
    "USAGE_PATH",
    "cents_to_nanos",
    "costs_params",
    "headers",
    "parse_costs",
    "parse_usage",
    "usage_params",
]

PROVIDER = "anthropic"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COSTS_PATH = "/v1/organizations/cost_report"
ANTHROPIC_VERSION = "2023-06-01"
PAGE_DAYS = 31
USAGE_GROUP_BY = ("model", "workspace_id", "service_tier")
COSTS_GROUP_BY = ("workspace_id", "description")
#: Result fields that name a cost line's group (everything but the amount).
_COST_GROUP_FIELDS = (
    "workspace_id",
    "description",
    "cost_type",
    "token_type",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "currency",
)


def headers(admin_key: str) -> dict[str, str]:
    """The documented Admin API headers."""
    return {"x-api-key": admin_key, "anthropic-version": ANTHROPIC_VERSION}


def _rfc3339(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _params(start_s: int, end_s: int, page: str | None, group_by: tuple[str, ...]) -> list[tuple[str, str]]:
    params = [("starting_at", _rfc3339(start_s)), ("ending_at", _rfc3339(end_s)), ("bucket_width", "1d")]
    params += [("group_by[]", g) for g in group_by]
    params.append(("limit", str(PAGE_DAYS)))
    if page:
        params.append(("page", page))
    return params


def usage_params(*, start_s: int, end_s: int, page: str | None = None) -> list[tuple[str, str]]:
    """Query of one usage page: daily buckets in [start_s, end_s), by model, workspace and tier."""
    return _params(start_s, end_s, page, USAGE_GROUP_BY)


def costs_params(*, start_s: int, end_s: int, page: str | None = None) -> list[tuple[str, str]]:
    """Query of one cost page: daily buckets in [start_s, end_s), by workspace and line item."""
    return _params(start_s, end_s, page, COSTS_GROUP_BY)


def _bucket(raw: Mapping[str, Any], where: str) -> Bucket:
    start = rfc3339_us(raw.get("starting_at"), where)
    end = rfc3339_us(raw.get("ending_at"), where)
    if end <= start:
        raise IngestError(f"{where}: a bucket ends ({raw.get('ending_at')}) before it starts")
    return Bucket(start, end)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_usage(doc: Mapping[str, Any]) -> Page[UsageRow]:
    """One page of the messages usage report as usage rows with inclusive input counts."""
    where = f"Anthropic {USAGE_PATH}"
    data, has_more, next_page = envelope(doc, where)
    buckets, rows = [], []
    for raw in data:
        bucket = _bucket(raw, where)
        buckets.append(bucket)
        for result in raw.get("results") or ():
            if not isinstance(result, dict):
                raise IngestError(f"{where}: a result is not an object")
            creation = result.get("cache_creation") or {}
            if not isinstance(creation, dict):
                raise IngestError(f"{where}: cache_creation is {creation!r}, expected an object")
            uncached = need_int(result, "uncached_input_tokens", where, required=True)
            reads = need_int(result, "cache_read_input_tokens", where)
            writes_5m = need_int(creation, "ephemeral_5m_input_tokens", where)
            writes_1h = need_int(creation, "ephemeral_1h_input_tokens", where)
            rows.append(
                UsageRow(
                    provider=PROVIDER,
                    bucket_start_us=bucket.start_us,
                    bucket_end_us=bucket.end_us,
                    group_key=group_key(
                        {
                            k: result.get(k)
                            for k in ("model", "workspace_id", "service_tier", "context_window")
                        }
                    ),
                    model=_text(result.get("model")),
                    project=_text(result.get("workspace_id")),
                    service_tier=_text(result.get("service_tier")),
                    requests=0,
                    input_tokens=uncached + reads + writes_5m + writes_1h,
                    cached_input_tokens=reads,
                    cache_write_tokens=writes_5m,
                    cache_write_1h_tokens=writes_1h,
                    output_tokens=need_int(result, "output_tokens", where, required=True),
                )
            )
    return Page(tuple(buckets), merge_rows(rows), has_more, next_page)


def cents_to_nanos(amount: Any, where: str = "amount") -> int:
    """``"123.45"`` (cents, a decimal string) -> 1_234_500_000 nano-dollars, exactly (half-even past 1e-9)."""
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise IngestError(f"{where}: amount is {amount!r}, expected a decimal string of cents")
    try:
        cents = Decimal(amount)
    except ArithmeticError:
        raise IngestError(f"{where}: amount {amount!r} is not a decimal number") from None
    if not cents.is_finite():
        raise IngestError(f"{where}: amount {amount!r} is not a finite number")
    return usd_to_nanos(cents.scaleb(-2))


def parse_costs(doc: Mapping[str, Any]) -> Page[CostRow]:
    """One page of the cost report as cost rows, cents converted exactly to nano-dollars."""
    where = f"Anthropic {COSTS_PATH}"
    data, has_more, next_page = envelope(doc, where)
    buckets, rows = [], []
    for raw in data:
        bucket = _bucket(raw, where)
        buckets.append(bucket)
        for result in raw.get("results") or ():
            if not isinstance(result, dict):
                raise IngestError(f"{where}: a result is not an object")
            currency = str(result.get("currency") or "USD").upper()
            rows.append(
                CostRow(
                    provider=PROVIDER,
                    bucket_start_us=bucket.start_us,
                    bucket_end_us=bucket.end_us,
                    group_key=group_key(
                        {k: result.get(k) for k in _COST_GROUP_FIELDS} | {"currency": currency}
                    ),
                    line_item=_text(result.get("description")) or _text(result.get("cost_type")),
                    model=_text(result.get("model")),
                    project=_text(result.get("workspace_id")),
                    amount_nanos=cents_to_nanos(result.get("amount"), where),
                    currency=currency,
                )
            )
    return Page(tuple(buckets), merge_rows(rows), has_more, next_page)
