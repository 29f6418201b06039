"""A fake Slack, served over real HTTP so the real slack-sdk (WebClient and WebhookClient) talks to it.

Point a client at ``fake.base_url`` (``http://127.0.0.1:PORT/api/``) or
``fake.webhook_url``. The fake checks the bearer token, validates messages
against Slack's limits (and answers ``invalid_blocks``, ``msg_too_long`` or
``no_text`` the way Slack does), records every request with the time it arrived,
and can be scripted per channel or globally::

    slack.script(ratelimit(retry_after=2), ok(), channel="#costs")
    slack.always(server_error(503))           # once the queues are empty
    slack.script(slow(3, then=server_error(503)))  # hangs, then fails: nothing posted

Scripts apply to message posts (``chat.postMessage`` and the webhook); reads
(``conversations.history``, ``conversations.list``, ``users.list``, ``users.lookupByEmail``)
always answer normally. Workspace members are added with ``slack.add_user(...)``; ``users.list``
pages them by ``limit`` and ``cursor`` as Slack does, ``users.lookupByEmail`` answers
``users_not_found`` for an address no member has.
Use the ``slack`` fixture: it starts the server on a free port and shuts it down.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest

from finops.notify import transport
from tests.slack_fake_validation import validate_message

__all__ = [
    "Behaviour",
    "FakeSlack",
    "Received",
    "error",
    "ok",
    "ratelimit",
    "server_error",
    "slack",
    "slow",
    "slow_answer",
    "validate_message",
]

TOKEN = "xoxb-1111-2222-fakeTokenValue0123456789"
WEBHOOK_PATH = "/services/T0FAKE000/B0FAKE000/fakeWebhookSecret0123456789"
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
#: HTTP status Slack's incoming webhooks answer with each error code.
_WEBHOOK_STATUS = {
    "no_service": 404,
    "channel_not_found": 404,
    "invalid_token": 403,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "channel_is_archived": 410,
}


# ---------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Behaviour:
    """How the fake answers one message post."""

    kind: Literal["ok", "ratelimit", "server_error", "slow", "slow_answer", "error"]
    retry_after: float = 0
    status: int = 200
    seconds: float = 0.0
    error: str = ""
    then: Behaviour | None = None  # slow(): how to answer after the wait (None: post normally)


def ok() -> Behaviour:
    return Behaviour("ok")


def ratelimit(retry_after: float = 2) -> Behaviour:
    """HTTP 429 with a Retry-After header, as Slack's rate limiter answers (``str(retry_after)``)."""
    return Behaviour("ratelimit", retry_after=retry_after, status=429)


def server_error(status: int = 500) -> Behaviour:
    """An HTML 5xx page, as Slack's edge answers when the API is down."""
    return Behaviour("server_error", status=status)


def slow(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Sleep before answering (then post and answer normally): clients time out meanwhile.

    With ``then`` (say ``server_error(503)``), answer that after the wait and post nothing: a
    request that hung and never reached Slack's channel, the case a lookup must find missing.
    """
    return Behaviour("slow", seconds=seconds, then=then)


def slow_answer(seconds: float) -> Behaviour:
    """Post the message at once, then sleep before answering: the client times out (or dies)
    after Slack has accepted it, the case an interrupted deliverer must find in the channel."""
    return Behaviour("slow_answer", seconds=seconds)


def error(code: str) -> Behaviour:
    """``{"ok": false, "error": code}`` with HTTP 200 (webhooks: the code as text with its HTTP status)."""
    return Behaviour("error", error=code)


@dataclass
class Received:
    """One request as the fake saw it; ``status`` and ``error`` are filled in once it is answered."""

    path: str
    method: str  # Web API method ("chat.postMessage") or "webhook"
    channel: str | None
    text: str | None
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float  # time.monotonic()
    status: int | None = None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 200 and self.error is None


# ---------------------------------------------------------------- the server


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: dict[str, Any], status: int = 200, **headers: str) -> _Answer:
        return cls(status, json.dumps(data).encode(), headers=headers)

    @classmethod
    def text(cls, text: str, status: int, content_type: str = "text/plain; charset=utf-8") -> _Answer:
        return cls(status, text.encode(), content_type)


def _decode(value: Any) -> Any:
    """Form-encoded blocks and metadata arrive as JSON strings."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up (a timeout test): nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _params(self) -> dict[str, Any]:
        url = urlsplit(self.path)
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw and kind == "application/json":
            params.update(json.loads(raw))
        elif raw:
            params.update({k: _decode(v[-1]) for k, v in parse_qs(raw.decode()).items()})
        return params

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/upload/"):  # files_upload_v2 step 2: the file's bytes, as sent
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = self.server.fake._upload(path, raw)
        else:
            params = self._params()
            answer = self.server.fake._dispatch(path, params, dict(self.headers.items()))
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(answer.body)
        except ConnectionError:
            pass  # the client timed out and left


class FakeSlack:
    """Slack's Web API (``/api/METHOD``) and one incoming webhook, on 127.0.0.1 and a free port."""

    def __init__(self, *, token: str = TOKEN, webhook_channel: str = "#webhook-alerts") -> None:
        self.token = token
        self.webhook_channel = webhook_channel
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._queues: dict[str | None, deque[Behaviour]] = {}
        self._fallback = ok()
        self._posted: dict[str, list[dict[str, Any]]] = {}
        self._names: dict[str, str] = {}  # channel id -> name
        self._last_ts = 0.0
        self._files: dict[str, dict[str, Any]] = {}
        self._upload_script: deque[Behaviour] = deque()
        #: files shared with files_upload_v2: id, filename, title, channel (id), content (bytes)
        self.uploads: list[dict[str, Any]] = []
        #: workspace members, as users.list answers them
        self.members: list[dict[str, Any]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ for tests

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return self.url(WEBHOOK_PATH)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *behaviours: Behaviour, channel: str | None = None) -> None:
        """Queue answers for posts to ``channel`` (the webhook's is ``webhook_channel``), or for any post."""
        with self._lock:
            self._queues.setdefault(channel, deque()).extend(behaviours)

    def always(self, behaviour: Behaviour) -> None:
        """How to answer once the queues are empty (default: ``ok()``)."""
        with self._lock:
            self._fallback = behaviour

    def posts(self, channel: str | None = None) -> list[Received]:
        """Message posts received (accepted or not), optionally only those to ``channel``."""
        with self._lock:
            found = [r for r in self.requests if r.method in ("chat.postMessage", "webhook")]
        return [r for r in found if channel is None or r.channel == channel]

    def script_uploads(self, *behaviours: Behaviour) -> None:
        """Answers for the next file uploads (files.getUploadURLExternal), then normal ones."""
        with self._lock:
            self._upload_script.extend(behaviours)

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        display_name: str = "",
        real_name: str = "",
        email: str | None = None,
        deleted: bool = False,
    ) -> None:
        """A workspace member (``name`` is the legacy username; people see ``display_name``)."""
        profile: dict[str, Any] = {"display_name": display_name, "real_name": real_name}
        if email is not None:
            profile["email"] = email
        member = {
            "id": user_id,
            "team_id": "T0FAKE000",
            "name": name,
            "real_name": real_name,
            "deleted": deleted,
            "is_bot": False,
            "profile": profile,
        }
        with self._lock:
            self.members.append(member)

    def calls(self, method: str) -> list[Received]:
        """Requests of one Web API method (``users.list``...)."""
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def channel_id(self, channel: str) -> str:
        """The id the fake gives a channel name (ids are answered unchanged)."""
        if _CHANNEL_ID.match(channel):
            return channel
        name = channel.lstrip("#")
        cid = "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()  # an id, not security
        with self._lock:
            self._names.setdefault(cid, name)
        return cid

    def close(self) -> None:
        self._stop.set()  # wakes slow() answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------ serving

    def _next(self, channel: str | None) -> Behaviour:
        with self._lock:
            for key in (channel, None):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            return self._fallback

    def _record(
        self, path: str, method: str, channel: str | None, params: dict[str, Any], headers: dict[str, str]
    ) -> Received:
        blocks = _decode(params.get("blocks"))
        metadata = _decode(params.get("metadata"))
        if channel:
            self.channel_id(channel)  # a channel that is addressed exists, as in a real workspace
        received = Received(
            path=path,
            method=method,
            channel=channel,
            text=params.get("text"),
            blocks=blocks if isinstance(blocks, list) else None,
            metadata=metadata if isinstance(metadata, dict) else None,
            headers=headers,
            body=params,
            received_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(received)
        return received

    def _dispatch(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> _Answer:
        if path.startswith("/services/"):
            received = self._record(path, "webhook", self.webhook_channel, params, headers)
            answer = self._webhook(path, params)
        elif path.startswith("/api/"):
            method = path.removeprefix("/api/")
            channel = params.get("channel") if isinstance(params.get("channel"), str) else None
            received = self._record(path, method, channel, params, headers)
            answer = self._api(method, params, headers)
        else:
            return _Answer.text("not found", 404)
        received.status = answer.status
        if answer.content_type.startswith("application/json"):
            received.error = json.loads(answer.body).get("error")
        elif answer.status != 200:
            received.error = answer.body.decode()[:100]
        return answer

    def _peek_slow_answer(self, channel: str | None) -> Behaviour | None:
        """Take the next behaviour if it is ``slow_answer`` (which posts before it waits)."""
        with self._lock:
            for key in (channel, None):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft() if queue[0].kind == "slow_answer" else None
        return None

    def _scripted(self, channel: str | None) -> _Answer | None:
        """The scripted answer for a post, or None to go on and post it."""
        return self._answer(self._next(channel))

    def _answer(self, behaviour: Behaviour) -> _Answer | None:
        if behaviour.kind == "slow":
            self._stop.wait(behaviour.seconds)
            if behaviour.then is not None:
                return self._answer(behaviour.then)
        elif behaviour.kind == "ratelimit":
            return _Answer.json(
                {"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": str(behaviour.retry_after)}
            )
        elif behaviour.kind == "server_error":
            page = f"<html><body><h1>{behaviour.status} Server Error</h1></body></html>"
            return _Answer.text(page, behaviour.status, "text/html; charset=utf-8")
        elif behaviour.kind == "error":
            return _Answer.json({"ok": False, "error": behaviour.error})
        return None

    def _api(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> _Answer:
        bearer = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        token = (
            bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else params.get("token")
        )
        if method == "chat.postMessage":
            behaviour = self._peek_slow_answer(params.get("channel"))
            if behaviour is not None:
                answer = self._post_message(params)
                self._stop.wait(behaviour.seconds)
                return answer
            scripted = self._scripted(params.get("channel"))
            if scripted is not None:
                return scripted
        if not token:
            return _Answer.json({"ok": False, "error": "not_authed"})
        if token != self.token:
            return _Answer.json({"ok": False, "error": "invalid_auth"})
        if method == "chat.postMessage":
            return self._post_message(params)
        if method == "files.getUploadURLExternal":
            with self._lock:
                behaviour = self._upload_script.popleft() if self._upload_script else None
            if behaviour is not None:
                self._queues.setdefault("__upload__", deque()).appendleft(behaviour)
                scripted = self._scripted("__upload__")
                if scripted is not None:
                    return scripted
            return self._upload_url(params)
        if method == "files.completeUploadExternal":
            return self._complete_upload(params)
        if method == "conversations.history":
            return self._history(params)
        if method == "conversations.list":
            return self._list(params)
        if method == "users.list":
            return self._users(params)
        if method == "users.lookupByEmail":
            email = str(params.get("email") or "").strip().lower()
            with self._lock:
                found = [
                    m
                    for m in self.members
                    if str(m["profile"].get("email", "")).lower() == email and not m["deleted"]
                ]
            if not found:
                return _Answer.json({"ok": False, "error": "users_not_found"})
            return _Answer.json({"ok": True, "user": found[0]})
        if method == "auth.test":
            return _Answer.json({"ok": True, "team": "fake", "user": "finops", "bot_id": "B0FAKEBOT"})
        return _Answer.json({"ok": False, "error": "unknown_method"})

    def _store(self, channel_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._last_ts = max(time.time(), self._last_ts + 0.000001)
            ts = f"{self._last_ts:.6f}"
        message = {
            "type": "message",
            "subtype": "bot_message",
            "text": params.get("text") or "",
            "ts": ts,
            "bot_id": "B0FAKEBOT",
            "app_id": "A0FAKEAPP",
            "blocks": _decode(params.get("blocks")) or [],
        }
        metadata = _decode(params.get("metadata"))
        if isinstance(metadata, dict):
            message["metadata"] = metadata
        with self._lock:
            self._posted.setdefault(channel_id, []).append(message)
        return message

    def _post_message(self, params: dict[str, Any]) -> _Answer:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return _Answer.json({"ok": False, "error": "channel_not_found"})
        invalid = validate_message(params)
        if invalid is not None:
            code, errors = invalid
            data: dict[str, Any] = {"ok": False, "error": code}
            if errors:
                data["errors"] = errors
                data["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in errors]}
            return _Answer.json(data)
        channel_id = self.channel_id(channel)
        message = self._store(channel_id, params)
        return _Answer.json({"ok": True, "channel": channel_id, "ts": message["ts"], "message": message})

    def _upload_url(self, params: dict[str, Any]) -> _Answer:
        with self._lock:
            file_id = f"F{len(self._files) + 1:09d}"
            self._files[file_id] = {"id": file_id, "filename": params.get("filename"), "content": None}
        port = self._server.server_address[1]
        return _Answer.json(
            {"ok": True, "upload_url": f"http://127.0.0.1:{port}/upload/{file_id}", "file_id": file_id}
        )

    def _upload(self, path: str, raw: bytes) -> _Answer:
        file_id = path.rsplit("/", 1)[-1]
        with self._lock:
            if file_id not in self._files:
                return _Answer.text("not found", 404)
            self._files[file_id]["content"] = raw
        return _Answer.text(f"OK - {len(raw)}", 200)

    def _complete_upload(self, params: dict[str, Any]) -> _Answer:
        files = _decode(params.get("files"))
        if not isinstance(files, list) or not files:
            return _Answer.json({"ok": False, "error": "invalid_arguments"})
        shared = []
        with self._lock:
            for item in files:
                entry = self._files.get(str(item.get("id")))
                if entry is None or entry["content"] is None:
                    return _Answer.json({"ok": False, "error": "file_not_found"})
                entry.update(title=item.get("title"), channel=params.get("channel_id"))
                self.uploads.append(dict(entry))
                shared.append({"id": entry["id"], "title": entry["title"]})
        return _Answer.json({"ok": True, "files": shared})

    def _history(self, params: dict[str, Any]) -> _Answer:
        channel = str(params.get("channel") or "")
        if not _CHANNEL_ID.match(channel):
            return _Answer.json({"ok": False, "error": "channel_not_found"})
        oldest = float(params.get("oldest") or 0)
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [m for m in reversed(self._posted.get(channel, [])) if float(m["ts"]) > oldest]
        page = [
            m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
            for m in found[start : start + limit]
        ]
        more = start + limit < len(found)
        return _Answer.json(
            {
                "ok": True,
                "messages": page,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _list(self, params: dict[str, Any]) -> _Answer:
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        with self._lock:
            channels = [
                {"id": cid, "name": name, "is_channel": True, "is_archived": False}
                for cid, name in sorted(self._names.items())
            ]
        more = start + limit < len(channels)
        return _Answer.json(
            {
                "ok": True,
                "channels": channels[start : start + limit],
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _users(self, params: dict[str, Any]) -> _Answer:
        """users.list: a page of ``limit`` members (Slack: at most 200), ``next_cursor`` for the rest."""
        limit = min(int(params.get("limit") or 200), 200)
        start = int(params.get("cursor") or 0)
        with self._lock:
            members = list(self.members)
        more = start + limit < len(members)
        return _Answer.json(
            {
                "ok": True,
                "members": members[start : start + limit],
                "cache_ts": int(time.time()),
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _webhook(self, path: str, params: dict[str, Any]) -> _Answer:
        if path != WEBHOOK_PATH:
            return _Answer.text("no_service", 404)
        behaviour_answer = self._scripted(self.webhook_channel)
        if behaviour_answer is not None:
            if behaviour_answer.status == 429:
                return _Answer(429, b"rate_limited", "text/plain; charset=utf-8", behaviour_answer.headers)
            if behaviour_answer.content_type.startswith("application/json"):  # error(code)
                code = json.loads(behaviour_answer.body)["error"]
                return _Answer.text(code, _WEBHOOK_STATUS.get(code, 400))
            return behaviour_answer
        invalid = validate_message(params)
        if invalid is not None:
            return _Answer.text(invalid[0], 400)
        self._store(self.channel_id(self.webhook_channel), params)
        return _Answer.text("ok", 200, "text/html")


@pytest.fixture(name="slack")
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """A running fake Slack; slack-sdk ignores NO_PROXY, so proxy variables are cleared for the test.

    Named explicitly so a test module can import it under another name (``from tests.slack_fake
    import slack as slack_fixture``) and still ask for ``slack`` without shadowing the import.
    """
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    # Senders made in this process retry a 5xx after 0.01 s, 0.02 s... instead of 0.5 s, 1 s, 2 s
    # (plus slack-sdk's jitter, as in the daemon): the same retries, less idling. Retry-After is
    # still slept as the fake Slack asks.
    monkeypatch.setattr(transport, "SERVER_ERROR_BACKOFF_S", 0.01)
    fake = FakeSlack()
    try:
        yield fake
    finally:
        fake.close()
