"""Settings from CREDIT_* environment variables (each also a CLI option), with the embedded defaults.

One module of just over 400 lines: every setting is declared once (``VARIABLES``) beside the
checks and the generated-once secrets (subject-key secret, master key) that read them.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ledger.store.files import write_once
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN


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
    master_key: str | None = None  # 64 hex digits; None: generated once into DATA_DIR/master.key
    new_master_key: str | None = None  # keys rotate-master's new key (environment only)
    partitions: int = 6
    replication_factor: int = 1
    batch_size: int = 1000
    kafka_session_timeout: float = 6.0  # seconds; Kafka's minimum is 6, the embedded broker takes less
    scheduler_interval: float = 60.0  # seconds between the scheduler's rounds (expiry, deadlines, lapses)
    log_level: str = "WARNING"
    health_stall_seconds: float = 30.0  # behind and not moving this long: /v1/health says stalled
    log_origin: str = DEFAULT_ORIGIN  # the log's name in its C2SP checkpoints (and its key name)
    witnesses: str | None = None  # "VKEY URL, ...": witnesses the relay asks to cosign; None: none
    checkpoint_key: str | None = None  # 64 hex digits; None: DATA_DIR/checkpoint-key.seed (environment only)
    witness_key: str | None = None  # 64 hex digits; None: DATA_DIR/witness-key.seed (environment only)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The environment's settings, with ``overrides`` (command-line options; None = not given) on top."""
        env = os.environ if environ is None else environ
        given = {k: v for k, v in overrides.items() if v is not None}
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            raw = env.get(variable.env)
            if variable.field not in given and raw:  # an empty value counts as unset
                values[variable.field] = variable.read(raw)
        settings = cls(**values, **given)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings the program cannot use, naming the variable (a ConfigError)."""
        for variable in VARIABLES:
            variable.validate(getattr(self, variable.field))

    def environment(self) -> dict[str, str]:
        """The CREDIT_* variables that reproduce these settings in a child process."""
        out = {}
        for variable in VARIABLES:
            value = getattr(self, variable.field)
            if value is not None:
                out[variable.env] = str(value)
        return out

    def secret_bytes(self) -> bytes:
        """The keyed-hash secret behind subject keys: from CREDIT_SUBJECT_SECRET or the data dir.

        Losing it orphans every file (keys change), so the generated one is written once and kept.
        """
        if self.subject_secret:
            return self.subject_secret.encode()
        path = self.data_dir / "subject-key.secret"
        if not path.exists():
            write_once(path, secrets.token_hex(32))
        return path.read_text().strip().encode()

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / MASTER_KEY_FILE

    def master_key_bytes(self, *, ledger_is_new: bool) -> bytes:
        """The master key that wraps every data key: CREDIT_MASTER_KEY, or DATA_DIR/master.key.

        The file is generated only for a ledger that has no data keys yet; for one that has, a
        missing file is a ConfigError (a new key would silently make every personal field unreadable).
        """
        from ledger.application.privacy import parse_master_key  # noqa: PLC0415 - keep --help fast

        if self.master_key:
            return parse_master_key(self.master_key)
        path = self.master_key_file
        if not path.exists():
            if not ledger_is_new:
                raise ConfigError(
                    f"CREDIT_MASTER_KEY is not set and {path} is missing, but the ledger holds data keys "
                    "wrapped by a master key: restore the key file from its backup (docs/privacy.md) or "
                    "set CREDIT_MASTER_KEY; a new key would leave every personal field unreadable"
                )
            write_once(path, secrets.token_hex(32))
        try:
            return parse_master_key(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path} {exc}") from None


MASTER_KEY_FILE = "master.key"


@dataclass(frozen=True)
class Variable:
    """One setting, declared once: its field in Settings, its CREDIT_* variable, how to read and check it.

    Settings.from_env reads the variable, Settings.environment writes it for child processes, and
    the CLI makes the option ``--field-name`` of it (credit_ledger.cli.shared). ``parse`` and
    ``check`` raise ValueError with a phrase that follows the variable's or the option's name
    ("must be at least 1, got 0").
    """

    field: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str
    check: Callable[[Any], None] | None = None
    unset: str | None = None  # what leaving it unset means, when that is not a plain default value
    option: bool = True  # False: environment only (a secret: options show in ps and shell history)

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def default(self) -> str:
        """The default as --help shows it."""
        if self.unset is not None:
            return self.unset
        value = _DEFAULTS[self.field]
        return f"./{value}" if isinstance(value, Path) and not value.is_absolute() else str(value)

    def value_of(self, raw: str) -> Any:
        """The checked value of ``raw``; ValueError with the phrase if it is unusable."""
        value = self.parse(raw)
        if self.check is not None:
            self.check(value)
        return value

    def read(self, raw: str) -> Any:
        """The value of the variable set to ``raw``; a ConfigError naming the variable if unusable."""
        try:
            return self.value_of(raw)
        except ValueError as exc:
            raise ConfigError(f"{self.env} {exc}") from None

    def validate(self, value: Any) -> None:
        if value is None or self.check is None:
            return
        try:
            self.check(value)
        except ValueError as exc:
            raise ConfigError(f"{self.env} {exc}") from None


def _whole_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"must be a whole number, got {raw!r}") from None


def _seconds(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None


def _text(raw: str) -> str:
    return raw


def _at_least_one(value: int) -> None:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")


def _tcp_port(value: int) -> None:
    if not 0 < value < 65536:
        raise ValueError(f"must be a TCP port (1-65535), got {value}")


def _positive_seconds(value: float) -> None:
    if not value > 0:  # also refuses NaN
        raise ValueError(f"must be a positive number of seconds, got {value}")


def _log_level(value: str) -> None:
    if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"must be DEBUG, INFO, WARNING or ERROR, got {value!r}")


def _long_secret(value: str) -> None:
    if len(value.encode()) < 16:
        raise ValueError("must be at least 16 bytes (it keys every subject's file)")


def _master_key(value: str) -> None:
    from ledger.application.privacy import parse_master_key  # noqa: PLC0415 - keep --help fast

    parse_master_key(value)


def _database_url(value: str) -> None:
    persistence_env(value)


def _origin(value: str) -> None:
    if not value or "+" in value or any(c.isspace() or c < " " for c in value) or len(value) > 255:
        raise ValueError(f"must be a name with no spaces or '+' (credit-ledger.shanxi/v1), got {value!r}")


def _witness_list(value: str) -> None:
    from ledger.verification.policy import parse_witness_list  # noqa: PLC0415 - keep --help fast

    try:
        parse_witness_list(value)
    except ValueError as exc:
        raise ValueError(str(exc) if str(exc).startswith("must") else f"is not usable: {exc}") from None


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "data_dir",
        "CREDIT_DATA_DIR",
        Path,
        "where the SQLite files, the subject-key secret and logs live",
        "DIR",
    ),
    Variable(
        "database_url",
        "CREDIT_DATABASE_URL",
        _text,
        "sqlite:///file or postgresql://user:pw@host:port/db (with PostgreSQL the read models go there too)",
        "URL",
        check=_database_url,
        unset="SQLite files in the data dir",
    ),
    Variable(
        "kafka_bootstrap",
        "CREDIT_KAFKA_BOOTSTRAP",
        _text,
        "host:port of Kafka (a comma-separated list is fine)",
        "HOST:PORT",
        unset=(
            "serve and demo start the embedded broker; other commands use the broker of the serve "
            "running in their data dir"
        ),
    ),
    Variable("http_port", "CREDIT_HTTP_PORT", _whole_number, "HTTP API port", "PORT", check=_tcp_port),
    Variable("http_host", "CREDIT_HTTP_HOST", _text, "address the HTTP API binds to", "HOST"),
    Variable("catalogue", "CREDIT_CATALOGUE", Path, "catalogue JSON file", "FILE", unset="the shipped one"),
    Variable(
        "subject_secret",
        "CREDIT_SUBJECT_SECRET",
        _text,
        "the secret behind subject keys",
        "SECRET",
        check=_long_secret,
        unset="generated once into DATA_DIR/subject-key.secret",
        option=False,
    ),
    Variable(
        "master_key",
        "CREDIT_MASTER_KEY",
        _text,
        "the master key (64 hex digits) that wraps the data keys personal fields are sealed under; "
        "back it up: without it no personal field can be read (docs/privacy.md)",
        "HEX",
        check=_master_key,
        unset="generated once into DATA_DIR/master.key",
        option=False,
    ),
    Variable(
        "new_master_key",
        "CREDIT_NEW_MASTER_KEY",
        _text,
        "the master key (64 hex digits) 'keys rotate-master' re-wraps every data key under; read by "
        "that command only",
        "HEX",
        check=_master_key,
        unset="--new-key-file, else a fresh random key",
        option=False,
    ),
    Variable(
        "partitions",
        "CREDIT_PARTITIONS",
        _whole_number,
        "partitions per topic when topics are created",
        "N",
        check=_at_least_one,
    ),
    Variable(
        "replication_factor",
        "CREDIT_REPLICATION_FACTOR",
        _whole_number,
        "replication factor of the topics serve creates",
        "N",
        check=_at_least_one,
    ),
    Variable(
        "batch_size",
        "CREDIT_BATCH_SIZE",
        _whole_number,
        "submissions per ledger transaction",
        "N",
        check=_at_least_one,
    ),
    Variable(
        "kafka_session_timeout",
        "CREDIT_KAFKA_SESSION_TIMEOUT",
        _seconds,
        "consumer-group session timeout in seconds: a crashed worker's partitions move after it",
        "SECONDS",
        check=_positive_seconds,
    ),
    Variable(
        "scheduler_interval",
        "CREDIT_SCHEDULER_INTERVAL",
        _seconds,
        "seconds between the scheduler's rounds (expiry, deadlines, lapses)",
        "SECONDS",
        check=_positive_seconds,
    ),
    Variable(
        "log_level", "CREDIT_LOG_LEVEL", _text, "DEBUG, INFO, WARNING or ERROR", "LEVEL", check=_log_level
    ),
    Variable(
        "health_stall_seconds",
        "CREDIT_HEALTH_STALL_SECONDS",
        _seconds,
        "how long the relay, projector or intake may stay behind without moving before "
        "/v1/health reports it stalled",
        "SECONDS",
        check=_positive_seconds,
    ),
    Variable(
        "log_origin",
        "CREDIT_LOG_ORIGIN",
        _text,
        "this ledger's name in its C2SP checkpoints (their origin line and key name); set it once, "
        "before the first checkpoint: witnesses and auditors know the log by it",
        "ORIGIN",
        check=_origin,
    ),
    Variable(
        "witnesses",
        "CREDIT_WITNESSES",
        _text,
        "witnesses the relay asks to cosign each checkpoint: 'VKEY URL' pairs separated by commas "
        "(each witness's cosignature vkey and its add-checkpoint URL prefix)",
        "LIST",
        check=_witness_list,
        unset="none: checkpoints are published with the operator's signature only",
    ),
    Variable(  # checked where it is used (KeyConfigError names the variable), as before
        "checkpoint_key",
        "CREDIT_CHECKPOINT_KEY",
        _text,
        "the operator's Ed25519 seed (64 hex digits) that signs checkpoints (docs/auditing.md)",
        "HEX",
        unset="generated once into DATA_DIR/checkpoint-key.seed",
        option=False,
    ),
    Variable(
        "witness_key",
        "CREDIT_WITNESS_KEY",
        _text,
        "witness serve, witness key: the witness's own Ed25519 seed (64 hex digits)",
        "HEX",
        unset="generated once into DATA_DIR/witness-key.seed",
        option=False,
    ),
)
"""Every CREDIT_* setting, in the order --help lists them."""

BY_FIELD: dict[str, Variable] = {variable.field: variable for variable in VARIABLES}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}


def ledger_env(settings: Settings) -> dict[str, str]:
    """eventsourcing's persistence settings for the configured database."""
    if settings.database_url is None:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / "ledger.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    try:
        return persistence_env(settings.database_url)
    except ValueError as exc:
        raise ConfigError(f"CREDIT_DATABASE_URL {exc}") from None


def persistence_env(url: str) -> dict[str, str]:
    """eventsourcing's persistence settings for a database URL; ValueError if it is not usable."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("//") else parts.path)
        if not path:
            raise ValueError(f"must be sqlite:///path/to/file.sqlite, got {url!r}")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if parts.scheme in ("postgres", "postgresql"):
        try:
            port = parts.port or 5432
        except ValueError:  # a port that is not a number
            port = 0
        if not parts.hostname or not parts.path.strip("/") or not port:
            raise ValueError(f"must be postgresql://user:password@host:port/dbname, got {redacted(url)}")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.strip("/"),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(port),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
        }
    raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got scheme {parts.scheme!r}")


def redacted(url: str) -> str:
    """The URL with its password replaced by ***, for messages and the banner."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
