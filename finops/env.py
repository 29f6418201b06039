"""A ``FINOPS_*`` value read exactly as ``Settings`` reads it, without loading pydantic.

``finops spend`` and ``finops check`` need two settings (the database URL, the budget
folder) and nothing else; building ``Settings`` imports pydantic-settings, which costs
more than the rest of the command. These read the same sources in the same order:
the environment (names compared case-insensitively, as Settings does), then ``./.env``,
then the default. Commands that need any other setting build ``Settings`` as before,
and ``tests/test_env.py`` holds the two ways equal.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_BUDGETS_DIR",
    "DEFAULT_DATABASE_URL",
    "budgets_dir",
    "database_url",
    "env_value",
    "known_scheme",
]

DEFAULT_DATABASE_URL = "sqlite:///finops.db"
DEFAULT_BUDGETS_DIR = Path("budgets")
_PREFIX = "finops_"
_ENV_FILE = ".env"


def env_value(field: str) -> str | None:
    """``FINOPS_<FIELD>`` from the environment, else from ``./.env``; ``None`` when unset."""
    wanted = _PREFIX + field.lower()
    found: str | None = None
    for key, value in os.environ.items():
        if key.lower() == wanted:
            found = value  # like Settings: with two spellings set, the last one read wins
    if found is not None:
        return found
    if not Path(_ENV_FILE).is_file():
        return None
    from dotenv import dotenv_values

    for key, dot_value in dotenv_values(_ENV_FILE, encoding="utf-8").items():
        if key.lower() == wanted and dot_value is not None:
            found = dot_value
    return found


def known_scheme(url: str) -> str | None:
    """Why ``url`` cannot be FINOPS_DATABASE_URL (the words ``Settings`` uses too), or None."""
    if url.startswith(("sqlite", "postgresql")):
        return None
    return (
        "FINOPS_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://, "
        f"got {url.split(':', 1)[0]!r}"  # the scheme only: the rest may hold a password
    )


def database_url(db: str | None = None) -> str:
    """``--db`` (a URL, or a SQLite file path), else FINOPS_DATABASE_URL, else ./finops.db.

    Raises:
        ConfigError: FINOPS_DATABASE_URL is not a SQLite or PostgreSQL URL.
    """
    if db:
        return db if "://" in db else f"sqlite:///{Path(db).expanduser()}"
    url = env_value("database_url") or DEFAULT_DATABASE_URL
    why = known_scheme(url)
    if why is not None:
        from finops.errors import ConfigError

        raise ConfigError(why)
    return url


def budgets_dir() -> Path:
    """FINOPS_BUDGETS_DIR, else ./budgets."""
    value = env_value("budgets_dir")
    return Path(value) if value is not None else DEFAULT_BUDGETS_DIR
