"""Settings from ``FINOPS_*`` environment variables or a ``.env`` file, built once at the entry point."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "describe_settings_error", "load_settings"]

from finops.env import DEFAULT_BUDGETS_DIR, DEFAULT_DATABASE_URL, known_scheme


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
    read_database_url: str | None = Field(
        default=None,
        description="A PostgreSQL replica of database_url for the dashboard, reports, spend, prompts, "
        "outcomes and the FOCUS export (unset: the primary). Writes and budget decisions stay on "
        "the primary; --db turns it off.",
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
    budgets_dir: Path = Field(
        default=DEFAULT_BUDGETS_DIR, description="Budget YAML files (docs/design.md §4)."
    )
    admit_unpriced: bool = Field(
        default=False,
        description="Let a reserve on a blocking budget hold $0 for a model with no price and no "
        "estimate_usd (off: such a call is denied, since its cost cannot be bounded).",
    )
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

    # --- the daemon (`finops run`) -----------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(default=8787, ge=0, le=65535, description="Port of the HTTP API (0: any free port).")
    ingest_tokens: SecretStr | None = Field(
        default=None,
        description="Bearer tokens per source: `source=token` pairs, comma-separated. The source of "
        "every record sent with a token is the token's source, never the payload's.",
    )
    dashboard_tokens: SecretStr | None = Field(
        default=None,
        description="Read-only tokens of the web dashboard, comma-separated (`name=token` pairs or bare "
        "tokens; not the ingest tokens). Unset: the dashboard answers on loopback only.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where people reach this daemon (https://finops.example.com): Slack alerts and "
        "digests link to the dashboard's flow pages there.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_batch_records: int = Field(default=10_000, ge=1, le=1_000_000, description="Most records a request.")
    max_connections: int = Field(
        default=256,
        ge=1,
        description="Connections and requests served at once; more get 503 (bounds memory: each "
        "request may hold up to max_body_bytes).",
    )
    cycle_s: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds between daemon cycles (budgets, alerts, schedules)."
    )
    schedule_tz: str = Field(default="UTC", description="IANA zone of the digest and report schedules.")
    digest_time: str = Field(
        default="09:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time of the daily digest (HH:MM, 00:00-23:59).",
    )
    digest_channel: str | None = Field(
        default=None, description="Slack channel of the scheduled digest and monthly report (unset: off)."
    )
    retention_days: int = Field(
        default=90,
        ge=35,
        description="Raw usage records older than this are deleted; rollups are kept. At least 35, so "
        "last month's raw records are all there when its report is built.",
    )
    prompt_preview_retention_days: int = Field(
        default=30, ge=1, description="Redacted prompt previews not seen for this long are deleted."
    )
    log_format: str = Field(default="json", pattern="^(json|text)$", description="Daemon log lines.")

    # --- provider usage pollers and reconciliation --------------------------------------------
    openai_admin_key: SecretStr | None = Field(
        default=None, description="OpenAI admin key (sk-admin-...): enables the usage and cost poller."
    )
    openai_base_url: str = Field(default="https://api.openai.com", description="OpenAI API base URL.")
    anthropic_admin_key: SecretStr | None = Field(
        default=None, description="Anthropic admin key (sk-ant-admin...): enables the usage and cost poller."
    )
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com", description="Anthropic API base URL."
    )
    poll_interval_s: float = Field(
        default=900.0, ge=1, description="Seconds between provider usage polls (their data lags minutes)."
    )
    poll_start_days: int = Field(
        default=35, ge=1, le=400, description="How far back the first poll of a provider starts."
    )
    reconcile_threshold_pct: Decimal = Field(
        default=Decimal("5"), ge=0, description="Alert when a provider day drifts more than this percent..."
    )
    reconcile_min_usd: Decimal = Field(
        default=Decimal("1"), ge=0, description="...and by more than this many dollars."
    )
    reconcile_channel: str | None = Field(
        default=None, description="Slack channel of reconciliation alerts (default: slack_default_channel)."
    )

    def viewer_tokens(self) -> dict[str, str]:
        """FINOPS_DASHBOARD_TOKENS as token -> viewer name (``viewer-N`` for a bare token)."""
        raw = self.dashboard_tokens.get_secret_value() if self.dashboard_tokens else ""
        tokens: dict[str, str] = {}
        for index, item in enumerate(p.strip() for p in raw.split(",")):
            if not item:
                continue
            name, sep, token = item.partition("=")
            name, token = (name.strip(), token.strip()) if sep else (f"viewer-{index + 1}", item)
            if not name or not token:
                raise ValueError(
                    f"FINOPS_DASHBOARD_TOKENS item {index + 1} is empty on one side of `=` "
                    "(write `name=token` or a bare token, comma-separated)"
                )
            if token in tokens:
                raise ValueError(f"FINOPS_DASHBOARD_TOKENS item {index + 1} repeats a token")
            if len(token) < 16:  # /login has no lockout: a short token is guessed
                raise ValueError(
                    f"FINOPS_DASHBOARD_TOKENS: the token of {name!r} is shorter than 16 characters "
                    "(use e.g. `openssl rand -hex 16`)"
                )
            tokens[token] = name
        raw_ingest = self.ingest_tokens.get_secret_value() if self.ingest_tokens else ""
        ingest = {item.partition("=")[2].strip() or item.strip() for item in raw_ingest.split(",")}
        for token, name in tokens.items():
            if token in ingest:  # read-only must stay read-only: the same token would also ingest
                raise ValueError(
                    f"FINOPS_DASHBOARD_TOKENS: the token of {name!r} is also an ingest token "
                    "(FINOPS_INGEST_TOKENS); give the dashboard its own"
                )
        return tokens

    def source_tokens(self) -> dict[str, str]:
        """FINOPS_INGEST_TOKENS as token -> source; a malformed pair is an error that names it."""
        raw = self.ingest_tokens.get_secret_value() if self.ingest_tokens else ""
        tokens: dict[str, str] = {}
        for index, pair in enumerate(p.strip() for p in raw.split(",")):
            if not pair:
                continue
            source, sep, token = pair.partition("=")
            source, token = source.strip(), token.strip()
            if not sep or not source or not token:
                raise ValueError(
                    f"FINOPS_INGEST_TOKENS pair {index + 1} is not `source=token` "
                    "(write e.g. `support-app=3f9c...,gateway=81aa...`)"
                )
            if len(token) < 16:
                raise ValueError(
                    f"FINOPS_INGEST_TOKENS: the token of {source!r} is shorter than 16 characters"
                )
            if token in tokens:
                raise ValueError(
                    f"FINOPS_INGEST_TOKENS: two sources share one token ({tokens[token]!r}, {source!r})"
                )
            tokens[token] = source
        return tokens

    @field_validator("schedule_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        """Slack links are built on it: an http(s) address with a host, nothing a link cannot hold."""
        if value is None or value == "":
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "not an http:// or https:// address: set where people reach the dashboard, "
                "like https://finops.example.com"
            )
        if any(c.isspace() or c in '<>|"' or ord(c) < 32 for c in value):
            raise ValueError('holds a space, a control character or one of < > | ": percent-encode it')
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        why = known_scheme(value)
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("read_database_url")
    @classmethod
    def _known_read_scheme(cls, value: str | None) -> str | None:
        """Empty is unset (``FINOPS_READ_DATABASE_URL=`` in a .env); whether it suits the primary is
        checked where the two meet (``Ledger.open``), after ``--db`` may have replaced the primary."""
        if not value:
            return None
        why = known_scheme(value, "FINOPS_READ_DATABASE_URL")
        if why is not None:
            raise ValueError(why)
        return value


def load_settings(config: Path | None = None) -> Settings:
    """Settings from FINOPS_* variables, then ``.env``, then a TOML ``config`` file (the same names,
    lower case, without the prefix: ``database_url = "..."``). Variables win over the file.

    Raises:
        ConfigError: a setting has a value it does not take; one line per bad setting, each
            naming the variable and what it takes.
    """
    from finops.errors import ConfigError

    try:
        return _load(config)
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, config)) from None


def _load(config: Path | None) -> Settings:
    if config is None:
        return Settings()
    if not config.is_file():
        from finops.errors import ConfigError

        raise ConfigError(f"config file {config} does not exist")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config})

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            toml = TomlConfigSettingsSource(settings_cls)
            return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    return FileSettings()


# --------------------------------------------------------------------------- errors, one line each
#: What a setting whose rule is a pattern takes, in words.
_TAKES = {
    "log_format": "json or text",
    "digest_time": "a local time HH:MM from 00:00 to 23:59",
}
#: Values never repeated in a message: they may be secrets (a URL may carry a password).
_HIDDEN = {"database_url", "read_database_url", "user_hash_secret", "slack_bot_token", "slack_webhook_url",
           "ingest_tokens", "dashboard_tokens", "openai_admin_key", "anthropic_admin_key"}  # fmt: skip


def _takes(name: str) -> str:
    """What a setting takes, from its type and bounds: 'a number of seconds more than 0 and at most 3600'."""
    if name in _TAKES:
        return _TAKES[name]
    field = Settings.model_fields[name]
    annotation = field.annotation
    unit = " of seconds" if name.endswith("_s") else " of days" if name.endswith("_days") else ""
    if annotation is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if annotation is int:
        what = f"a whole number{unit}"
    elif annotation in (float, Decimal):
        what = f"a number{unit}"
    elif annotation in (Path, Path | None):
        return "a file path"
    else:
        what = "a text"
    rules = {
        attr: getattr(r, attr)
        for r in field.metadata
        for attr in ("gt", "ge", "lt", "le")
        if hasattr(r, attr)
    }
    if "ge" in rules and "le" in rules:
        return f"{what} from {rules['ge']} to {rules['le']}"
    words = {"gt": "more than", "ge": "at least", "lt": "less than", "le": "at most"}
    bounds = [f"{words[attr]} {value}" for attr, value in rules.items()]
    return what + (" " + " and ".join(bounds) if bounds else "")


def _in_file(name: str, config: Path | None) -> bool:
    """Whether a bad value came from the config file: it is set there and not by its variable
    (variables win; .env counts as a variable)."""
    var = f"FINOPS_{name.upper()}"
    if config is None or any(k.upper() == var for k in os.environ):
        return False
    import tomllib

    try:
        return name in tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def describe_settings_error(exc: ValidationError, config: Path | None = None) -> str:
    """A pydantic dump as lines an operator can act on, one per bad setting:
    ``FINOPS_CYCLE_S='abc' is not valid: it takes a number of seconds more than 0 and at most 3600``
    (``retention_days=1 in finops.toml is not valid: ...`` for a value from the config file).
    The lines are joined with ``\nerror: `` (the CLI prints the first ``error: ``)."""
    lines = []
    for error in exc.errors():
        name = str((error.get("loc") or ("?",))[0])
        var = f"FINOPS_{name.upper()}"
        value: Any = error.get("input")
        hidden = name in _HIDDEN or isinstance(value, dict | list)
        if _in_file(name, config):
            written = json.dumps(value) if isinstance(value, str) else str(value)
            setting = f"{name}{'' if hidden else '=' + written[:60]} in {config}"
        else:
            setting = f"{var}{'' if hidden else '=' + repr(str(value)[:60])}"
        if name not in Settings.model_fields:
            why = str(error.get("msg"))
        elif error.get("type") == "value_error":  # our own validators say what to do already
            why = str(error.get("ctx", {}).get("error") or error.get("msg")).removeprefix("Value error, ")
            if why.startswith(var):
                lines.append(why)
                continue
        else:
            why = f"it takes {_takes(name)}"
        lines.append(f"{setting} is not valid: {why}")
    return "\nerror: ".join(lines)
