"""Settings from ``FINOPS_*`` environment variables or a ``.env`` file, built once at the entry point."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

DEFAULT_DATABASE_URL = "sqlite:///finops.db"


class Settings(BaseSettings):
    """Everything an operator can set. Passed down explicitly; nothing reads the environment later."""

    model_config = SettingsConfigDict(
        env_prefix="FINOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path.db (default ./finops.db) or "
        "postgresql+psycopg://user@host/db",
    )
    user_hash_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key for pseudonymising `user`. Unset: a random key is "
        "generated once and kept in the database.",
    )
    price_overrides: Path | None = Field(
        default=None, description="YAML file of negotiated prices, private models and discounts."
    )
    ingest_batch_size: int = Field(default=5000, ge=1, le=100_000)
    budgets_dir: Path = Path("budgets")

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "FINOPS_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://, "
                f"got {value.split(':', 1)[0]!r}"
            )
        return value
