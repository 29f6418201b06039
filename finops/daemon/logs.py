"""Structured logs: one JSON object a line on stderr (``text`` for people at a terminal).

Fields passed as ``extra={...}`` become keys of the line, so logs can be searched by job,
budget, source or provider without parsing sentences.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy.exc import StatementError

from finops.storage.db import describe_db_error

__all__ = ["configure_logging"]

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message", "taskName"}


_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


_DRIVERS = {"psycopg", "psycopg2", "sqlite3"}  # their errors, chained under SQLAlchemy's, carry values too


def format_exception(exc_info: _ExcInfo) -> str:
    """A traceback whose database errors say their kind and SQLSTATE only: PostgreSQL writes the
    refused value (an email, a prompt) into its message, and logs must never hold it."""
    value = exc_info[1]
    if value is None:
        return ""
    parts = []
    seen: set[int] = set()
    exc: BaseException | None = value
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = "".join(traceback.format_tb(exc.__traceback__))
        if isinstance(exc, StatementError) or type(exc).__module__.split(".")[0] in _DRIVERS:
            what = f"{type(exc).__name__}: {describe_db_error(exc)}"
        else:
            what = traceback.format_exception_only(exc)[-1].strip()
        parts.append(f"Traceback (most recent call last):\n{frames}{what}")
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return "\n\nwhich was raised while handling:\n\n".join(reversed(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["error"] = format_exception(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        )
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()}" + (
            f"  {extras}" if extras else ""
        )
        if record.exc_info:
            line += "\n" + format_exception(record.exc_info)
        return line


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Send finops's and uvicorn's logs to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A connection lost mid-batch makes psycopg warn "error ignored terminating <Pipeline>" once per
    # pooled connection; the outage already has its line (finops.database), and its errors raise.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
