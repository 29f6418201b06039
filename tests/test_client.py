"""finops.client against the real daemon (a subprocess), on SQLite and PostgreSQL: a hold is
settled by its usage, a deny raises, an exception releases, a retry after a timeout holds once,
and no answer (closed port, database down) is never an allow."""

from __future__ import annotations

import resource
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from finops.client import BudgetExceeded, FinopsClient, FinopsClientError, FinopsUnavailable
from tests.conftest import fresh_postgres_database, make_ledger
from tests.daemon_proc import TOKEN, DaemonProcess, free_port
from tests.faults.test_08_database_outage import PipedDaemon, ThrowawayPostgres, throwaway_postgres

__all__ = ["throwaway_postgres"]  # the fixture, used below by name

MODEL = "gpt-4o-2024-08-06"  # $10 per million output tokens: 1,000 output tokens cost exactly $0.01
FLOWS = ("f-settle", "f-deny", "f-release", "f-retry", "f-check")
BUDGETS = "budgets:\n" + "".join(
    f"  - flow: {flow}\n    owner: '@o'\n    daily_cap_usd: 0.05\n    on_breach: block\n" for flow in FLOWS
)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    """One daemon per database for the module; each test spends on its own flow."""
    tmp = tmp_path_factory.mktemp(f"client-{request.param}")
    budgets = tmp / "budgets"
    budgets.mkdir()
    (budgets / "caps.yaml").write_text(BUDGETS)
    if request.param == "sqlite":
        proc = DaemonProcess(tmp, f"sqlite:///{tmp / 'finops.db'}", budgets=budgets).start()
        yield proc
        proc.stop()
        return
    with fresh_postgres_database() as url:
        proc = DaemonProcess(tmp, url, budgets=budgets).start()
        yield proc
        proc.stop()


@pytest.fixture
def client(daemon: DaemonProcess) -> Iterator[FinopsClient]:
    with FinopsClient(daemon.base, TOKEN, timeout=10) as c:
        yield c


def usage(record_id: str, output_tokens: int) -> dict[str, Any]:
    return {
        "id": record_id,
        "ts": datetime.now(UTC).isoformat(),
        "provider": "openai",
        "model": MODEL,
        "input_tokens": 0,
        "output_tokens": output_tokens,
    }


def held_and_spent(client: FinopsClient, flow: str) -> tuple[Decimal, Decimal]:
    answer = client.check(flow)
    return Decimal(answer.answer["held_usd"]), Decimal(answer.answer["spend_usd"])


def test_allow_then_settle_replaces_the_hold_with_the_actual_cost(client: FinopsClient) -> None:
    with client.reserve("f-settle", model=MODEL, input_tokens=0, max_output_tokens=1000) as hold:
        assert hold.estimate_usd == Decimal("0.01") and hold.reservation_id.startswith("rsv_")
        assert held_and_spent(client, "f-settle") == (Decimal("0.01"), 0)
        answer = hold.settle(usage("settle-1", 500))  # the call used half its budget of tokens
    assert answer["stored"] == 1 and hold.state == "settled"
    assert held_and_spent(client, "f-settle") == (0, Decimal("0.005"))
    assert client.release(hold.reservation_id) == "settled"  # a settled hold stays settled


def test_a_deny_raises_budget_exceeded_with_the_reason_and_the_answer(client: FinopsClient) -> None:
    with client.reserve("f-deny", estimate_usd="0.05") as hold:  # reaching the cap exactly is allowed
        with pytest.raises(BudgetExceeded) as denied:
            client.reserve("f-deny", estimate_usd=Decimal("0.000000001"))
        hold.settle(usage("deny-1", 6000))  # the call cost more than held: $0.06
    assert "f-deny" in denied.value.reason and denied.value.answer["allow"] is False
    assert denied.value.answer["decision"] == "deny"
    with pytest.raises(BudgetExceeded, match="exhausted"):
        client.reserve("f-deny", estimate_usd=0)  # spend is at the cap: nothing more


def test_an_exception_in_the_block_releases_the_hold(client: FinopsClient) -> None:
    with pytest.raises(RuntimeError), client.reserve("f-release", estimate_usd="0.04") as hold:
        assert held_and_spent(client, "f-release")[0] == Decimal("0.04")
        raise RuntimeError("the LLM call failed")
    assert hold.state == "released" and held_and_spent(client, "f-release") == (0, 0)
    with client.reserve("f-release", estimate_usd="0.05") as unsettled:
        pass  # leaving without settling releases too
    assert unsettled.state == "released" and held_and_spent(client, "f-release") == (0, 0)
    with client.reserve("f-release", estimate_usd="0.05"):  # the whole cap is free again
        pass


class _SlowFirstReserve(BaseHTTPRequestHandler):
    """Forwards to the daemon; the first reserve's answer comes after the client gave up."""

    daemon_base = ""
    delayed: ClassVar[list[str]] = []

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        answer = httpx.request(self.command, self.daemon_base + self.path, content=body, headers=headers)
        if self.path.endswith("/reserve") and not self.delayed:
            self.delayed.append(self.path)
            time.sleep(1.5)  # stored and decided by the daemon; the client's timeout is 0.5 s
        try:
            self.send_response(answer.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)
        except OSError:
            pass  # the client hung up

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


def test_a_retry_after_a_timeout_does_not_hold_twice(daemon: DaemonProcess, client: FinopsClient) -> None:
    handler = type("Handler", (_SlowFirstReserve,), {"daemon_base": daemon.base, "delayed": []})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serving = threading.Thread(target=proxy.serve_forever, daemon=True)
    serving.start()
    try:
        slow = FinopsClient(f"http://127.0.0.1:{proxy.server_port}", TOKEN, timeout=0.5, retries=2)
        with slow, slow.reserve("f-retry", estimate_usd="0.03") as hold:
            # held once: a second hold of $0.03 would have passed the $0.05 cap and been denied
            assert handler.delayed and held_and_spent(client, "f-retry")[0] == Decimal("0.03")
            with client.reserve("f-retry", estimate_usd="0.02"):  # exactly the rest of the cap
                pass
            assert hold.answer.get("replayed") is True  # the retry got the first answer back
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert held_and_spent(client, "f-retry") == (0, 0)


def test_check_record_usage_and_refusals(client: FinopsClient) -> None:
    answer = client.check("f-check", estimate_usd="0.06")
    assert answer.allow is False and answer.held_usd == 0
    assert client.record_usage({**usage("check-1", 1000), "flow": "f-check"})["stored"] == 1
    assert client.check("f-check").remaining_usd == Decimal("0.04")
    with pytest.raises(FinopsClientError, match="say what to hold") as refused:
        client.reserve("f-check", model=MODEL)  # no token counts: a 400, not retried, not an allow
    assert refused.value.status == 400 and not isinstance(refused.value, FinopsUnavailable)
    with pytest.raises(FinopsClientError, match="no reservation"):
        client.release("rsv_unknown")
    with pytest.raises(TypeError, match="exact"):
        client.reserve("f-check", estimate_usd=0.01)  # type: ignore[arg-type]


def test_no_daemon_listening_fails_closed() -> None:
    with FinopsClient(f"http://127.0.0.1:{free_port()}", TOKEN, retries=1, retry_wait_s=0.01) as c:
        with pytest.raises(FinopsUnavailable, match="no decision"):
            c.reserve("anything", estimate_usd="0.01")
        with pytest.raises(FinopsUnavailable):
            c.check("anything")


def test_postgres_down_fails_closed(tmp_path: Path, throwaway_postgres: ThrowawayPostgres) -> None:
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    (budgets / "caps.yaml").write_text(BUDGETS)
    proc = DaemonProcess(tmp_path, throwaway_postgres.url, budgets=budgets).start()
    try:
        with FinopsClient(proc.base, TOKEN, retries=1, retry_wait_s=0.01) as c:
            c.reserve("f-settle", estimate_usd="0.01").release()
            throwaway_postgres.stop("immediate")
            with pytest.raises(FinopsUnavailable) as down:
                c.reserve("f-settle", estimate_usd="0.01")
            assert down.value.status == 503
    finally:
        proc.stop(signal.SIGKILL)


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit(2) is Linux-only")
def test_sqlite_full_disk_fails_closed(tmp_path: Path, sqlite_url: str) -> None:
    make_ledger(sqlite_url).close()
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    (budgets / "caps.yaml").write_text(BUDGETS)
    proc = PipedDaemon(tmp_path, sqlite_url, budgets=budgets).start()
    assert proc.proc is not None
    try:
        with FinopsClient(proc.base, TOKEN, retries=1, retry_wait_s=0.01) as c:
            c.reserve("f-settle", estimate_usd="0.01").release()
            _, hard = resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE, (1, hard))  # the disk is full
            with pytest.raises(FinopsUnavailable) as down:
                c.reserve("f-settle", estimate_usd="0.01")
            assert down.value.status == 503
    finally:
        proc.stop(signal.SIGKILL)
