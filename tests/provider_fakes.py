"""Fake OpenAI and Anthropic admin APIs over real HTTP, answering in the providers' documented formats.

Each fake serves daily buckets from data a test puts in (``add_usage``, ``add_cost``),
paginates them ``page_size`` buckets at a time with opaque ``next_page`` tokens,
checks the admin key the way the provider does, and records every request. It can
be scripted, one answer per request, and broken after a number of good answers::

    fake.script(ratelimit(retry_after=1), server_error(500))   # the next two requests
    fake.break_after(2)                                         # then 500 forever
    fake.heal()

Formats: OpenAI ``/v1/organization/usage/completions`` and ``/v1/organization/costs``
(``start_time``/``end_time`` Unix seconds, ``amount.value`` a JSON number of dollars);
Anthropic ``/v1/organizations/usage_report/messages`` and ``/v1/organizations/cost_report``
(RFC 3339 ``starting_at``/``ending_at``, ``amount`` a decimal string of cents). See the
docstrings of finops.sources.providers.openai_usage and .anthropic_usage for the sources.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = [
    "ANTHROPIC_KEY",
    "OPENAI_KEY",
    "Behaviour",
    "FakeProvider",
    "anthropic_fake",
    "ok",
    "openai_fake",
    "ratelimit",
    "server_error",
]

OPENAI_KEY = "sk-admin-fakeOpenAIAdminKey0123456789"
ANTHROPIC_KEY = "sk-ant-admin01-fakeAnthropicAdminKey0123456789"
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Behaviour:
    kind: Literal["ok", "ratelimit", "server_error"]
    status: int = 200
    retry_after: int | None = None


def ok() -> Behaviour:
    return Behaviour("ok")


def ratelimit(retry_after: int | None = 1) -> Behaviour:
    """HTTP 429 with ``Retry-After`` (seconds), as both providers' rate limiters answer."""
    return Behaviour("ratelimit", 429, retry_after)


def server_error(status: int = 500) -> Behaviour:
    return Behaviour("server_error", status)


@dataclass
class Received:
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0


class _Number(str):
    """A decimal kept as text and written into the JSON as a bare number (``0.1``, not ``"0.1"``)."""


@dataclass
class FakeProvider:
    kind: Literal["openai", "anthropic"]
    key: str
    page_size: int = 2
    usage: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    costs: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    _script: deque[Behaviour] = field(default_factory=deque)
    _ok_left: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    # ------------------------------------------------------------ test-facing API

    def add_usage(self, day: date, **result: Any) -> None:
        """One result row of ``day``'s usage bucket (provider field names; group fields included)."""
        self.usage.setdefault(day, []).append(result)

    def add_cost(self, day: date, amount: str, **result: Any) -> None:
        """One cost line of ``day``: dollars (OpenAI) or cents (Anthropic), as the provider writes them."""
        self.costs.setdefault(day, []).append({"amount": amount, **result})

    def script(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    def break_after(self, good_answers: int) -> None:
        """Answer ``good_answers`` more requests normally, then HTTP 500 to every request."""
        self._ok_left = good_answers

    def heal(self) -> None:
        self._ok_left = None

    def pages(self, path_end: str) -> list[Received]:
        """Requests answered 200 whose path ends with ``path_end``."""
        return [r for r in self.requests if r.path.endswith(path_end) and r.status == 200]

    # ------------------------------------------------------------ the server side

    def _behaviour(self) -> Behaviour:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._ok_left is not None:
                if self._ok_left <= 0:
                    return server_error(500)
                self._ok_left -= 1
            return ok()

    def answer(
        self, path: str, params: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        received = Received(path, params, headers)
        self.requests.append(received)
        status, extra, body = self._answer(path, params, headers)
        received.status = status
        return status, extra, body

    def _error(self, status: int, kind: str, message: str) -> tuple[int, dict[str, str], Any]:
        if self.kind == "openai":
            return status, {}, {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return status, {}, {"type": "error", "error": {"type": kind, "message": message}}

    def _answer(
        self, path: str, params: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        lower = {k.lower(): v for k, v in headers.items()}
        if self.kind == "openai":
            if lower.get("authorization") != f"Bearer {self.key}":
                return self._error(401, "invalid_request_error", "Incorrect API key provided.")
        else:
            if lower.get("x-api-key") != self.key:
                return self._error(401, "authentication_error", "invalid x-api-key")
            if not lower.get("anthropic-version"):
                return self._error(400, "invalid_request_error", "anthropic-version header is required")
        behaviour = self._behaviour()
        if behaviour.kind == "ratelimit":
            extra = {} if behaviour.retry_after is None else {"Retry-After": str(behaviour.retry_after)}
            status, _, body = self._error(429, "rate_limit_error", "Rate limit reached")
            return status, extra, body
        if behaviour.kind == "server_error":
            return self._error(behaviour.status, "api_error", "Internal server error")
        routes = {
            "/v1/organization/usage/completions": ("openai", self.usage, self._openai_usage),
            "/v1/organization/costs": ("openai", self.costs, self._openai_cost),
            "/v1/organizations/usage_report/messages": ("anthropic", self.usage, self._anthropic_usage),
            "/v1/organizations/cost_report": ("anthropic", self.costs, self._anthropic_cost),
        }
        if path not in routes or routes[path][0] != self.kind:
            return self._error(404, "not_found_error", f"no route {path}")
        _, data, render = routes[path]
        start, end = self._range(params)
        days = []
        day = start
        while day + _DAY <= end:
            days.append(day)
            day += _DAY
        token = params.get("page", [None])[0]
        offset = int(base64.b64decode(token).decode().split(":")[1]) if token else 0
        limit = min(int(params.get("limit", ["7"])[0]), self.page_size)
        shown = days[offset : offset + limit]
        more = offset + limit < len(days)
        next_page = base64.b64encode(f"{path}:{offset + limit}".encode()).decode() if more else None
        buckets = [self._bucket(d, [render(r) for r in data.get(d.date(), [])]) for d in shown]
        body: dict[str, Any] = {"data": buckets, "has_more": more, "next_page": next_page}
        if self.kind == "openai":
            body = {"object": "page", **body}
        return 200, {}, body

    def _range(self, params: dict[str, list[str]]) -> tuple[datetime, datetime]:
        if self.kind == "openai":
            start = datetime.fromtimestamp(int(params["start_time"][0]), UTC)
            end = datetime.fromtimestamp(int(params["end_time"][0]), UTC)
        else:
            start = datetime.fromisoformat(params["starting_at"][0].replace("Z", "+00:00"))
            end = datetime.fromisoformat(params["ending_at"][0].replace("Z", "+00:00"))
        # buckets snap to UTC midnights
        return start.replace(hour=0, minute=0, second=0, microsecond=0), end

    def _bucket(self, day: datetime, results: list[dict[str, Any]]) -> dict[str, Any]:
        if self.kind == "openai":
            return {
                "object": "bucket",
                "start_time": int(day.timestamp()),
                "end_time": int((day + _DAY).timestamp()),
                "results": results,
            }
        return {
            "starting_at": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ending_at": (day + _DAY).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "results": results,
        }

    @staticmethod
    def _openai_usage(r: dict[str, Any]) -> dict[str, Any]:
        out = {
            "object": "organization.usage.completions.result",
            "input_tokens": 0,
            "output_tokens": 0,
            "input_cached_tokens": 0,
            "input_audio_tokens": 0,
            "output_audio_tokens": 0,
            "num_model_requests": 0,
            "project_id": None,
            "user_id": None,
            "api_key_id": None,
            "model": None,
            "batch": None,
            "service_tier": None,
        }
        return {**out, **r}

    @staticmethod
    def _openai_cost(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "organization.costs.result",
            "amount": {"value": _Number(r["amount"]), "currency": r.get("currency", "usd")},
            "line_item": r.get("line_item"),
            "project_id": r.get("project_id"),
        }

    @staticmethod
    def _anthropic_usage(r: dict[str, Any]) -> dict[str, Any]:
        out = {
            "uncached_input_tokens": r.get("uncached_input_tokens", 0),
            "cache_read_input_tokens": r.get("cache_read_input_tokens", 0),
            "cache_creation": {
                "ephemeral_5m_input_tokens": r.get("ephemeral_5m_input_tokens", 0),
                "ephemeral_1h_input_tokens": r.get("ephemeral_1h_input_tokens", 0),
            },
            "output_tokens": r.get("output_tokens", 0),
            "server_tool_use": {"web_search_requests": r.get("web_search_requests", 0)},
            "api_key_id": None,
            "workspace_id": r.get("workspace_id"),
            "model": r.get("model"),
            "service_tier": r.get("service_tier"),
            "context_window": r.get("context_window"),
        }
        return out

    @staticmethod
    def _anthropic_cost(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "currency": "USD",
            "amount": r["amount"],
            "workspace_id": r.get("workspace_id"),
            "description": r.get("description"),
            "cost_type": r.get("cost_type", "tokens"),
            "context_window": r.get("context_window", "0-200k"),
            "model": r.get("model"),
            "service_tier": r.get("service_tier", "standard"),
            "token_type": r.get("token_type"),
        }


def _dumps(body: Any) -> bytes:
    """JSON where ``_Number`` strings become bare numbers, exactly as written (no float round trip)."""
    marker = "\x00num\x00"

    def mark(obj: Any) -> Any:
        if isinstance(obj, _Number):
            return f"{marker}{obj}{marker}"
        if isinstance(obj, dict):
            return {k: mark(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [mark(v) for v in obj]
        return obj

    text = json.dumps(mark(body))
    escaped = json.dumps(marker)[1:-1]
    text = text.replace(f'"{escaped}', "").replace(f'{escaped}"', "")
    return text.encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeProvider


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        status, headers, body = self.server.fake.answer(
            url.path, parse_qs(url.query, keep_blank_values=True), dict(self.headers.items())
        )
        raw = _dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


def _serve(fake: FakeProvider) -> Iterator[FakeProvider]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def openai_fake() -> Iterator[FakeProvider]:
    yield from _serve(FakeProvider("openai", OPENAI_KEY))


@pytest.fixture
def anthropic_fake() -> Iterator[FakeProvider]:
    yield from _serve(FakeProvider("anthropic", ANTHROPIC_KEY))
