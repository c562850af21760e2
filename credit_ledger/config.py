"""Settings from CREDIT_* environment variables (each also a CLI option), with the embedded defaults."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting has a value the program cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the program needs to know about where it runs. Unset means: use the embedded default."""

    data_dir: Path = Path("./data")
    kafka_bootstrap: str | None = None  # None: start the embedded broker
    database_url: str | None = None  # None: SQLite files in the data dir
    http_port: int = 8080
    http_host: str = "127.0.0.1"
    catalogue: Path | None = None  # None: the catalogue shipped in the package
    subject_secret: str | None = None  # None: generated once into the data dir
    partitions: int = 6
    replication_factor: int = 1
    batch_size: int = 1000
    kafka_session_timeout: float = 6.0  # seconds; Kafka's minimum is 6, the embedded broker takes less
    scheduler_interval: float = 60.0  # seconds between the scheduler's rounds (expiry, deadlines, lapses)
    log_level: str = "WARNING"
    health_stall_seconds: float = 30.0  # behind and not moving this long: /v1/health says stalled

    # name in Settings -> (environment variable, converter)
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, convert) in _VARIABLES.items():
            raw = env.get(var)
            if raw is not None and raw != "":
                try:
                    values[name] = convert(raw)
                except ValueError as exc:
                    raise ConfigError(f"{var}={raw!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"CREDIT_PARTITIONS must be at least 1, got {self.partitions}")
        if not 0 < self.http_port < 65536:
            raise ConfigError(f"CREDIT_HTTP_PORT must be a TCP port (1-65535), got {self.http_port}")
        if self.batch_size < 1:
            raise ConfigError(f"CREDIT_BATCH_SIZE must be at least 1, got {self.batch_size}")
        if self.database_url is not None:
            ledger_env(self)  # raises ConfigError for an unusable URL
        if self.subject_secret is not None and len(self.subject_secret.encode()) < 16:
            raise ConfigError(
                "CREDIT_SUBJECT_SECRET must be at least 16 bytes (it keys every subject's file)"
            )
        if self.scheduler_interval <= 0:
            raise ConfigError(
                "CREDIT_SCHEDULER_INTERVAL must be a positive number of seconds, "
                f"got {self.scheduler_interval}"
            )
        if not self.health_stall_seconds > 0:  # also refuses NaN
            raise ConfigError(
                "CREDIT_HEALTH_STALL_SECONDS must be a positive number of seconds, "
                f"got {self.health_stall_seconds}"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"CREDIT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )

    def secret_bytes(self) -> bytes:
        """The keyed-hash secret behind subject keys: from CREDIT_SUBJECT_SECRET or the data dir.

        Losing it orphans every file (keys change), so the generated one is written once and kept.
        """
        if self.subject_secret:
            return self.subject_secret.encode()
        path = self.data_dir / "subject-key.secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def _port(raw: str) -> int:
    return int(raw)


_VARIABLES: dict[str, tuple[str, Any]] = {
    "data_dir": ("CREDIT_DATA_DIR", Path),
    "kafka_bootstrap": ("CREDIT_KAFKA_BOOTSTRAP", str),
    "database_url": ("CREDIT_DATABASE_URL", str),
    "http_port": ("CREDIT_HTTP_PORT", _port),
    "http_host": ("CREDIT_HTTP_HOST", str),
    "catalogue": ("CREDIT_CATALOGUE", Path),
    "subject_secret": ("CREDIT_SUBJECT_SECRET", str),
    "partitions": ("CREDIT_PARTITIONS", int),
    "replication_factor": ("CREDIT_REPLICATION_FACTOR", int),
    "batch_size": ("CREDIT_BATCH_SIZE", int),
    "kafka_session_timeout": ("CREDIT_KAFKA_SESSION_TIMEOUT", float),
    "scheduler_interval": ("CREDIT_SCHEDULER_INTERVAL", float),
    "log_level": ("CREDIT_LOG_LEVEL", str),
    "health_stall_seconds": ("CREDIT_HEALTH_STALL_SECONDS", float),
}
VARIABLES = {name: var for name, (var, _) in _VARIABLES.items()}


def ledger_env(settings: Settings) -> dict[str, str]:
    """eventsourcing's persistence settings for the configured database."""
    url = settings.database_url
    if url is None:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / "ledger.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("//") else parts.path)
        if not path:
            raise ConfigError(f"CREDIT_DATABASE_URL={url!r}: expected sqlite:///path/to/file.sqlite")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if parts.scheme in ("postgres", "postgresql"):
        if not parts.hostname or not parts.path.strip("/"):
            raise ConfigError(
                "CREDIT_DATABASE_URL: expected postgresql://user:password@host:port/dbname, "
                f"got {_redact(url)}"
            )
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.strip("/"),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
        }
    raise ConfigError(
        f"CREDIT_DATABASE_URL: expected a sqlite:/// or postgresql:// URL, got scheme {parts.scheme!r}"
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
