"""The real daemon for the admission benches: a subprocess on a free port, and fresh databases."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

TOKEN = "bench-token-0123456789abcdef"
FLOW = "bench-flow"
#: gpt-4o-2024-08-06 bills $10 per million output tokens: 1,000 of them cost exactly $0.01.
CENT_RECORD = {"provider": "openai", "model": "gpt-4o-2024-08-06", "input_tokens": 0, "output_tokens": 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_budget(folder: Path, cap_usd: str) -> None:
    """One blocking budget on the bench's flow (UTC day, so the spend is today's)."""
    (folder / "bench.yaml").write_text(
        f'budgets:\n  - flow: {FLOW}\n    owner: "@owner"\n    daily_cap_usd: {cap_usd}\n    on_breach: block\n'
    )


@contextmanager
def daemon(url: str, budgets: Path) -> Iterator[int]:
    """``python -m finops run --init`` on a free port until the block ends; yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "finops", "run", "--init", "--port", str(port)]
    env = {**os.environ, "FINOPS_INGEST_TOKENS": f"bench={TOKEN}", "FINOPS_LOG_FORMAT": "json"}
    with (budgets / "daemon.log").open("ab") as log:
        proc = subprocess.Popen(
            [*command, "--db", url, "--budgets", str(budgets)],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError((budgets / "daemon.log").read_text())
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (budgets / "daemon.log").read_text()[-2000:]


@contextmanager
def fresh_database(tmp: Path, admin_url: str | None, label: str) -> Iterator[str]:
    """A SQLite file in ``tmp``, or a new PostgreSQL database dropped afterwards."""
    if admin_url is None:
        yield f"sqlite:///{tmp / label}.db"
        return
    name = f"finops_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def targets(postgres: str | None) -> list[tuple[str, str | None]]:
    """SQLite always; PostgreSQL when a URL is given or FINOPS_TEST_POSTGRES_URL is set."""
    found: list[tuple[str, str | None]] = [("sqlite", None)]
    admin = postgres or os.environ.get("FINOPS_TEST_POSTGRES_URL")
    if admin:
        found.append(("postgresql", admin))
    return found
