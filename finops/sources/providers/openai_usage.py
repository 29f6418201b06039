"""OpenAI's organization usage and costs APIs: request parameters and page parsers. Pure: no I/O.

Sources (read 2026-11; OpenAI API reference and its OpenAPI document):

- ``GET /v1/organization/usage/completions``
  (https://platform.openai.com/docs/api-reference/usage/completions; the same shape is documented
  for ``/organization/usage/decisions`` in the current reference). Query: ``start_time`` (Unix s,
  inclusive), ``end_time`` (exclusive), ``bucket_width`` ``1m|1h|1d`` (default ``1d``), ``group_by``
  (repeated: ``project_id``, ``user_id``, ``api_key_id``, ``model``, ``batch``, ``service_tier``,
  ``api_source``), ``limit`` (buckets per page; for ``1d`` default 7, max 31), ``page`` (the previous
  ``next_page``). Answer: ``{"object": "page", "data": [{"object": "bucket", "start_time",
  "end_time", "results": [{"object": "organization.usage.completions.result", "input_tokens",
  "output_tokens", "input_cached_tokens", "input_cache_write_tokens",
  "input_cache_write_12h_tokens", "input_audio_tokens", "output_audio_tokens",
  "num_model_requests", "project_id", "user_id", "api_key_id", "model", "batch",
  "service_tier"}]}], "has_more", "next_page"}``. ``input_tokens`` is documented as "including
  cached and cache-write tokens" (and audio and image tokens): inclusive, like docs/design.md §2.
- ``GET /v1/organization/costs`` (https://platform.openai.com/docs/api-reference/usage/costs):
  ``start_time``, ``end_time``, ``bucket_width`` (only ``1d``), ``group_by`` (``project_id``,
  ``line_item``), ``limit`` (1-180, default 7), ``page``. Results: ``{"object":
  "organization.costs.result", "amount": {"value": 0.06, "currency": "usd"}, "line_item",
  "project_id"}``. ``value`` is a JSON number in dollars: it is read as a Decimal, never a float.

Cache writes: ``input_cache_write_tokens`` (the default retention) count as ``cache_write_tokens``,
``input_cache_write_12h_tokens`` (extended retention) as ``cache_write_1h_tokens``, the column of the
longer-lived write.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from finops.domain.money import usd_to_nanos
from finops.errors import IngestError
from finops.sources.providers.common import envelope
from finops.sources.providers.rows import Bucket, CostRow, Page, UsageRow, group_key, merge_rows, need_int

__all__ = [
    "COSTS_PATH",
    "PROVIDER",
    "USAGE_PATH",
    "costs_params",
    "parse_costs",
    "parse_usage",
    "usage_params",
]

PROVIDER = "openai"
USAGE_PATH = "/v1/organization/usage/completions"
COSTS_PATH = "/v1/organization/costs"
#: Days per page: the documented maximum for daily buckets on the usage API (costs allows 180).
PAGE_DAYS = 31
USAGE_GROUP_BY = ("model", "project_id", "batch", "service_tier")
COSTS_GROUP_BY = ("project_id", "line_item")


def _params(start_s: int, end_s: int, page: str | None, group_by: tuple[str, ...]) -> list[tuple[str, str]]:
    params = [("start_time", str(start_s)), ("end_time", str(end_s)), ("bucket_width", "1d")]
    params += [("group_by", g) for g in group_by]
    params.append(("limit", str(PAGE_DAYS)))
    if page:
        params.append(("page", page))
    return params


def usage_params(*, start_s: int, end_s: int, page: str | None = None) -> list[tuple[str, str]]:
    """Query of one usage page: daily buckets in [start_s, end_s), grouped by model, project and tier."""
    return _params(start_s, end_s, page, USAGE_GROUP_BY)


def costs_params(*, start_s: int, end_s: int, page: str | None = None) -> list[tuple[str, str]]:
    """Query of one costs page: daily buckets in [start_s, end_s), by project and line item."""
    return _params(start_s, end_s, page, COSTS_GROUP_BY)


def _bucket(raw: Mapping[str, Any], where: str) -> Bucket:
    start, end = raw.get("start_time"), raw.get("end_time")
    if not isinstance(start, int) or not isinstance(end, int) or end <= start:
        raise IngestError(f"{where}: bucket times {start!r}..{end!r} are not Unix seconds, start before end")
    return Bucket(start * 1_000_000, end * 1_000_000)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_usage(doc: Mapping[str, Any]) -> Page[UsageRow]:
    """One page of ``/v1/organization/usage/completions`` as usage rows (raises IngestError if malformed)."""
    where = f"OpenAI {USAGE_PATH}"
    data, has_more, next_page = envelope(doc, where)
    buckets, rows = [], []
    for raw in data:
        bucket = _bucket(raw, where)
        buckets.append(bucket)
        for result in raw.get("results") or ():
            if not isinstance(result, dict):
                raise IngestError(f"{where}: a result is not an object")
            batch = result.get("batch")
            tier = _text(result.get("service_tier"))
            rows.append(
                UsageRow(
                    provider=PROVIDER,
                    bucket_start_us=bucket.start_us,
                    bucket_end_us=bucket.end_us,
                    group_key=group_key(
                        {k: result.get(k) for k in ("model", "project_id", "batch", "service_tier")}
                    ),
                    model=_text(result.get("model")),
                    project=_text(result.get("project_id")),
                    service_tier="batch" if batch is True else tier,
                    requests=need_int(result, "num_model_requests", where),
                    input_tokens=need_int(result, "input_tokens", where, required=True),
                    cached_input_tokens=need_int(result, "input_cached_tokens", where),
                    cache_write_tokens=need_int(result, "input_cache_write_tokens", where),
                    cache_write_1h_tokens=need_int(result, "input_cache_write_12h_tokens", where),
                    output_tokens=need_int(result, "output_tokens", where, required=True),
                )
            )
    return Page(tuple(buckets), merge_rows(rows), has_more, next_page)


def _amount_nanos(amount: Any, where: str) -> tuple[int, str]:
    if not isinstance(amount, dict):
        raise IngestError(f"{where}: amount is {amount!r}, expected {{value, currency}}")
    value, currency = amount.get("value"), amount.get("currency") or "usd"
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise IngestError(f"{where}: amount.value is {value!r}, expected a number")
    try:
        exact = Decimal(value)
    except ArithmeticError:
        raise IngestError(f"{where}: amount.value {value!r} is not a number") from None
    if not exact.is_finite():
        raise IngestError(f"{where}: amount.value {value!r} is not a finite number")
    return usd_to_nanos(exact), str(currency).upper()


def parse_costs(doc: Mapping[str, Any]) -> Page[CostRow]:
    """One page of ``/v1/organization/costs`` as cost rows, dollars converted exactly to nano-dollars."""
    where = f"OpenAI {COSTS_PATH}"
    data, has_more, next_page = envelope(doc, where)
    buckets, rows = [], []
    for raw in data:
        bucket = _bucket(raw, where)
        buckets.append(bucket)
        for result in raw.get("results") or ():
            if not isinstance(result, dict):
                raise IngestError(f"{where}: a result is not an object")
            if result.get("amount") is None:
                continue  # documented as optional: nothing billed
            nanos, currency = _amount_nanos(result["amount"], where)
            line_item = _text(result.get("line_item"))
            rows.append(
                CostRow(
                    provider=PROVIDER,
                    bucket_start_us=bucket.start_us,
                    bucket_end_us=bucket.end_us,
                    group_key=group_key(
                        {"project_id": result.get("project_id"), "line_item": line_item, "currency": currency}
                    ),
                    line_item=line_item,
                    model=None,
                    project=_text(result.get("project_id")),
                    amount_nanos=nanos,
                    currency=currency,
                )
            )
    return Page(tuple(buckets), merge_rows(rows), has_more, next_page)
