"""Who may read the dashboard: viewer tokens through a sign-in form and a cookie, or loopback only.

Against the real daemon over real HTTP (and, for the cookie, a real browser).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.browser import Browser, require_chromium
from tests.daemon_proc import TOKEN, DaemonProcess

VIEWER = "view-0123456789abcdef0123"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> DaemonProcess:
    tmp = tmp_path_factory.mktemp("access")
    daemon = DaemonProcess(
        tmp, f"sqlite:///{tmp / 'f.db'}", FINOPS_DASHBOARD_TOKENS=f"finance={VIEWER},second-token-abcdef"
    ).start()
    yield daemon
    daemon.stop()


def test_a_page_without_credentials_goes_to_sign_in_and_comes_back(guarded: DaemonProcess) -> None:
    r = httpx.get(guarded.base + "/flows/a%20b?x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fflows%2Fa%2520b%3Fx%3D1"
    form = httpx.get(guarded.base + r.headers["location"])
    assert form.status_code == 200 and 'name="token"' in form.text and 'type="password"' in form.text
    assert 'value="/flows/a%20b?x=1"' in form.text
    signed = httpx.post(
        guarded.base + "/login", data={"token": VIEWER, "next": "/flows/a%20b?x=1"}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/flows/a%20b?x=1"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert VIEWER not in cookie  # a digest of the token, never the token
    value = signed.cookies["finops_view"]
    page = httpx.get(guarded.base + "/", cookies={"finops_view": value})
    assert page.status_code == 200 and 'data-band="budgets"' in page.text


def test_a_wrong_token_is_refused_with_one_line_and_no_cookie(guarded: DaemonProcess) -> None:
    r = httpx.post(guarded.base + "/login", data={"token": "guess", "next": "/"}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert "not one of FINOPS_DASHBOARD_TOKENS" in r.text
    forged = httpx.get(guarded.base + "/", cookies={"finops_view": "00" * 32}, follow_redirects=False)
    assert forged.status_code == 303
    junk = httpx.get(guarded.base + "/", cookies={"finops_view": "zz<>"}, follow_redirects=False)
    assert junk.status_code == 303


def test_ingest_tokens_do_not_open_the_dashboard_and_viewer_tokens_do_not_ingest(
    guarded: DaemonProcess,
) -> None:
    r = httpx.get(guarded.base + "/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 401 and "not a dashboard token" in r.text
    ok = httpx.get(guarded.base + "/", headers={"Authorization": "Bearer second-token-abcdef"})
    assert ok.status_code == 200
    post = httpx.post(guarded.base + "/v1/usage", json=[], headers={"Authorization": f"Bearer {VIEWER}"})
    assert post.status_code == 401
    spend = httpx.get(guarded.base + "/v1/spend", headers={"Authorization": f"Bearer {VIEWER}"})
    assert spend.status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "evil"])
def test_sign_in_never_sends_the_browser_elsewhere(guarded: DaemonProcess, target: str) -> None:
    r = httpx.post(guarded.base + "/login", data={"token": VIEWER, "next": target}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_sign_in_from_another_site_is_refused(guarded: DaemonProcess) -> None:
    r = httpx.post(
        guarded.base + "/login",
        data={"token": VIEWER, "next": "/"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_huge_sign_in_form_is_refused(guarded: DaemonProcess) -> None:
    r = httpx.post(guarded.base + "/login", content=b"token=" + b"a" * 100_000, follow_redirects=False)
    assert r.status_code == 413


def test_sign_out_forgets_the_cookie(guarded: DaemonProcess) -> None:
    with httpx.Client(base_url=guarded.base) as client:
        client.post("/login", data={"token": VIEWER, "next": "/"})
        assert client.get("/").status_code == 200
        out = client.post("/logout", follow_redirects=False)
        assert out.status_code == 303 and 'finops_view=""' in out.headers["set-cookie"]
        assert client.get("/", follow_redirects=False).status_code == 303


def test_the_cookie_is_httponly_in_a_real_browser(guarded: DaemonProcess, tmp_path: Path) -> None:
    require_chromium()
    b = Browser(tmp_path / "profile")
    try:
        b.goto(guarded.base + "/?from=mail")
        assert b.evaluate("location.pathname") == "/login"
        assert b.evaluate("document.activeElement.id") == "token"  # autofocus: type at once
        b.type_text(VIEWER)
        b.press_enter_and_wait()
        assert b.evaluate("location.pathname + location.search") == "/?from=mail"  # back where it was going
        b.navigate(guarded.base + "/")
        assert b.evaluate("document.querySelectorAll('[data-band]').length") == 2
        assert b.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        assert b.problems() == []
    finally:
        b.close()


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_without_viewer_tokens_only_loopback_may_look(tmp_path: Path) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback: cannot ask from outside")
    daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'f.db'}", FINOPS_HOST="0.0.0.0").start()
    try:
        assert httpx.get(daemon.base + "/").status_code == 200
        far = httpx.get(f"http://{outside}:{daemon.port}/", follow_redirects=False)
        assert far.status_code == 403 and "FINOPS_DASHBOARD_TOKENS" in far.text
        assert httpx.get(f"http://{outside}:{daemon.port}/login", follow_redirects=False).status_code == 303
        assert httpx.get(f"http://{outside}:{daemon.port}/healthz").status_code == 200  # the API as before
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/\t/evil.example", "/%09/evil.example"),  # a browser drops the tab: //evil.example
        ("/\n/evil.example", "/%0A/evil.example"),
        ("/\r\nSet-Cookie: finops_view=x", "/%0D%0ASet-Cookie:%20finops_view=x"),  # no second header
        ("/flows/caf\u00e9\u2028", "/flows/caf%C3%A9%E2%80%A8"),  # not Latin-1: was a 500
        ("/flows/a%20b?x=1&y=2", "/flows/a%20b?x=1&y=2"),  # what the sign-in redirect sends: kept
    ],
)
def test_the_next_path_is_sent_back_encoded(guarded: DaemonProcess, target: str, location: str) -> None:
    r = httpx.post(guarded.base + "/login", data={"token": VIEWER, "next": target}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == location
    assert list(r.headers.get_list("set-cookie")) and "finops_view=x" not in r.headers["set-cookie"]


def test_the_next_path_cannot_leave_the_site_in_a_real_browser(
    guarded: DaemonProcess, tmp_path: Path
) -> None:
    require_chromium()
    b = Browser(tmp_path / "profile")
    try:
        b.goto(guarded.base + "/login?next=" + quote("/\t/evil.example/x", safe=""))
        b.evaluate("document.getElementById('token').focus()")  # not left to autofocus under load
        assert b.evaluate("document.activeElement.id") == "token"
        b.type_text(VIEWER)
        b.press_enter_and_wait()
        assert b.evaluate("location.host") == f"127.0.0.1:{guarded.port}"
        assert {urlsplit(url).hostname for url in b.requests() if url.startswith("http")} == {"127.0.0.1"}
    finally:
        b.close()


def test_sign_out_from_another_site_is_refused(guarded: DaemonProcess) -> None:
    r = httpx.post(
        guarded.base + "/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers
    ours = httpx.post(guarded.base + "/logout", headers={"Origin": guarded.base}, follow_redirects=False)
    assert ours.status_code == 303 and 'finops_view=""' in ours.headers["set-cookie"]


@pytest.mark.parametrize(
    ("tokens", "said"),
    [
        ("finance=abc", "the token of 'finance' is shorter than 16 characters"),  # /login has no lockout
        (f"finance={TOKEN}", "the token of 'finance' is also an ingest token"),  # would open the pages
    ],
)
def test_a_guessable_or_shared_viewer_token_stops_the_start(tmp_path: Path, tokens: str, said: str) -> None:
    daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'f.db'}", FINOPS_DASHBOARD_TOKENS=tokens)
    with pytest.raises(RuntimeError, match="daemon exited"):
        daemon.start(timeout_s=20)
    log = daemon.log.read_text()
    assert said in log and "Traceback" not in log


def test_behind_a_proxy_the_public_url_is_the_dashboards_own_origin(tmp_path: Path) -> None:
    """nginx's default sends the upstream's address as Host, so the browser's Origin (the public
    name) never equals it: with FINOPS_PUBLIC_URL set, that origin may sign in and out; others not."""
    daemon = DaemonProcess(
        tmp_path,
        f"sqlite:///{tmp_path / 'f.db'}",
        FINOPS_DASHBOARD_TOKENS=f"finance={VIEWER}",
        FINOPS_PUBLIC_URL="https://finops.example.com/",
    ).start()
    try:
        form = {"token": VIEWER, "next": "/spend"}
        ours = httpx.post(daemon.base + "/login", data=form, headers={"Origin": "https://finops.example.com"})
        assert ours.status_code == 303 and ours.headers["location"] == "/spend"
        assert "Secure" in ours.headers["set-cookie"]
        for other in ("https://evil.example", "http://finops.example.com", "https://finops.example.com.evil"):
            r = httpx.post(daemon.base + "/login", data=form, headers={"Origin": other})
            assert r.status_code == 403 and "set-cookie" not in r.headers, other
        out = httpx.post(daemon.base + "/logout", headers={"Origin": "https://finops.example.com"})
        assert out.status_code == 303
    finally:
        daemon.stop()


def test_a_sign_in_post_with_more_fields_than_the_form_is_a_400(guarded: DaemonProcess) -> None:
    r = httpx.post(guarded.base + "/login", content=b"a=1&b=2&c=3&d=4&e=5&token=x", follow_redirects=False)
    assert r.status_code == 400 and "set-cookie" not in r.headers and "sign-in form" in r.text
