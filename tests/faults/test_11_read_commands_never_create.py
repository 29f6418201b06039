"""Item 11: a command pointed at the wrong database fails (exit 1, one line) and creates nothing:
no SQLite file, no table in a PostgreSQL database; `finops check` never answers allow then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from tests.daemon_proc import free_port

READ_COMMANDS = [
    ["spend"],
    ["check", "support-gpt-en"],
    ["budgets", "status"],
    ["outcomes"],
    ["prompts", "top"],
    ["dead-letters"],
    ["prices", "unpriced"],
    ["alerts", "list"],
    ["report", "monthly", "--month", "2026-10"],
    ["reconcile", "--month", "2026-10"],
    ["db", "rebuild-rollups"],
]


def finops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "finops", *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "typo" / "finops.db"
    typo.parent.mkdir()
    done = finops(*command, "--db", str(typo), cwd=tmp_path)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert (
        done.stderr.strip() == f"error: no finops database at {typo}: run `finops db upgrade` to create one"
    )
    assert not typo.exists() and list(typo.parent.iterdir()) == []


@pytest.mark.postgres
def test_a_database_without_finops_gets_no_tables(postgres_url: str, tmp_path: Path) -> None:
    for command in (["spend"], ["check", "support-gpt-en"], ["budgets", "status"], ["alerts", "list"]):
        done = finops(*command, "--db", postgres_url, cwd=tmp_path)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "no finops database at" in done.stderr and "Traceback" not in done.stderr
    engine = create_engine(postgres_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_check_on_an_unreachable_database_exits_1_not_allow(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"  # nobody listens there
    done = finops("check", "support-gpt-en", "--db", url, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.startswith("error: cannot open the database") and "Connection refused" in done.stderr


def test_the_daemon_needs_init_to_create_its_database(tmp_path: Path) -> None:
    (tmp_path / "budgets").mkdir()
    done = finops("run", "--db", str(tmp_path / "new.db"), "--port", str(free_port()), "--once", cwd=tmp_path)
    assert done.returncode == 1 and "no finops database at" in done.stderr
    assert not (tmp_path / "new.db").exists()
    done = finops(
        "run", "--db", str(tmp_path / "new.db"), "--port", str(free_port()), "--once", "--init", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new.db").exists()
