"""The web dashboard's routes, on the API's port: who may look, the headers every page carries,
and one handler per page (read in a worker thread, rendered by ``finops/render/dashboard/``).

Access: with ``FINOPS_DASHBOARD_TOKENS`` set, a page needs one of those tokens (read-only; the
ingest tokens do not open the dashboard), given once on ``/login`` and kept in an HttpOnly,
SameSite=Strict cookie, or sent as ``Authorization: Bearer``. Without them the dashboard answers
only requests from this machine (loopback), as the API does without ingest tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finops.daemon.database_outage import RETRY_AFTER_S, DatabaseUnavailable, unavailable
from finops.domain.narrative import WeekNumbers, weekly_narrative
from finops.render.dashboard.flow import render_flow
from finops.render.dashboard.layout import esc, page
from finops.render.dashboard.outcomes import render_outcomes
from finops.render.dashboard.overview import render_overview
from finops.render.dashboard.prompts import render_prompts
from finops.render.dashboard.spend import render_spend
from finops.render.report_data import usd
from finops.render.spend import render_csv, render_json
from finops.usecases.dashboard.flow import flow_page as flow_view
from finops.usecases.dashboard.narrative import week_numbers
from finops.usecases.dashboard.outcomes import outcomes_view
from finops.usecases.dashboard.overview import Overview, overview
from finops.usecases.dashboard.prompts import MAX_TOP, UnknownFlow, prompts_view
from finops.usecases.dashboard.spend import SpendForm, read_form, resolve_form, spend_annotations
from finops.usecases.spend import SpendQuery, SpendResult

__all__ = ["COOKIE", "SECURITY_HEADERS", "ViewerAccess", "dashboard_routes", "no_route"]

log = logging.getLogger("finops.dashboard")

COOKIE = "finops_view"
_COOKIE_MAX_AGE_S = 90 * 86400
_MAX_FORM_BYTES = 4096

#: Every dashboard answer: nothing from elsewhere, no script, never framed, data never cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # nothing leaks elsewhere; our own forms still send their Origin
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Page = Callable[[Request], Awaitable[Response]]


def _digest(token: str) -> bytes:
    return hashlib.sha256(b"finops-dashboard\0" + token.encode()).digest()


class ViewerAccess:
    """Who may read the dashboard: a viewer token's holder, or anyone on loopback when none is set."""

    def __init__(
        self, tokens: Mapping[str, str], *, secure_cookie: bool = False, public_url: str | None = None
    ) -> None:
        """``tokens``: token -> viewer name (FINOPS_DASHBOARD_TOKENS); ``public_url``: the
        dashboard's address behind a proxy (FINOPS_PUBLIC_URL), whose origin forms post from."""
        self._viewers = [(_digest(t), name) for t, name in tokens.items()]
        self.secure_cookie = secure_cookie
        parts = urlsplit(public_url or "")
        self.public_origin = f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else None

    @property
    def open_on_loopback(self) -> bool:
        return not self._viewers

    def _match(self, digest: bytes) -> str | None:
        found = None
        for known, name in self._viewers:  # no early exit: the time says nothing about which
            if hmac.compare_digest(known, digest):
                found = name
        return found

    def viewer_of_token(self, token: str) -> str | None:
        return self._match(_digest(token.strip())) if token.strip() else None

    def cookie_value(self, token: str) -> str:
        """What the cookie holds: a digest of the token, never the token itself."""
        return _digest(token.strip()).hex()

    def viewer(self, request: Request) -> str | None:
        """The viewer's name, ``"local"`` on loopback without tokens, or ``None``: not allowed."""
        if self.open_on_loopback:
            return "local" if _loopback(request) else None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.viewer_of_token(token)
        cookie = request.cookies.get(COOKIE, "")
        try:
            digest = bytes.fromhex(cookie)
        except ValueError:
            return None
        return self._match(digest) if len(digest) == 32 else None


#: Headers a proxy adds: a request carrying one came from elsewhere, whatever its peer address.
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")


def _loopback_name(host: str) -> bool:
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8787
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:  # 127.0.0.1:8787, localhost:8787
        name = name.split(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _loopback(request: Request) -> bool:
    """Asked from this machine, for this machine: a loopback peer, no proxy's headers (a proxy on
    this host would make everyone local), and a loopback ``Host`` (another site's page cannot
    read the dashboard by pointing its own name at 127.0.0.1: DNS rebinding)."""
    peer = request.client.host if request.client else ""
    try:
        if not ipaddress.ip_address(peer).is_loopback:
            return False
    except ValueError:
        return False
    if any(name in request.headers for name in _FORWARDED):
        return False
    return _loopback_name(request.headers.get("host", ""))


def html(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A dashboard page with the security headers."""
    return Response(
        body, status, {**SECURITY_HEADERS, **(headers or {})}, media_type="text/html; charset=utf-8"
    )


def data(body: bytes | str, media_type: str, *, filename: str | None = None) -> Response:
    """A download (CSV, JSON) with the security headers; ``filename`` makes it an attachment."""
    headers = dict(SECURITY_HEADERS)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(body, 200, headers, media_type=media_type)


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp(now: datetime) -> str:
    return f"{now:%Y-%m-%d %H:%M:%S} UTC"


def message_page(
    title: str, message: str, status: int, *, login: bool = True, headers: Mapping[str, str] | None = None
) -> Response:
    body = f'<p class="{"error" if status >= 400 else "notice"}">{message}</p>'
    return html(
        page(title=title, active="", body=body, generated=stamp(now_utc()), login=login), status, headers
    )


class Problem(Exception):
    """A page that cannot answer what was asked: shown as one line, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


#: What may stay as it is in a path and query sent back in ``Location`` (RFC 3986 reserved and
#: unreserved characters, and ``%`` of what is already encoded); everything else is encoded.
_URL_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


def _safe_next(target: str) -> str:
    """Only a path on this site (``/flows/x``), never ``//elsewhere`` or ``https://...``.

    Encoded first: browsers drop tabs and newlines from a URL (``/<TAB>/evil`` is ``//evil``), a
    CR/LF would split the header, and a character outside Latin-1 cannot be written in it at all.
    """
    if not target.startswith("/") or "\\" in target:
        return "/"
    encoded = quote(target, safe=_URL_SAFE)
    return "/" if encoded.startswith("//") else encoded


def _login_form(next_path: str, problem: str = "") -> str:
    error = f'<p class="error" role="alert">{esc(problem)}</p>' if problem else ""
    return (
        f'<div class="login">{error}<form method="post" action="/login">'
        '<label for="token">Dashboard token (one of FINOPS_DASHBOARD_TOKENS)</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<p><button type="submit">Sign in</button></p></form>'
        '<p class="muted">Kept in a cookie on this browser only; the API\'s ingest tokens do not open '
        "the dashboard.</p></div>"
    )


def _same_origin(request: Request) -> bool:
    """The form was posted from this site: the ``Host`` asked, or FINOPS_PUBLIC_URL (a proxy in
    front, such as nginx's default, sends the upstream's address as ``Host``)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    access: ViewerAccess = request.app.state.dashboard
    if access.public_origin is not None and origin.lower() == access.public_origin:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def login_page(request: Request) -> Response:
    access: ViewerAccess = request.app.state.dashboard
    next_path = _safe_next(request.query_params.get("next", "/"))
    if access.open_on_loopback:
        return Response(status_code=303, headers={**SECURITY_HEADERS, "Location": next_path})
    body = _login_form(next_path)
    return html(page(title="Sign in", active="", body=body, generated=stamp(now_utc()), login=False))


async def login(request: Request) -> Response:
    access: ViewerAccess = request.app.state.dashboard
    if access.open_on_loopback:
        return Response(status_code=303, headers={**SECURITY_HEADERS, "Location": "/"})
    if not _same_origin(request):
        return message_page("Sign in", "sign in from the dashboard's own page", 403, login=False)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_FORM_BYTES:
            return message_page("Sign in", "the form is too large", 413, login=False)
    try:
        form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:  # more fields than the form has: not our form
        return message_page("Sign in", "send the sign-in form: token and next", 400, login=False)
    token = (form.get("token") or [""])[0]
    next_path = _safe_next((form.get("next") or ["/"])[0])
    viewer = access.viewer_of_token(token)
    if viewer is None:
        log.warning("dashboard sign-in refused")
        body = _login_form(next_path, "That is not one of FINOPS_DASHBOARD_TOKENS; try again.")
        return html(page(title="Sign in", active="", body=body, generated=stamp(now_utc()), login=False), 401)
    log.info("dashboard sign-in", extra={"viewer": viewer})
    response = Response(status_code=303, headers={**SECURITY_HEADERS, "Location": next_path})
    response.set_cookie(
        COOKIE,
        access.cookie_value(token),
        max_age=_COOKIE_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=access.secure_cookie or request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    if not _same_origin(request):  # another site's form must not sign the viewer out
        return message_page("Sign out", "sign out from the dashboard's own page", 403, login=False)
    response = Response(status_code=303, headers={**SECURITY_HEADERS, "Location": "/login"})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


_CSS: bytes | None = None


async def stylesheet(request: Request) -> Response:
    global _CSS
    if _CSS is None:
        _CSS = resources.files("finops.render.dashboard").joinpath("static/dashboard.css").read_bytes()
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"}
    headers["Cache-Control"] = "public, max-age=300"
    return Response(_CSS, 200, headers, media_type="text/css; charset=utf-8")


def guarded(name: str, handler: Page) -> Page:
    """A page behind the viewer check, with one-line answers for every failure (never a traceback)."""

    async def route(request: Request) -> Response:
        api: Any = request.app.state.api
        access: ViewerAccess = request.app.state.dashboard
        if access.viewer(request) is None:
            if access.open_on_loopback:
                return message_page(
                    "Not here",
                    "The dashboard answers only on this machine (by 127.0.0.1 or localhost, not through "
                    "a proxy) until FINOPS_DASHBOARD_TOKENS is set.",
                    403,
                    login=False,
                )
            if request.headers.get("authorization"):
                return message_page(
                    "Sign in", "That bearer token is not a dashboard token.", 401, login=False
                )
            raw = request.scope.get("raw_path") or request.url.path.encode()
            target = raw.decode("latin-1") + (f"?{request.url.query}" if request.url.query else "")
            location = "/login?next=" + quote(target, safe="")
            return Response(status_code=303, headers={**SECURITY_HEADERS, "Location": location})
        try:
            from finops.daemon.http.app import parameters_problem

            problem = parameters_problem(request)
            if problem is not None:
                raise Problem(400, problem)
            response = await handler(request)
        except Problem as exc:
            response = message_page("Cannot show this", esc(str(exc)), exc.status)
        except DatabaseUnavailable:
            response = _unavailable()
        except Exception as exc:
            if unavailable(exc):  # the pages read only the read database (the primary if none)
                api.service.read_outage.failed(exc, writing=False)
                response = _unavailable()
            else:
                log.exception("dashboard page failed", extra={"route": name})
                response = message_page(
                    "Error",
                    f"internal error ({esc(type(exc).__name__)}); the daemon's log has the details",
                    500,
                )
        api.metrics.requests.labels(f"dashboard:{name}", str(response.status_code)).inc()
        return response

    return route


def _unavailable() -> Response:
    return message_page(
        "Database unavailable",
        f"The database cannot answer right now; this page retries in {RETRY_AFTER_S} s.",
        503,
        headers={"Retry-After": str(RETRY_AFTER_S), "Refresh": str(RETRY_AFTER_S)},
    )


def budgets_now(request: Request) -> tuple[Any, tuple[str, ...]]:
    """The budgets in force and the files that cannot be read, as the daemon's watch has them."""
    found = request.app.state.api.service.budgets.current
    return found.budgets, tuple(found.errors_by_file)


# --------------------------------------------------------------------------- pages


async def overview_page(request: Request) -> Response:
    api = request.app.state.api
    found = api.service.budgets.current
    budgets = found.budgets
    kept = tuple(name for name in found.errors_by_file if found.kept_by_file.get(name))
    broken = tuple(name for name in found.errors_by_file if name not in kept)
    now = now_utc()

    def read() -> tuple[Overview, WeekNumbers]:
        result = overview(api.service.ledger, budgets, broken, now, kept)
        return result, week_numbers(api.service.ledger, result)

    result, week = await run_in_threadpool(read)
    return html(render_overview(result, weekly_narrative(week, usd=usd)))


# --- /flows/{flow} (engineering) ---------------------------------------------------------------


#: Longer than any flow a usage record (128 characters) or a budget (256) can name.
_MAX_FLOW_CHARS = 256


async def flow_page(request: Request) -> Response:
    api = request.app.state.api
    flow = str(request.path_params.get("flow", ""))
    if not flow:
        raise Problem(404, "name a flow: /flows/<flow>; see /spend for the flows")
    if len(flow) > _MAX_FLOW_CHARS:
        raise Problem(
            400,
            f"a flow name is at most {_MAX_FLOW_CHARS} characters, got {len(flow)}; see /spend for the flows",
        )
    budgets, _ = budgets_now(request)
    result = await run_in_threadpool(flow_view, api.service.ledger, budgets, flow, now_utc())
    if result is None:
        raise Problem(404, f"no usage or budget for flow {flow}; see /spend for the flows")
    return html(render_flow(result))


# --- /outcomes (executive) -------------------------------------------------------------------


_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def _one(request: Request, name: str) -> str:
    """A parameter given at most once (``""`` when absent)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Problem(400, f"give {name} once")
    return values[0].strip() if values else ""


#: The years a month may name: the pages also read the month before and after it, which
#: ``date`` cannot hold for 0001-01 or 9999-12.
_YEARS = range(1970, 2201)


def _month_param(request: Request) -> str | None:
    month = _one(request, "month")
    if month and not _MONTH.fullmatch(month):
        raise Problem(400, f"month must look like 2026-11 (YYYY-MM), not {month[:40]!r}")
    if month and int(month[:4]) not in _YEARS:
        raise Problem(400, f"month must be from {_YEARS[0]}-01 to {_YEARS[-1]}-12, not {month}")
    return month or None


async def outcomes_page(request: Request) -> Response:
    api = request.app.state.api
    budgets, _ = budgets_now(request)
    month = _month_param(request)
    view = await run_in_threadpool(outcomes_view, api.service.ledger, budgets, now_utc(), month=month)
    return html(render_outcomes(view))


# --- /prompts --------------------------------------------------------------------------------


async def prompts_page(request: Request) -> Response:
    api = request.app.state.api
    month = _month_param(request)
    top_text = _one(request, "top") or "20"
    if not re.fullmatch(r"[0-9]{1,4}", top_text) or not 1 <= int(top_text) <= MAX_TOP:
        raise Problem(400, f"top must be a whole number from 1 to {MAX_TOP}, not {top_text[:40]!r}")
    flows = [f.strip() for f in request.query_params.getlist("flow") if f.strip()]
    now = now_utc()
    try:
        view = await run_in_threadpool(
            prompts_view, api.service.ledger, now, month=month, flows=flows, top=int(top_text)
        )
    except UnknownFlow as exc:
        raise Problem(400, f"{exc}: pick a flow from the list") from None
    return html(render_prompts(view, generated=stamp(now)))


# --- /spend, /spend.csv, /spend.json -------------------------------------------------------


def _spend_question(request: Request) -> tuple[SpendForm, SpendQuery]:
    """The form and its query, as ``GET /v1/spend`` reads them; a bad value is a one-line 400."""
    from finops.daemon.http.app import repeated

    problem = repeated(request, ("period", "by", "since", "until", "month", "today", "tz", "top"))
    if problem:
        raise Problem(400, problem)
    q = request.query_params
    try:
        return resolve_form(read_form(q.get, q.getlist), now_utc())
    except ValueError as exc:
        raise Problem(400, str(exc)) from None


async def spend_page(request: Request) -> Response:
    form, query = _spend_question(request)
    service = request.app.state.api.service
    budgets, _ = budgets_now(request)
    result = await run_in_threadpool(service.spend, query)
    notes = await run_in_threadpool(spend_annotations, service.ledger, query, budgets)
    return html(render_spend(form, result, generated=stamp(now_utc()), annotations=notes))


#: What each download is: the bytes ``finops spend --format FMT`` prints (``typer.echo`` ends
#: the JSON with a newline; the CSV already ends with one), and its media type.
_DOWNLOADS: dict[str, tuple[Callable[[SpendResult], str], str]] = {
    "csv": (render_csv, "text/csv; charset=utf-8"),
    "json": (lambda result: render_json(result) + "\n", "application/json"),
}


async def spend_download(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in _DOWNLOADS:
        raise Problem(404, "there is /spend.csv and /spend.json, with the query string of /spend")
    _, query = _spend_question(request)
    result = await run_in_threadpool(request.app.state.api.service.spend, query)
    render, media_type = _DOWNLOADS[fmt]
    return data(render(result), media_type, filename=f"spend.{fmt}")


# ---------------------------------------------------------------------------------------------


def json_bytes(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


async def no_route(request: Request, exc: Exception) -> Response:
    """No route for this path or method (Starlette's 404 and 405): the security headers too, and on
    the dashboard's side a one-line page, not a bare "Not Found" without a policy."""
    status = getattr(exc, "status_code", 404)
    headers = {**SECURITY_HEADERS, **(getattr(exc, "headers", None) or {})}
    path = request.url.path
    if path.startswith("/v1/") or path in ("/healthz", "/metrics"):
        text = "Method Not Allowed" if status == 405 else "Not Found"
        return Response(text, status, headers, media_type="text/plain; charset=utf-8")
    if status == 405:
        message = "this address does not answer that method: open it in a browser (GET)"
    else:
        message = "no page here: the pages are /, /flows/&lt;flow&gt;, /spend, /outcomes and /prompts"
    return message_page("Not here", message, status, login=False, headers=headers)


def dashboard_routes() -> list[Route]:
    return [
        Route("/", guarded("overview", overview_page), methods=["GET"]),
        Route("/flows/{flow:path}", guarded("flow", flow_page), methods=["GET"]),
        Route("/outcomes", guarded("outcomes", outcomes_page), methods=["GET"]),
        Route("/prompts", guarded("prompts", prompts_page), methods=["GET"]),
        Route("/spend", guarded("spend", spend_page), methods=["GET"]),
        Route("/spend.{fmt:str}", guarded("spend_download", spend_download), methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/dashboard.css", stylesheet, methods=["GET"]),
    ]
