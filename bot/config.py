"""Settings from the environment (prefix ``REGISTRY_BOT_``) and registry profiles loaded from data files."""

from __future__ import annotations

import functools
import logging
from datetime import time
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
LANGUAGES: tuple[str, ...] = ("en", "es", "zh_Hans")
Language = Literal["en", "es", "zh_Hans"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Settings(BaseSettings):
    """Everything configurable. Secrets (tokens, passwords) come only from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="REGISTRY_BOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    registry: str = "ca"
    database_url: str = "sqlite+aiosqlite:///registry-bot.db"
    # PostgreSQL only: the schema to work in (search_path), so several registries or test runs share one.
    database_schema: str | None = None
    content_dir: Path = PROJECT_DIR
    demo_data: Path = PROJECT_DIR / "data" / "demo-registry.json"
    # A flow left untouched this long starts over politely.
    flow_timeout_hours: float = 24.0
    log_level: str = "WARNING"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log collectors
    # E-mail over SMTP; with no host, mail stays in the outbox (`registry-bot outbox` lists it).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_from: str = "Registry Help Desk <no-reply@registry-bot.local>"
    smtp_timeout: float = 20.0
    # How long personal data is kept (`registry-bot purge` deletes what is older; run it daily).
    transcript_retention_days: int = 180  # conversation transcripts and unanswered questions
    code_retention_hours: int = 24  # verification codes (hashed), kept a day for the lockout rules
    delivery_retention_days: int = 14  # ids of processed deliveries (platforms redeliver within a day)
    sent_mail_retention_days: int = 30  # e-mail already sent (unsent mail is never purged)
    abandoned_upload_days: int = 2  # documents of a request that was never filed
    # Messages one chat user may send per minute; a flood gets one polite answer, the rest are dropped.
    rate_limit_per_minute: int = 30
    # Messages all web visitors from one client address may send per minute together (counted in the
    # database, so every process shares the count); 0 turns it off.
    client_rate_limit_per_minute: int = 30
    # A turn that cannot finish in this many seconds (a stalled database) gets the apology with the help
    # desk's phone number, and its message is delivered again later. PostgreSQL also ends a statement
    # after database_statement_timeout seconds and a wait for a lock after database_lock_timeout.
    turn_timeout: float = 10.0
    database_statement_timeout: float = 5.0
    database_lock_timeout: float = 3.0
    # `/metrics` answers only requests with "Authorization: Bearer <token>" when set; with no token it
    # answers only requests from the machine itself (the port is public for the Telegram webhook).
    metrics_token: SecretStr | None = None
    # `registry-bot serve`: with no channel tokens it serves the web chat alone.
    host: str = "127.0.0.1"
    port: int = 8080
    # Signs the web chat's conversation cookie; a random one per process when unset (set it in production,
    # or visitors lose their conversation when the process restarts).
    web_secret: SecretStr | None = None
    # Origins of the sites that may embed the chat with /widget.js (comma-separated in the environment,
    # e.g. "https://www.caregistry.org"); none: the chat can only be its own page.
    web_embed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Telegram: polling when only the token is set, webhook mode when a public webhook URL is set too.
    telegram_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    # WhatsApp (Business Cloud API): on when the token, phone number id, app secret and verify token are set.
    # The webhook is /whatsapp/webhook; a staff reply after the 24-hour window goes out as the approved
    # template named whatsapp_template (one body variable, {{1}}), or is not sent when none is named.
    whatsapp_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_template: str | None = None
    # Text messages (SMS/MMS) through Twilio: on when the account SID, auth token and sender are set. The
    # sender is a phone number, or a messaging service SID ("MG..."); public_url is the address Twilio
    # calls, when a proxy in front of `serve` changes it (signatures are computed on it).
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    public_url: str | None = None
    # Slack, for help desk staff: HTTP mode at /slack/events when the bot token and signing secret are set;
    # Socket Mode instead when an app-level token is set too.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_handoff_channel: str = ""
    slack_audit_channel: str = ""
    slack_appeal_channel: str = ""
    # Slack user ids, comma-separated in the environment: who may use /registry and claim hand-offs, who
    # decides audits (the Operations Team) and who decides appeals (the Registry Director).
    slack_staff_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    slack_operations_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    slack_director_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # the weekly content-gap digest: which channel (default the hand-off channel), which day and local time
    # (the registry's time zone), and how many days of questions it groups; `/registry gaps` posts one now
    slack_gaps_channel: str = ""
    gaps_digest_day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = (
        "monday"
    )
    gaps_digest_time: time = time(9, 0)
    gaps_digest_days: int = Field(default=7, ge=1, le=90)

    @field_validator(
        "slack_staff_ids", "slack_operations_ids", "slack_director_ids", "web_embed_origins", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )


class HolidaySettings(BaseModel):
    country: str = "US"
    subdivision: str | None = None
    extra: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class Profile(BaseModel):
    """A registry profile: configuration and content, never code."""

    key: str
    name: dict[str, str]
    website: str
    support_page: str
    phone: str
    email: str = ""
    timezone: str
    default_language: Language = "en"
    hours: dict[str, tuple[time, time]] | None = None
    holidays: HolidaySettings = Field(default_factory=HolidaySettings)
    flows: list[str] = Field(default_factory=list)
    #: the topics offered as buttons on "help" and when the assistant did not understand (default: errands)
    menu: list[str] = Field(default_factory=list)
    notice: str | dict[str, str] = ""

    @field_validator("hours")
    @classmethod
    def _known_weekdays(
        cls, value: dict[str, tuple[time, time]] | None
    ) -> dict[str, tuple[time, time]] | None:
        for day, (opens, closes) in (value or {}).items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}")
            if opens >= closes:
                raise ValueError(f"{day}: opening {opens} is not before closing {closes}")
        return value

    def display_name(self, lang: str) -> str:
        return self.name.get(lang) or self.name["en"]

    def notice_for(self, lang: str) -> str:
        if isinstance(self.notice, dict):
            return self.notice.get(lang) or self.notice.get("en", "")
        return self.notice


def profiles_dir(settings: Settings) -> Path:
    return settings.content_dir / "profiles"


@functools.cache
def _load_profile(path: Path) -> Profile:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Profile.model_validate(data)


def load_profile(key: str, settings: Settings) -> Profile:
    """Load the profile ``key`` (``ca``, ``ct``); raises ``ValueError`` for an unknown registry."""
    path = profiles_dir(settings) / f"{key}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in profiles_dir(settings).glob("*.yaml")))
        raise ValueError(f"unknown registry {key!r}; known: {known}")
    return _load_profile(path)
