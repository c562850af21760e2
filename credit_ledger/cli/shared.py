"""What the credit-ledger commands share: configuration options, argument types, errors and help layout."""

from __future__ import annotations

import functools
import getpass
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import click
from click.core import ParameterSource

from credit_ledger import discovery
from credit_ledger.config import BY_FIELD, VARIABLES, ConfigError, Settings, Variable
from credit_ledger.output import note
from ledger.domain.access import OPERATOR_PURPOSE
from ledger.domain.errors import LedgerError

if TYPE_CHECKING:
    from ledger.application.queries import Answer, QueryService
    from ledger.domain.access import Principal
    from ledger.domain.subjects import SubjectCode

Handler = Callable[..., int]

EVERY_SETTING = tuple(variable.field for variable in VARIABLES if variable.option)
LEDGER = ("data_dir", "database_url", "catalogue")  # what build_ledger reads
KAFKA = ("kafka_bootstrap", "data_dir")  # a client finds the serve running in its data dir


class UserError(Exception):
    """Something the user can fix (a missing file, no Kafka address); printed without a traceback."""


# -- configuration options ---------------------------------------------------------------------


class SettingType(click.ParamType):
    """A CREDIT_* setting's value, read and checked as Settings.from_env reads and checks it.

    Bad text given as the option is a usage error naming the option; bad text in the variable is a
    configuration error naming the variable (the user never typed the option).
    """

    def __init__(self, variable: Variable) -> None:
        self.variable = variable
        self.name = variable.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.variable.value_of(value)
        except ValueError as exc:
            name = param.name if param is not None else None
            if ctx is not None and name and ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT:
                raise ConfigError(f"{self.variable.env} {exc}") from None
            self.fail(str(exc), param, ctx)


class SettingOption(click.Option):
    """An option made from a config.Variable; --help lists these apart, under "Configuration"."""

    def get_error_hint(self, ctx: click.Context) -> str:
        # Only the option: a bad value of the variable is a ConfigError naming the variable instead.
        return " / ".join(f"'{opt}'" for opt in self.opts)


def setting_option(variable: Variable) -> Callable[[Handler], Handler]:
    return click.option(
        variable.flag,
        variable.field,
        cls=SettingOption,
        type=SettingType(variable),
        envvar=variable.env,
        show_envvar=True,
        metavar=variable.metavar,
        help=f"{variable.help} (default: {variable.default})",
    )


def with_settings(*fields: str) -> Callable[[Handler], Handler]:
    """Give a command the configuration options it uses (only those) and the Settings made of them.

    The command is called with the Settings first: each from its option, else its CREDIT_*
    variable, else the default; the environment-only secrets from the environment.
    """
    variables = [BY_FIELD[name] for name in dict.fromkeys(fields)]  # LEDGER and KAFKA share data_dir

    def decorate(command: Handler) -> Handler:
        @functools.wraps(command)
        def run(**params: Any) -> int:
            given = {variable.field: params.pop(variable.field) for variable in variables}
            return command(Settings.from_env(**given), **params)

        decorated: Handler = run
        for variable in reversed(variables):
            decorated = setting_option(variable)(decorated)
        return decorated

    return decorate


# -- the shape of every command ------------------------------------------------------------------


class Command(click.Command):
    """A command whose --help lists its own options first, then the configuration options it reads."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own: list[tuple[str, str]] = []
        configuration: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (configuration if isinstance(param, SettingOption) else own).append(record)
        sections = (("Options", own), ("Configuration (an option wins over its variable)", configuration))
        for title, records in sections:
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


class Group(click.Group):
    """A group of commands, listed in the order they were added (by job, not by alphabet)."""

    command_class = Command
    group_class = type  # its subgroups are Groups too

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def examples(*lines: str) -> str:
    """A --help epilog of example command lines, printed as written (click rewraps other text)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def command(name: str, summary: str, *example_lines: str) -> Callable[[Handler], Command]:
    """A subcommand: ``summary`` in the list of commands, its docstring as its help, and examples."""
    return click.command(name, cls=Command, short_help=summary, epilog=examples(*example_lines))


def group(name: str, summary: str, *example_lines: str) -> Callable[[Callable[[], None]], Group]:
    return click.group(name, cls=Group, short_help=summary, epilog=examples(*example_lines))


# -- argument types --------------------------------------------------------------------------------


class SubjectCodeType(click.ParamType):
    """A citizen identity number or unified social credit code, checked (check digit, birth date)."""

    name = "CODE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> SubjectCode:
        from ledger.domain.subjects import SubjectCode, parse_subject_code  # noqa: PLC0415 - keep --help fast
        from ledger.domain.workdays import local_date  # noqa: PLC0415

        if isinstance(value, SubjectCode):
            return value
        try:
            return parse_subject_code(value, today=local_date(datetime.now(UTC)), field="CODE")
        except LedgerError as exc:
            self.fail(exc.message, param, ctx)


class MomentType(click.ParamType):
    """An RFC 3339 time with its zone offset: a moment, never a wall-clock reading."""

    name = "T"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            example = "2026-07-01T12:00:00+08:00"
            self.fail(f"expected an RFC 3339 time such as {example}, got {value!r}", param, ctx)
        if moment.tzinfo is None:
            self.fail("give a time zone offset (e.g. +08:00)", param, ctx)
        return moment


class DayType(click.ParamType):
    """A calendar day, YYYY-MM-DD (given back as that text)."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            self.fail(f"expected a date YYYY-MM-DD, got {value!r}", param, ctx)


SUBJECT_CODE = SubjectCodeType()
MOMENT = MomentType()
DAY = DayType()


def json_option(help_text: str = "JSON instead of a table") -> Callable[[Handler], Handler]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def idle_option(what_ends: str) -> Callable[[Handler], Handler]:
    return click.option(
        "--idle",
        type=float,
        default=2.0,
        show_default=True,
        metavar="SECONDS",
        help=f"seconds of quiet on the topic that end {what_ends}",
    )


api_key_option = click.option(
    "--api-key",
    metavar="KEY",
    envvar="CREDIT_API_KEY",
    show_envvar=True,
    help="the requester's key (none: this host's operator)",
)


# -- helpers of several commands -----------------------------------------------------------------


def kafka_address(settings: Settings, needed_for: str | None = None) -> str:
    """The configured Kafka bootstrap address, else that of the serve running in the data dir
    (``credit_ledger.discovery``, said on stderr); a UserError saying how to give it when neither."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    running = discovery.read(settings.data_dir)
    if running is not None:
        kind = "embedded broker" if running.embedded else "Kafka"
        note(
            f"credit-ledger: using the {kind} at {running.kafka} of the serve running in "
            f"{settings.data_dir} (pid {running.pid}); set CREDIT_KAFKA_BOOTSTRAP to choose another"
        )
        return running.kafka
    if needed_for:
        raise UserError(
            f"{needed_for} needs CREDIT_KAFKA_BOOTSTRAP or --kafka-bootstrap (the address 'serve' printed)"
        )
    raise UserError(
        "no Kafka to talk to: set CREDIT_KAFKA_BOOTSTRAP or --kafka-bootstrap, or run 'credit-ledger "
        f"serve' with this data dir ({settings.data_dir}; --data-dir or CREDIT_DATA_DIR): a client "
        "run beside it finds its broker by itself"
    )


def read_jsonl(path: str, *, keep_blank: bool = False) -> Iterator[bytes]:
    """The non-blank lines of a JSON-lines file, or of standard input for ``-``; every line with
    ``keep_blank`` (so a reader can number them as the file does)."""
    stream = sys.stdin.buffer if path == "-" else _open(path)
    with stream:
        for line in stream:
            if keep_blank or line.strip():
                yield line.rstrip(b"\r\n")


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None


def answered(answer: Answer) -> dict[str, Any]:
    """The body of an answer of the query path; a refusal as a UserError with its code and reason."""
    if not answer.ok:
        raise UserError(f"refused ({answer.body['error']['code']}): {answer.body['error']['message']}")
    return answer.body


def principal_for(service: QueryService, api_key: str | None) -> Principal:
    """The CLI caller: the holder of CREDIT_API_KEY / --api-key, or this host's operator."""
    if api_key:
        principal = service.authenticate(api_key)
        if principal is None:
            raise UserError("the API key is not valid (revoked, or not issued here)")
        return principal
    return host_operator()


def host_operator() -> Principal:
    """This host's operator: the OS user (requester ``cli:USER``) on this machine (``host``), the
    platform's administrator, of the platform's own organisation (``credit_platform``)."""
    from ledger.domain.access import Principal  # noqa: PLC0415

    user, host = getpass.getuser(), socket.gethostname()
    return Principal(f"cli:{user}", "administrator", "credit_platform", host=host)


def operator_purpose_option(reads: str) -> Callable[[Handler], Handler]:
    """``--purpose TEXT``: why the host's operator reads ``reads``; recorded in the query register."""

    def given(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
        if value is None:
            return OPERATOR_PURPOSE
        if not value.strip() or len(value) > MAX_PURPOSE:
            raise click.BadParameter(
                f"say why you read {reads} (non-blank, at most {MAX_PURPOSE:,} characters), "
                f"or leave it out for {OPERATOR_PURPOSE!r}"
            )
        return value

    return click.option(
        "--purpose",
        metavar="TEXT",
        callback=given,
        help=f"why you read {reads}, recorded in the query register with your user and host; "
        f"the subject sees it (default: {OPERATOR_PURPOSE})",
    )


MAX_PURPOSE = 1000
"""The longest purpose a command records (as a status query's purpose over HTTP)."""
