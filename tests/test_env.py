"""``finops.env`` reads FINOPS_DATABASE_URL and FINOPS_BUDGETS_DIR exactly as ``Settings`` does.

The fast commands (`spend`, `check`) read these two without building Settings; if the two
ways ever disagreed, a command would silently open another database than the daemon.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finops.env import budgets_dir, database_url, read_database_url
from finops.settings import Settings

CASES = [
    pytest.param({}, None, id="defaults"),
    pytest.param({"FINOPS_DATABASE_URL": "sqlite:///env.db"}, None, id="environment"),
    pytest.param({"finops_database_url": "sqlite:///lower.db"}, None, id="lower-case name"),
    pytest.param({}, "FINOPS_DATABASE_URL=sqlite:///dotenv.db\n", id=".env"),
    pytest.param(
        {"FINOPS_DATABASE_URL": "sqlite:///env-wins.db"},
        "FINOPS_DATABASE_URL=sqlite:///dotenv.db\n",
        id="environment over .env",
    ),
    pytest.param({}, "export FINOPS_DATABASE_URL='sqlite:///quoted.db'  # comment\n", id=".env quoted"),
    pytest.param({"FINOPS_BUDGETS_DIR": "team/budgets"}, None, id="budgets from environment"),
    pytest.param({}, "finops_budgets_dir=from-dotenv\n", id="budgets from .env, lower case"),
]


@pytest.mark.parametrize(("env", "dotenv"), CASES)
def test_the_fast_path_reads_what_settings_reads(
    env: dict[str, str], dotenv: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("FINOPS_DATABASE_URL", "FINOPS_BUDGETS_DIR", "finops_database_url", "finops_budgets_dir"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    settings = Settings()
    assert database_url() == settings.database_url
    assert budgets_dir() == settings.budgets_dir


def test_db_option_wins_and_a_path_becomes_a_sqlite_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", "sqlite:///ignored.db")
    assert database_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("env", "dotenv"),
    [
        pytest.param({}, None, id="unset"),
        pytest.param({"FINOPS_READ_DATABASE_URL": ""}, None, id="empty is unset"),
        pytest.param(
            {"finops_read_database_url": "postgresql+psycopg://u@replica/db"}, None, id="lower case"
        ),
        pytest.param({}, "FINOPS_READ_DATABASE_URL=postgresql+psycopg://u@replica/db\n", id=".env"),
    ],
)
def test_the_fast_path_reads_the_read_url_as_settings_does(
    env: dict[str, str], dotenv: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("FINOPS_READ_DATABASE_URL", "finops_read_database_url"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINOPS_DATABASE_URL", "postgresql+psycopg://u@primary/db")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    assert read_database_url() == Settings().read_database_url
    assert read_database_url("postgresql+psycopg://u@other/db") is None  # --db: reads there too
