"""Routes of the daemon's HTTP API. Each handler: authenticate, read the body within the limit,
decode, hand the work to :class:`IngestService` in a worker thread, answer JSON.

A 2xx means every record in the body was stored, recognised as a duplicate (a duplicate is a
success: a retried batch is safe), or rejected with its reason and kept as a dead letter.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finops import __version__
from finops.daemon.database_outage import RETRY_AFTER_S, DatabaseOutage, DatabaseUnavailable, unavailable
from finops.daemon.http.auth import TokenTable
from finops.daemon.http.body import BodyError, read_body
from finops.daemon.http.dashboard import ViewerAccess, dashboard_routes, no_route
from finops.daemon.http.metrics import Metrics
from finops.daemon.parse_pool import BodyProblem
from finops.daemon.service import BatchResult, IngestService
from finops.errors import UsageError
from finops.render.budget_docs import check_document, reserve_document
from finops.render.spend import spend_document
from finops.sources.jsonl import ndjson_lines
from finops.storage.ledger import Rejection
from finops.usecases.admission import DEFAULT_TTL_S, ReserveRequest
from finops.usecases.ingest import line_digest
from finops.usecases.spend_request import resolve_period, resolve_zone, spend_query

__all__ = ["ApiState", "create_app", "parameters_problem", "repeated"]

log = logging.getLogger("finops.api")

Handler = Callable[[Request], Awaitable[Response]]
_NDJSON = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
#: Longer than any name finops stores (the longest column is 1,024), and a URL can hold several.
_MAX_PARAM_CHARS = 1024
#: Unicode's control characters (category Cc: C0, DEL and C1), found by one regex search.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: Values of one repeated parameter (``flow=a&flow=b...``): each is a bound SQL parameter.
_MAX_PARAM_VALUES = 1000


class ApiState:
    """What the routes share with the daemon: the service, tokens, metrics, and whether it is stopping."""

    def __init__(
        self,
        service: IngestService,
        tokens: TokenTable,
        metrics: Metrics,
        *,
        last_cycle: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.service = service
        self.tokens = tokens
        self.metrics = metrics
        self.stopping = False
        self.last_cycle = last_cycle  # µs of the daemon's last cycle, for /healthz


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


def _error(status: int, message: str, **more: Any) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="finops"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return _json({"error": message, **more}, status, headers)


def _unavailable() -> Response:
    """The answer while the database cannot serve: the client backs off and sends again."""
    return _error(503, "database unavailable: retry later", retry_after_s=RETRY_AFTER_S)


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _printable(name: str, value: str) -> None:
    if len(value) > _MAX_PARAM_CHARS:
        raise _Refused(_error(400, f"{name} is longer than {_MAX_PARAM_CHARS:,} characters"))
    found = _CONTROL.search(value)
    if found is not None:
        bad = found.group()
        raise _Refused(
            _error(400, f"{name} contains the control character U+{ord(bad):04X}: send printable text")
        )


def _check_parameters(request: Request) -> None:
    """Query and path parameters are printable and bounded before anything reads them: a NUL
    reaching PostgreSQL, or a 100,000-character flow, is the sender's mistake (400), not a 500."""
    for name, value in request.path_params.items():
        _printable(name, value)
    counts = Counter[str]()
    for name, value in request.query_params.multi_items():
        _printable("a query parameter name", name)
        _printable(name, value)
        counts[name] += 1
    for name, count in counts.items():
        if count > _MAX_PARAM_VALUES:
            raise _Refused(_error(400, f"{name} is given {count:,} times; at most {_MAX_PARAM_VALUES:,}"))


def parameters_problem(request: Request) -> str | None:
    """What is wrong with a request's parameters in one line (the dashboard's pages show it), or None."""
    try:
        _check_parameters(request)
    except _Refused as refused:
        return str(orjson.loads(bytes(refused.response.body))["error"])
    return None


def repeated(request: Request, names: tuple[str, ...]) -> str | None:
    """The one-line problem when a single-valued parameter is given more than once (which would the
    sender have meant? the last silently winning could answer October for November), else None."""
    q = request.query_params
    for name in names:
        count = len(q.getlist(name))
        if count > 1:
            return f"{name} is given {count} times: give it once"
    return None


def _source(state: ApiState, request: Request) -> str:
    source = state.tokens.source(request.headers.get("authorization"))
    if source is None:
        raise _Refused(
            _error(
                401,
                "missing or unknown bearer token: send `Authorization: Bearer <token>` with a token "
                "from FINOPS_INGEST_TOKENS",
            )
        )
    return source


async def _body(state: ApiState, request: Request) -> bytes:
    try:
        return await read_body(request, state.service.ledger.settings.max_body_bytes)
    except BodyError as exc:
        raise _Refused(_error(exc.status, str(exc))) from None


def _decode(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Refused(_error(400, f"the body is not JSON ({exc}): send {what}")) from None


def _batch_answer(state: ApiState, kind: str, result: BatchResult) -> Response:
    m = state.metrics
    m.records.labels(kind, "stored").inc(result.stored)
    m.records.labels(kind, "duplicate").inc(result.duplicates)
    m.records.labels(kind, "rejected").inc(result.rejected)
    m.unpriced.inc(result.unpriced)
    everything_rejected = result.received > 0 and result.rejected == result.received
    return _json(result.document(), 422 if everything_rejected else 200)


def _records(payload: Any, limit: int, what: str) -> list[Any]:
    """One object or a JSON array of them."""
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > limit:
        raise _Refused(
            _error(413, f"{len(items):,} {what} in one request; at most {limit:,} (FINOPS_MAX_BATCH_RECORDS)")
        )
    return items


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


# --------------------------------------------------------------------------- routes
# Decoding and mapping run in the thread pool with the database work: a large body never
# stalls the event loop (and with it /healthz and every other request).


async def post_usage(request: Request) -> Response:
    state: ApiState = request.app.state.api
    source = _source(state, request)
    body = await _body(state, request)
    ndjson = _media(request) in _NDJSON
    result = await state.service.usage_body_async(body, ndjson=ndjson, source=source)
    if isinstance(result, BodyProblem):
        return _error(result.status, result.message)
    return _batch_answer(state, "usage", result)


async def post_outcomes(request: Request) -> Response:
    state: ApiState = request.app.state.api
    source = _source(state, request)
    body = await _body(state, request)
    limit = state.service.ledger.settings.max_batch_records
    service = state.service

    def work() -> BatchResult:
        items = _records(_decode(body, "an outcome or a JSON array of them"), limit, "outcomes")
        return service.outcomes(items, source=source)

    return _batch_answer(state, "outcome", await run_in_threadpool(work))


async def post_annotations(request: Request) -> Response:
    """Chart annotations (deploys, notes) from CI: one object or an array; a retried post counts once."""
    from finops.usecases.annotations import AnnotationConflict, AnnotationError, post_annotations

    state: ApiState = request.app.state.api
    source = _source(state, request)
    body = await _body(state, request)
    limit = state.service.ledger.settings.max_batch_records
    ledger = state.service.ledger

    def work() -> Response:
        items = _records(_decode(body, "an annotation or a JSON array of them"), limit, "annotations")
        try:
            saved = post_annotations(ledger, items, source=source, now=datetime.now(UTC))
        except AnnotationError as exc:
            return _error(400, str(exc))
        except AnnotationConflict as exc:
            return _error(409, str(exc))
        return _json({"received": len(items), "stored": saved.stored, "duplicates": saved.duplicates})

    return await run_in_threadpool(work)


def _span_items(body: bytes, protobuf: bool, limit: int) -> list[tuple[str, Any]]:
    from finops.sources.otlp import span_records

    if protobuf:
        from finops.sources.otlp_proto import count_spans, decode_export_request

        try:
            spans = count_spans(body)
            if spans > limit:
                raise _Refused(_error(413, f"{spans:,} spans in one request; at most {limit:,}"))
            payload: Any = decode_export_request(body)
        except ValueError as exc:
            raise _Refused(_error(400, str(exc))) from None
    else:
        payload = _decode(body, "an OTLP/JSON ExportTraceServiceRequest")
    if not isinstance(payload, dict):
        raise _Refused(_error(400, "the body is not an OTLP ExportTraceServiceRequest (a JSON object)"))
    try:
        items = list(span_records(payload))
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise _Refused(
            _error(400, f"the body is not an OTLP ExportTraceServiceRequest: resourceSpans[...] {exc}")
        ) from None
    if len(items) > limit:
        raise _Refused(_error(413, f"{len(items):,} spans in one request; at most {limit:,}"))
    return items


async def post_traces(request: Request) -> Response:
    """OTLP/HTTP, JSON or protobuf; the answer is an ``ExportTraceServiceResponse`` in the same encoding."""
    state: ApiState = request.app.state.api
    source = _source(state, request)
    protobuf = _media(request) == "application/x-protobuf"
    body = await _body(state, request)
    limit = state.service.ledger.settings.max_batch_records
    service = state.service

    def work() -> BatchResult:
        return service.mapped(_span_items(body, protobuf, limit), source=source)

    result = await run_in_threadpool(work)
    _batch_answer(state, "usage", result)  # metrics
    reasons = "; ".join(f"{r['id'] or r['index']}: {r['reason']}" for r in result.rejections[:20])
    if protobuf:
        from finops.sources.otlp_proto import encode_export_response

        answer = encode_export_response(result.rejected, reasons)
        return Response(answer, 200, media_type="application/x-protobuf")
    doc: dict[str, Any] = {}
    if result.rejected:
        doc["partialSuccess"] = {"rejectedSpans": result.rejected, "errorMessage": reasons}
    return _json(doc)


_ENTRY = {"standard": "StandardLoggingPayload", "spendlogs": "LiteLLM_SpendLogs row"}


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "true/false", int: "a number", float: "a number", str: "a string"}
    return names.get(type(value), "an array")


async def post_litellm(request: Request) -> Response:
    """LiteLLM's generic logging callback (``StandardLoggingPayload``: one, an array, or NDJSON), or
    ``?kind=spendlogs`` for rows of its ``LiteLLM_SpendLogs`` table."""
    from finops.sources.litellm_logs import KINDS, litellm_objects

    state: ApiState = request.app.state.api
    source = _source(state, request)
    kind = request.query_params.get("kind", "standard")
    if kind not in KINDS:
        return _error(400, f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    body = await _body(state, request)
    limit = state.service.ledger.settings.max_batch_records
    service = state.service
    ndjson = _media(request) in _NDJSON

    def work() -> BatchResult:
        bad: list[Rejection] = []
        entries: list[tuple[int, Any]] = []  # (index: array position or NDJSON line number, entry)
        if ndjson:  # a line that is not JSON is rejected alone, as on /v1/usage
            for number, line in enumerate(ndjson_lines(body), 1):
                if not line.strip():
                    continue
                try:
                    entries.append((number, orjson.loads(line)))
                except orjson.JSONDecodeError as exc:
                    digest = line_digest(line, service.ledger.user_key)
                    bad.append(Rejection("http", number, f"invalid JSON: {exc}", digest))
        else:
            payload = _decode(body, "a LiteLLM StandardLoggingPayload or a JSON array of them")
            entries = list(enumerate(payload if isinstance(payload, list) else [payload]))
        objects = []
        for index, entry in entries:  # `null` would read as "not a billed call" and vanish: refuse it
            if isinstance(entry, dict):
                objects.append(entry)
            else:
                reason = f"a LiteLLM {_ENTRY[kind]} must be a JSON object, got {_json_type(entry)}"
                bad.append(Rejection("http", index, reason, ""))
        items = list(litellm_objects(objects, kind))
        if len(items) > limit:
            raise _Refused(_error(413, f"{len(items):,} payloads in one request; at most {limit:,}"))
        return service.mapped(items, source=source, rejections=bad)

    return _batch_answer(state, "usage", await run_in_threadpool(work))


def _estimate(text_value: str | None) -> Decimal:
    if text_value is None:
        return Decimal(0)
    try:
        value = Decimal(text_value)
    except InvalidOperation:
        raise _Refused(_error(400, f"estimate_usd takes a number of dollars, got {text_value!r}")) from None
    if not value.is_finite() or value < 0 or value > 1_000_000:
        raise _Refused(
            _error(400, f"estimate_usd takes a number of dollars from 0 to 1000000, got {text_value!r}")
        )
    return value


def _tags(values: list[str], name: str = "tag") -> dict[str, str]:
    tags = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _Refused(_error(400, f"{name} takes KEY=VALUE, got {item!r}"))
        tags[key] = value
    return tags


async def get_check(request: Request) -> Response:
    """Allow or deny spending on a flow now (HTTP 200 either way; read ``allow``)."""
    state: ApiState = request.app.state.api
    _source(state, request)
    flow = request.path_params["flow"]
    estimate = _estimate(request.query_params.get("estimate_usd"))
    tags = _tags(request.query_params.getlist("tag"))
    result = await run_in_threadpool(
        state.service.check, flow, tags=tags, estimate_usd=estimate, now=datetime.now(UTC)
    )
    return _json(check_document(result))


_RESERVE_FIELDS = {
    "estimate_usd", "ttl_s", "tags", "request_id", "model", "provider", "input_tokens", "prompt",
    "max_output_tokens", "service_tier",
}  # fmt: skip


def _reserve_request(flow: str, doc: Any) -> ReserveRequest:
    """The reserve body, checked field by field: a wrong one is a 400 that names it."""
    if not isinstance(doc, dict):
        raise _Refused(_error(400, "the body must be a JSON object (estimate_usd, ttl_s, tags, ...)"))
    unknown = sorted(set(doc) - _RESERVE_FIELDS)
    if unknown:
        raise _Refused(
            _error(400, f"unknown field {unknown[0]!r}; known: {', '.join(sorted(_RESERVE_FIELDS))}")
        )
    estimate = doc.get("estimate_usd")
    if estimate is not None and (isinstance(estimate, bool) or not isinstance(estimate, str | int | float)):
        raise _Refused(_error(400, 'estimate_usd takes a number of dollars, as a string: "0.012"'))
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise _Refused(_error(400, "tags takes an object of strings"))
    for key, value in tags.items():
        _printable("a tag", key + value)
    texts = {}
    for name in ("request_id", "model", "provider", "prompt", "service_tier"):
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            raise _Refused(_error(400, f"{name} takes a string"))
        if value is not None and name != "prompt":
            _printable(name, value)
        texts[name] = value
    counts = {}
    for name in ("ttl_s", "input_tokens", "max_output_tokens"):
        value = doc.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9
        ):
            raise _Refused(_error(400, f"{name} takes a whole number from 0 to 999,999,999"))
        counts[name] = value
    try:
        amount = None if estimate is None else Decimal(str(estimate))
    except InvalidOperation:
        raise _Refused(_error(400, 'estimate_usd takes a number of dollars, as a string: "0.012"')) from None
    return ReserveRequest(
        flow=flow,
        tags=tags,
        estimate_usd=amount,
        model=texts["model"],
        provider=texts["provider"],
        input_tokens=counts["input_tokens"],
        prompt=texts["prompt"],
        max_output_tokens=counts["max_output_tokens"],
        service_tier=texts["service_tier"] or "standard",
        ttl_s=counts["ttl_s"] if counts["ttl_s"] is not None else DEFAULT_TTL_S,
        request_id=texts["request_id"],
    )


async def post_reserve(request: Request) -> Response:
    """Hold money for one call before it is made (HTTP 200 either way; read ``allow``)."""
    state: ApiState = request.app.state.api
    source = _source(state, request)
    req = _reserve_request(
        request.path_params["flow"], _decode(await _body(state, request), "a reserve request")
    )
    try:
        result = await state.service.reserve_async(req, source=source)
    except UsageError as exc:
        return _error(400, str(exc))
    state.metrics.reservations.labels(result.decision).inc()
    return _json(reserve_document(result))


async def delete_reservation(request: Request) -> Response:
    """Release a hold: the call failed or was not made. Releasing twice is harmless."""
    state: ApiState = request.app.state.api
    _source(state, request)
    try:
        what = await run_in_threadpool(state.service.release, request.path_params["reservation_id"])
    except UsageError as exc:
        return _error(404, str(exc))
    return _json({"reservation_id": request.path_params["reservation_id"], "status": what})


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _Refused(_error(400, f"{name} takes a whole number, got {value!r}")) from None
    if number < 1:
        raise _Refused(_error(400, f"{name} must be at least 1"))
    return number


#: /v1/spend's parameters that take one value (flow, model, provider and tag repeat).
_SPEND_SINGLE = ("by", "since", "until", "month", "today", "tz", "top")


async def get_spend(request: Request) -> Response:
    """``finops spend`` as JSON: the same options as query parameters (repeat flow/model/provider/tag)."""
    state: ApiState = request.app.state.api
    _source(state, request)
    q = request.query_params
    problem = repeated(request, _SPEND_SINGLE)
    if problem:
        return _error(400, problem)
    try:
        tz = resolve_zone(q.get("tz", "UTC"))
        start, end = resolve_period(
            since=q.get("since"),
            until=q.get("until"),
            month=q.get("month"),
            today=q.get("today", "").lower() in ("1", "true", "yes"),
            tz=tz,
            now=datetime.now(UTC),
            dash="",
        )
        query = spend_query(
            by=q.get("by", "flow"),
            start=start,
            end=end,
            tz=tz,
            flows=q.getlist("flow"),
            models=q.getlist("model"),
            providers=q.getlist("provider"),
            tags=q.getlist("tag"),
            top=_int(q.get("top"), "top"),
            dash="",
        )
    except ValueError as exc:
        return _error(400, str(exc))
    result = await run_in_threadpool(state.service.spend, query)
    return _json(spend_document(result))


async def get_focus_export(request: Request) -> Response:
    """``finops export focus`` as CSV, streamed (docs/focus.md): ``?month=2026-11&tz=UTC&grain=day``.

    The totals are in the headers (``X-Finops-Billed-Usd``, ``X-Finops-Unpriced-Records``): the rows
    are built before the first byte is sent, so an error is a 400, never half a file."""
    from starlette.responses import StreamingResponse

    from finops.domain.money import format_usd
    from finops.render.focus import csv_chunks
    from finops.usecases.export_focus import focus_export

    state: ApiState = request.app.state.api
    _source(state, request)
    q = request.query_params
    problem = repeated(request, ("month", "tz", "grain"))
    if problem:
        return _error(400, problem)
    month = q.get("month")
    if not month:
        return _error(400, "month is required: ?month=2026-11 (with tz= and grain=day|hour if wanted)")
    grain = q.get("grain", "day")
    if grain not in ("day", "hour"):
        return _error(400, f"grain takes day or hour, got {grain!r}")
    try:
        tz = resolve_zone(q.get("tz", "UTC"))
    except ValueError as exc:
        return _error(400, str(exc))

    def read() -> Any:
        with state.service.reading():  # the read database's outage, not the primary's
            return focus_export(
                state.service.ledger, month, tz=tz, grain="hour" if grain == "hour" else "day"
            )

    try:
        export = await run_in_threadpool(read)
    except UsageError as exc:
        return _error(400, str(exc))
    headers = {
        "Content-Disposition": f'attachment; filename="finops-focus-{export.month}.csv"',
        "X-Finops-Billed-Usd": format_usd(export.billed_nanos),
        "X-Finops-Rows": str(len(export.rows)),
        "X-Finops-Unpriced-Records": str(export.unpriced_records),
        "Cache-Control": "no-store",
    }
    return StreamingResponse(csv_chunks(export.rows), headers=headers, media_type="text/csv; charset=utf-8")


async def get_health(request: Request) -> Response:
    """200 when the database answers and the daemon is not stopping; 503 otherwise (and while
    writes are failing, e.g. a full disk, even though reads answer).

    A read database (FINOPS_READ_DATABASE_URL) is probed too and reported as ``read_database``,
    but does not make this a 503: ingest, checks and reservations need only the primary, and a
    load balancer that took the daemon out for a replica's outage would stop them too."""
    state: ApiState = request.app.state.api
    service = state.service

    def probe(engine: Engine, outage: DatabaseOutage) -> str | None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # reported, not raised: health says what is wrong (the log, why)
            if not unavailable(exc):
                log.exception("health probe failed")
                return f"error ({type(exc).__name__})"
            outage.failed(exc, writing=False)
            return "unavailable"
        outage.succeeded(writing=False)
        return "writes failing" if outage.writes_failing() else None

    def replay_age() -> float | None:
        try:
            return service.ledger.read_replay_age_s()
        except Exception as exc:  # the probe above says whether it answers; this is extra
            if not unavailable(exc):
                log.warning("read database replay age not read", extra={"cause": type(exc).__name__})
            return None

    problem = await run_in_threadpool(probe, service.ledger.engine, service.outage)
    age: float | None = None
    if service.ledger.split:
        read_problem = await run_in_threadpool(probe, service.ledger.read_engine, service.read_outage)
        read_state = read_problem or "ok"
        age = None if read_problem else await run_in_threadpool(replay_age)
        state.metrics.read_replay_age.set(age if age is not None else float("nan"))
    else:
        read_state = "primary"  # no read database: reads go to the primary
    found = state.service.budgets.current
    doc = {
        "status": "stopping" if state.stopping else ("ok" if problem is None else "degraded"),
        "version": __version__,
        "database": problem or "ok",
        "read_database": read_state,
        "read_database_replay_age_s": None if age is None else round(age, 3),
        "budgets": len(found.budgets),
        "broken_budget_files": sorted(found.errors_by_file),
        "last_cycle": datetime.fromtimestamp(last / 1e6, UTC).isoformat()
        if (last := state.last_cycle())
        else None,
    }
    headers = {"Retry-After": str(RETRY_AFTER_S)} if problem else None
    return _json(doc, 200 if problem is None and not state.stopping else 503, headers)


def _iso(us: int | None) -> str | None:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat() if us else None


async def get_metrics(request: Request) -> Response:
    state: ApiState = request.app.state.api
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _instrumented(name: str, handler: Handler) -> Handler:
    async def route(request: Request) -> Response:
        state: ApiState = request.app.state.api
        started = time.perf_counter()
        try:
            _check_parameters(request)
            response = await handler(request)
        except _Refused as refused:
            response = refused.response
        except DatabaseUnavailable:  # told once to the log by the service, not per request
            response = _unavailable()
        except Exception as exc:
            if unavailable(exc):  # outside the service's guard: the same answer
                state.service.outage.failed(exc, writing=request.method == "POST")
                response = _unavailable()
            else:  # a bug: JSON like every other answer, counted, and in the log
                log.exception("request failed", extra={"route": name})
                response = _error(
                    500, f"internal error ({type(exc).__name__}); the daemon's log has the details"
                )
        state.metrics.requests.labels(name, str(response.status_code)).inc()
        state.metrics.latency.labels(name).observe(time.perf_counter() - started)
        return response

    return route


def create_app(
    state: ApiState, *, dashboard: ViewerAccess | None = None, extra_routes: list[Route] | None = None
) -> Starlette:
    """The API and, on the same port, the dashboard (``dashboard``: who may read it; default:
    loopback only)."""
    routes = [
        Route("/v1/usage", _instrumented("usage", post_usage), methods=["POST"]),
        Route("/v1/outcomes", _instrumented("outcomes", post_outcomes), methods=["POST"]),
        Route("/v1/traces", _instrumented("traces", post_traces), methods=["POST"]),
        Route("/v1/annotations", _instrumented("annotations", post_annotations), methods=["POST"]),
        Route("/v1/litellm", _instrumented("litellm", post_litellm), methods=["POST"]),
        Route("/v1/budgets/{flow:path}/check", _instrumented("check", get_check), methods=["GET"]),
        Route("/v1/budgets/{flow:path}/reserve", _instrumented("reserve", post_reserve), methods=["POST"]),
        Route(
            "/v1/reservations/{reservation_id}",
            _instrumented("release", delete_reservation),
            methods=["DELETE"],
        ),
        Route("/v1/spend", _instrumented("spend", get_spend), methods=["GET"]),
        Route("/v1/export/focus", _instrumented("export_focus", get_focus_export), methods=["GET"]),
        Route("/healthz", _instrumented("healthz", get_health), methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
        *dashboard_routes(),
        *(extra_routes or []),
    ]
    app = Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})
    # `/spend/` is a 404 with the policy, not a bare 307 to `/spend` without the security headers
    app.router.redirect_slashes = False
    app.state.api = state
    app.state.dashboard = dashboard if dashboard is not None else ViewerAccess({})
    return app
