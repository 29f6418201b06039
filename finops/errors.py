"""The one exception tree of finops. Every message says what is wrong and how to fix it.

    FinopsError
    ├── ConfigError             settings or a file an operator wrote
    │   ├── BudgetFileError     a budget YAML file (file:line: what is wrong)
    │   └── PriceFileError      a price book, override or import file
    ├── UsageError              bad command-line arguments (CLI exit code 2)
    ├── IngestError             a source could not be read at all (not a bad line)
    ├── PricingError            the price book cannot answer a question
    ├── StorageError            the database is missing, old, or refused a write
    └── NotifyError             Slack delivery failed permanently

Bad *records* are not exceptions at this level: they become dead letters with a
reason (`finops.domain.usage.RecordError`) and never stop the good ones.
"""

from __future__ import annotations

__all__ = [
    "BudgetFileError",
    "ConfigError",
    "FinopsError",
    "IngestError",
    "NotifyError",
    "PriceFileError",
    "PricingError",
    "StorageError",
    "UsageError",
]


class FinopsError(Exception):
    """Base of every error finops raises on purpose; the CLI prints its message."""

    exit_code = 1


class ConfigError(FinopsError):
    """Settings, or a file an operator wrote, are invalid."""


class BudgetFileError(ConfigError):
    """A budget file is invalid; the message starts with ``file:line:``."""


class PriceFileError(ConfigError):
    """A price catalog, override or import file is invalid."""


class UsageError(FinopsError):
    """Command-line arguments are invalid."""

    exit_code = 2


class IngestError(FinopsError):
    """A source as a whole cannot be read (missing file, unreadable gzip)."""


class PricingError(FinopsError):
    """The price book cannot answer (for example an unknown model in `prices show`)."""


class StorageError(FinopsError):
    """The database is unreachable, not migrated, or refused a write."""


class NotifyError(FinopsError):
    """Delivery to Slack failed permanently."""
