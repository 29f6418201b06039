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
    "read_database_url",
    "read_split_problem",
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


def known_scheme(url: str, name: str = "FINOPS_DATABASE_URL") -> str | None:
    """Why ``url`` cannot be the setting ``name`` (the words ``Settings`` uses too), or None."""
    if url.startswith(("sqlite", "postgresql")):
        return None
    return (
        f"{name} must start with sqlite:/// or postgresql+psycopg://, "
        f"got {url.split(':', 1)[0]!r}"  # the scheme only: the rest may hold a password
    )


def read_split_problem(primary: str, read: str) -> str | None:
    """Why FINOPS_READ_DATABASE_URL ``read`` cannot serve reads for the primary ``primary``, or None.

    Only a PostgreSQL primary has replicas finops can read: a SQLite file has no second copy
    that follows it, and a SQLite copy of a PostgreSQL ledger is not a replica but another
    database, whose answers would silently disagree with the budgets decided on the primary.
    """
    why = known_scheme(read, "FINOPS_READ_DATABASE_URL")
    if why is not None:
        return why
    if not primary.startswith("postgresql"):
        return (
            "FINOPS_READ_DATABASE_URL needs a PostgreSQL FINOPS_DATABASE_URL: a SQLite ledger has "
            "no replicas (its readers never wait for the writer); unset FINOPS_READ_DATABASE_URL"
        )
    if not read.startswith("postgresql"):
        return (
            "FINOPS_READ_DATABASE_URL must be a PostgreSQL replica of FINOPS_DATABASE_URL "
            "(postgresql+psycopg://...), not a SQLite file"
        )
    return None


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


def read_database_url(db: str | None = None) -> str | None:
    """FINOPS_READ_DATABASE_URL, or None when it is unset, empty, or ``--db`` names the database:
    ``--db`` is the one database a command uses, reads included (a replica of another primary
    would answer for the wrong ledger).

    Raises:
        ConfigError: it cannot serve reads for the primary (:func:`read_split_problem`).
    """
    if db:
        return None
    read = env_value("read_database_url") or None
    if read is None:
        return None
    why = read_split_problem(database_url(), read)
    if why is not None:
        from finops.errors import ConfigError

        raise ConfigError(why)
    return read


def budgets_dir() -> Path:
    """FINOPS_BUDGETS_DIR, else ./budgets."""
    value = env_value("budgets_dir")
    return Path(value) if value is not None else DEFAULT_BUDGETS_DIR
