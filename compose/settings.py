"""One frozen settings object: environment, overridden by explicit arguments and CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from runtime.errors import ConfigError

# (field, environment variable, default): the table of DESIGN.md "Configuration".
ENV: tuple[tuple[str, str, str], ...] = (
    ("buffer", "QLDB_SETTLE_BUFFER", "sqlite:qldb-settle-buffer.db"),
    ("destination", "QLDB_SETTLE_DESTINATION", "embedded:qldb-settle-replica.db"),
    ("window_seconds", "QLDB_SETTLE_WINDOW_SECONDS", "120"),
    ("early_release", "QLDB_SETTLE_EARLY_RELEASE", "false"),
    ("index_prefix", "QLDB_SETTLE_INDEX_PREFIX", "qldb-settle"),
    ("qldb_endpoint", "QLDB_SETTLE_QLDB_ENDPOINT", ""),
    ("retention_days", "QLDB_SETTLE_RETENTION_DAYS", ""),
    ("pg_schema", "QLDB_SETTLE_PG_SCHEMA", "qldb"),
    ("pg_secret_arn", "QLDB_SETTLE_PG_SECRET_ARN", ""),
)
ENV_NAME = {name: var for name, var, _ in ENV}
DEFAULT = {name: default for name, _, default in ENV}


def _bool(text: str, var: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{var} must be true or false, not {text!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    buffer: str = DEFAULT["buffer"]
    destination: str = DEFAULT["destination"]
    window_seconds: float = float(DEFAULT["window_seconds"])
    early_release: bool = False
    index_prefix: str = DEFAULT["index_prefix"]
    qldb_endpoint: str | None = None
    # Retention: statements and revisions of replayed blocks older than this are deleted by the
    # settler (block headers stay). None keeps everything.
    retention_days: float | None = None
    # The PostgreSQL schema of a postgresql:// destination.
    pg_schema: str = DEFAULT["pg_schema"]
    # A Secrets Manager secret holding the PostgreSQL password (``password`` in its JSON, as RDS
    # writes it): in AWS the settler reads it once per container instead of a URL password.
    pg_secret_arn: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``); non-None ``overrides`` win."""
        env = os.environ if env is None else env
        raw = {name: env.get(var, DEFAULT[name]) for name, var, _ in ENV}
        try:
            window = float(raw["window_seconds"])
        except ValueError:
            raise ConfigError(
                f"QLDB_SETTLE_WINDOW_SECONDS must be a number of seconds, not "
                f"{raw['window_seconds']!r}"
            ) from None
        try:
            retention = float(raw["retention_days"]) if raw["retention_days"] else None
        except ValueError:
            raise ConfigError(
                f"QLDB_SETTLE_RETENTION_DAYS must be a number of days, not "
                f"{raw['retention_days']!r}"
            ) from None
        settings = cls(
            buffer=raw["buffer"],
            destination=raw["destination"],
            window_seconds=window,
            early_release=_bool(raw["early_release"], "QLDB_SETTLE_EARLY_RELEASE"),
            index_prefix=raw["index_prefix"],
            qldb_endpoint=raw["qldb_endpoint"] or None,
            retention_days=retention,
            pg_schema=raw["pg_schema"],
            pg_secret_arn=raw["pg_secret_arn"] or None,
        )
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in overrides.items() if v is not None and k in known}
        settings = replace(settings, **given)
        if settings.window_seconds < 0:
            raise ConfigError(f"the settle window must not be negative ({settings.window_seconds})")
        if settings.retention_days is not None and settings.retention_days <= 0:
            raise ConfigError(
                f"retention must be a positive number of days ({settings.retention_days})"
            )
        return settings


def retention_of(settings: Settings) -> timedelta | None:
    """The settler's retention as a duration (None keeps everything)."""
    days = settings.retention_days
    return None if days is None else timedelta(days=days)
