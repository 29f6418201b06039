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
    ingest_workers: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Parser processes for large files (0: parse in the ingesting process).",
    )
    prompt_preview: bool = Field(
        default=False,
        description="Keep a redacted preview (numbers, ids, emails, dates masked) of each prompt's text.",
    )
    budgets_dir: Path = Field(default=Path("budgets"), description="Budget YAML files (DESIGN.md §4).")
    slack_bot_token: SecretStr | None = Field(
        default=None,
        description="Bot token (xoxb-...) with chat:write; channels:history lets finops "
        "check an interrupted send before sending it again.",
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Or an incoming-webhook URL (one fixed channel)."
    )
    slack_default_channel: str | None = Field(
        default=None, description="Channel for budgets without slack_channel."
    )
    slack_base_url: str | None = Field(
        default=None, description="Slack Web API base URL (tests, proxies); default Slack's own."
    )
    slack_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "FINOPS_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://, "
                f"got {value.split(':', 1)[0]!r}"
            )
        return value
