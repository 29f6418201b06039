"""The dashboard while PostgreSQL is down: every page is a one-line 503 that retries itself, never
a 500, a traceback or a light; and the pages come back when the server does, without a restart.

A throwaway PostgreSQL server of our own (initdb in a temp dir), stopped with ``pg_ctl stop -m
immediate`` under the real daemon.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.daemon_proc import DaemonProcess
from tests.faults.test_08_database_outage import ThrowawayPostgres, throwaway_postgres  # noqa: F401

PAGES = [
    "/", "/flows/support", "/outcomes", "/prompts", "/spend", "/spend?by=day&period=range&since=30d",
    "/spend.csv", "/spend.json", "/prompts?month=2026-11", "/outcomes?month=2026-11",
]  # fmt: skip


def test_every_page_is_a_503_while_the_database_is_down(
    throwaway_postgres: ThrowawayPostgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    pg = throwaway_postgres
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    (budgets / "b.yaml").write_text(
        'budgets:\n  - {flow: support, owner: U01, daily_cap_usd: "100", timezone: Europe/Berlin}\n'
    )
    daemon = DaemonProcess(tmp_path, pg.url, budgets=budgets).start()
    try:
        now = datetime.now(UTC).isoformat()
        record = {"id": "r1", "ts": now, "provider": "openai", "model": "gpt-4o-mini", "flow": "support",
                  "input_tokens": 1000, "output_tokens": 10}  # fmt: skip
        with daemon.client() as c:
            assert c.post("/v1/usage", json=[record]).json()["stored"] == 1
        with httpx.Client(base_url=daemon.base, timeout=60) as web:
            assert {p: web.get(p).status_code for p in PAGES} == dict.fromkeys(PAGES, 200)
            pg.stop()
            for _ in range(2):  # the first request finds the outage, the next ones know it
                for path in PAGES:
                    r = web.get(path)
                    assert r.status_code == 503, (path, r.status_code, r.text[-300:])
                    assert r.headers["retry-after"] and r.headers["refresh"] == r.headers["retry-after"]
                    assert "data-state" not in r.text and "Traceback" not in r.text
                    assert "The database cannot answer right now" in r.text
                    assert r.headers["content-security-policy"].startswith("default-src 'none'")
            pg.start()
            deadline = datetime.now(UTC).timestamp() + 30
            while web.get("/").status_code != 200:
                assert datetime.now(UTC).timestamp() < deadline, "the overview did not come back"
            assert 'data-tile="budget:support"' in web.get("/").text
        assert not [line for line in daemon.logs() if "Traceback" in str(line.get("error", ""))]
    finally:
        daemon.stop()
