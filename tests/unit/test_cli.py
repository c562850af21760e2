"""The command line: each command's --help, its options and their variables, and its usage errors."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from credit_ledger.cli import credit_ledger, main
from credit_ledger.config import VARIABLES, Settings

LEDGER = {"--data-dir", "--database-url", "--catalogue"}
KAFKA = {"--kafka-bootstrap", "--data-dir"}  # the data dir: where a running serve says its address
EVERY = {variable.flag for variable in VARIABLES if variable.option}

# The configuration options each command lists in its --help: only what it reads.
CONFIGURATION = {
    "serve": EVERY,
    "demo": EVERY,
    "relay": LEDGER | KAFKA | {"--kafka-session-timeout", "--log-level", "--log-origin", "--witnesses"},
    "project": LEDGER | KAFKA | {"--kafka-session-timeout", "--scheduler-interval", "--log-level"},
    "publish": KAFKA,
    "outcomes": KAFKA,
    "subscribe": KAFKA | {"--kafka-session-timeout"},
    "apply": LEDGER | {"--batch-size"},
    "file": LEDGER,
    "schema": set(),
    "purposes": {"--catalogue"},
    "serving": {"--data-dir"},
    "status": LEDGER,
    "lists": LEDGER,
    "projections": set(),
    "projections rebuild": LEDGER | KAFKA,
    "replay": LEDGER | KAFKA,
    "verify": LEDGER | KAFKA | {"--log-origin"},
    "proof": set(),
    "proof inclusion": LEDGER,
    "proof consistency": LEDGER,
    "checkpoint": LEDGER | KAFKA | {"--log-origin"},
    "checkpoint-key": {"--data-dir", "--log-origin"},
    "witness": set(),
    "witness serve": {"--data-dir", "--http-host", "--http-port"},
    "witness key": {"--data-dir"},
    "keys": set(),
    "keys issue": LEDGER,
    "keys list": LEDGER,
    "keys revoke": LEDGER,
    "keys rotate-master": LEDGER,
    "audit": set(),
    "audit queries": LEDGER,
    "check": LEDGER,
    "measures": set(),
    "measures stats": LEDGER,
    "feedback": KAFKA,
}


@pytest.fixture(autouse=True)
def no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable.env, raising=False)
    monkeypatch.delenv("CREDIT_API_KEY", raising=False)


def command_paths(group: click.Group = credit_ledger, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield " ".join(path)
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def examples_of(help_text: str) -> list[str]:
    """The example lines of a --help: the indented lines after its last 'Examples:' heading."""
    _, _, tail = help_text.rpartition("Examples:\n")
    return [line.strip() for line in tail.splitlines() if line.strip()]


def test_the_table_of_expected_options_names_every_command() -> None:
    assert set(command_paths()) == set(CONFIGURATION)


@pytest.mark.parametrize("path", sorted(CONFIGURATION))
def test_every_help_lists_only_the_configuration_its_command_reads_and_ends_with_an_example(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *path.split(), "--help")
    assert code == 0, err
    assert out.startswith(f"Usage: credit-ledger {path} ")
    listed = {flag for flag in EVERY if re.search(rf"(?<![\w-]){flag}(?![\w-])", out)}
    assert listed == CONFIGURATION[path]
    examples = examples_of(out)
    assert examples, out
    assert out.rstrip().endswith(examples[-1])
    assert all(f"credit-ledger {path}" in line for line in examples), examples


def test_the_main_help_lists_every_variable_with_its_option_and_keeps_secrets_off_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for variable in VARIABLES:
        expected = variable.flag if variable.option else "(environment only"
        assert re.search(rf"{variable.env} +{re.escape(expected)}", out), variable.env
    assert "--subject-secret" not in out
    assert examples_of(out)


def invocation(line: str) -> list[str]:
    """The arguments after `credit-ledger` in an example line (after any pipe, before any redirection)."""
    words = shlex.split(line.rpartition("|")[2])
    words = words[: words.index(">")] if ">" in words else words
    while "=" in words[0]:  # VARIABLE=value before the command
        words = words[1:]
    assert words[0] == "credit-ledger", line
    return words[1:]


def parse(args: list[str]) -> None:
    """Parse a command line as click does before running it: every option and argument checked."""
    ctx = credit_ledger.make_context("credit-ledger", list(args))
    command: click.Command = credit_ledger
    rest = list(args)
    while isinstance(command, click.Group):
        name, found, rest = command.resolve_command(ctx, rest)
        assert found is not None
        assert name is not None
        command = found
        ctx = command.make_context(name, rest, parent=ctx)


def every_example() -> Iterator[str]:
    paths = ["", *CONFIGURATION]
    for path in paths:
        command: Any = credit_ledger
        for name in path.split():
            command = command.commands[name]
        yield from examples_of(command.epilog or "")


@pytest.mark.parametrize("line", sorted(set(every_example())))
def test_every_example_in_a_help_is_a_command_line_the_command_accepts(line: str) -> None:
    args = invocation(line)
    if "--help" in args:
        with pytest.raises(click.exceptions.Exit) as shown:
            parse(args)
        assert shown.value.exit_code == 0
    else:
        parse(args)


def test_the_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert re.fullmatch(r"credit-ledger \d+\.\d+\.\d+\S*\n", out)


# --- options and their variables ------------------------------------------------------------------

VALUES = {
    "data_dir": "/srv/credit",
    "database_url": "sqlite:////srv/credit/ledger.sqlite",
    "kafka_bootstrap": "kafka-1:9092,kafka-2:9092",
    "http_port": "8081",
    "http_host": "0.0.0.0",
    "catalogue": "/etc/credit-ledger/catalogue.json",
    "partitions": "12",
    "replication_factor": "3",
    "batch_size": "250",
    "kafka_session_timeout": "2.5",
    "scheduler_interval": "5",
    "log_level": "INFO",
    "health_stall_seconds": "7.5",
    "log_origin": "credit-ledger.shanxi/v1",
    "witnesses": "audit.example/w1+b4b5e8d4+BDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop http://127.0.0.1:9001",
}


@pytest.fixture
def served_with(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The Settings each `serve` run in this test was started with (nothing is started)."""
    import credit_ledger.serve  # noqa: PLC0415 - Faust is slow to import: only the tests that need it

    started: list[Settings] = []

    def serve(settings: Settings, **_: Any) -> int:
        started.append(settings)
        return 0

    monkeypatch.setattr(credit_ledger.serve, "serve", serve)
    return started


def test_every_option_has_a_sample_value_here() -> None:
    assert set(VALUES) == {variable.field for variable in VARIABLES if variable.option}


@pytest.mark.parametrize("variable", [v for v in VARIABLES if v.option], ids=lambda v: v.env)
def test_an_option_and_its_variable_give_the_same_setting(
    variable: Any,
    served_with: list[Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = VALUES[variable.field]
    assert run(capsys, "serve", variable.flag, raw)[0] == 0
    monkeypatch.setenv(variable.env, raw)
    assert run(capsys, "serve")[0] == 0
    by_option, by_variable = served_with
    assert by_option == by_variable == Settings.from_env({variable.env: raw})
    assert getattr(by_option, variable.field) != getattr(Settings(), variable.field)


def test_an_option_wins_over_its_variable(
    served_with: list[Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDIT_HTTP_PORT", "not a port")  # not even read: the option is given
    assert run(capsys, "serve", "--http-port", "8082")[0] == 0
    assert served_with[0].http_port == 8082


def test_a_child_process_gets_the_same_settings_from_its_environment() -> None:
    settings = Settings.from_env(
        {variable.env: VALUES[variable.field] for variable in VARIABLES if variable.option}
    )
    assert Settings.from_env(settings.environment()) == settings
    with_secret = Settings(subject_secret="a-secret-of-sixteen-bytes")
    assert Settings.from_env(with_secret.environment()) == with_secret


# --- usage and configuration errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["serve", "--partitions", "abc"], "'--partitions': must be a whole number, got 'abc'"),
        (["serve", "--partitions", "0"], "'--partitions': must be at least 1, got 0"),
        (["serve", "--http-port", "70000"], "'--http-port': must be a TCP port (1-65535), got 70000"),
        (["serve", "--workers", "0"], "'--workers'"),
        (["lists", "black", "--database-url", "mysql://x"], "'--database-url': must be a sqlite:///"),
        (["file"], "Missing argument 'CODE'"),
        (["file", "123"], "'CODE': expected 18 characters, got 3"),
        (["publish"], "Missing argument 'FILE'"),
        (["status", "11010519491231002X", "--as-of", "yesterday"], "'--as-of': expected an RFC 3339 time"),
        (
            ["status", "11010519491231002X", "--as-of", "2026-07-01T12:00"],
            "'--as-of': give a time zone offset",
        ),
        (["replay", "--as-of", "2026"], "'--as-of'"),
        (["replay", "--subject", "123"], "'--subject'"),
        (["lists", "purple"], "'LIST'"),
        (["lists", "black", "--since", "last week"], "'--since': expected a date YYYY-MM-DD"),
        (["outcomes", "--idle", "soon"], "'--idle'"),
        (["proof", "inclusion"], "give one of --position, --event-id or --stream"),
        (["proof", "inclusion", "--position", "1", "--event-id", "x"], "(got --position and --event-id)"),
        (["proof", "consistency", "--old", "1"], "Missing option '--new'"),
        (["keys", "issue", "--role", "public"], "'--role'"),
        (["keys", "revoke"], "Missing argument 'KEY_ID'"),
        (["subscribe", "everything"], "'FEED'"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_a_usage_error_names_the_option_or_argument_in_one_line_without_a_traceback(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert named in err
    assert "Traceback" not in err
    assert out == ""


def test_a_bad_variable_is_a_configuration_error_naming_the_variable_not_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDIT_PARTITIONS", "abc")
    code, _, err = run(capsys, "serve")
    assert code == 2
    assert err == "credit-ledger: configuration error: CREDIT_PARTITIONS must be a whole number, got 'abc'\n"


def test_a_bad_variable_a_command_does_not_read_is_still_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # docs/configuration.md: every CREDIT_* variable is checked, whichever command runs.
    monkeypatch.setenv("CREDIT_HTTP_PORT", "70000")
    code, _, err = run(capsys, "lists", "black", "--data-dir", str(tmp_path))
    assert code == 2
    assert "CREDIT_HTTP_PORT must be a TCP port (1-65535), got 70000" in err


def test_help_works_whatever_the_environment_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDIT_PARTITIONS", "abc")
    assert run(capsys, "serve", "--help")[0] == 0


def test_a_command_that_needs_kafka_says_how_to_give_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "one.jsonl").write_text("{}\n")
    code, out, err = run(capsys, "publish", str(tmp_path / "one.jsonl"))
    assert code == 1
    assert err.startswith(
        "credit-ledger: no Kafka to talk to: set CREDIT_KAFKA_BOOTSTRAP or --kafka-bootstrap"
    )
    assert out == ""


def test_no_command_prints_the_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2
    assert "Commands:" in out + err


def test_a_catalogue_file_that_cannot_be_used_is_a_configuration_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    absent = tmp_path / "absent.json"
    code, _, err = run(
        capsys, "file", "11010519491231002X", "--catalogue", str(absent), "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert err == (
        "credit-ledger: configuration error: CREDIT_CATALOGUE (invalid_catalogue): "
        f"catalogue file {absent} does not exist\n"
    )


def test_serving_says_where_the_serve_in_the_data_dir_answers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415

    from credit_ledger import discovery  # noqa: PLC0415

    code, _, err = run(capsys, "serving", "--data-dir", str(tmp_path))
    assert code == 1
    assert f"no serve is running in {tmp_path}" in err
    running = discovery.Serving(os.getpid(), "127.0.0.1:40001", True, "http://127.0.0.1:8123/v1/")
    discovery.announce(tmp_path, running)
    assert json.loads(run(capsys, "serving", "--data-dir", str(tmp_path))[1])["kafka"] == "127.0.0.1:40001"
    assert run(capsys, "serving", "--data-dir", str(tmp_path), "--http")[1] == "http://127.0.0.1:8123\n"
    assert run(capsys, "serving", "--data-dir", str(tmp_path), "--kafka")[1] == "127.0.0.1:40001\n"


def test_schema_examples_prints_an_example_of_every_action_the_schema_has(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json  # noqa: PLC0415

    code, out, _ = run(capsys, "schema")
    every_action = set(json.loads(out)["properties"]["action"]["enum"])
    code, out, _ = run(capsys, "schema", "--examples")
    assert code == 0
    assert {json.loads(line)["action"] for line in out.splitlines()} == every_action


def test_every_example_has_its_own_id_and_only_the_three_the_readme_names_are_rejected(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # README "Submitting credit events": the examples published together are all accepted but the
    # two feedback examples and the reminder, which name a notice of another ledger.
    import json  # noqa: PLC0415

    examples = tmp_path / "examples.jsonl"
    examples.write_text(run(capsys, "schema", "--examples")[1], "utf-8")
    sent = [json.loads(line) for line in examples.read_text("utf-8").splitlines()]
    ids = [(s["department"], s["submission_id"]) for s in sent]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    _, out, _ = run(capsys, "apply", "--data-dir", str(tmp_path / "data"), str(examples))
    outcomes = [json.loads(line) for line in out.splitlines()]
    rejected = {o["submission_id"] for o in outcomes if o["status"] == "rejected"}
    assert len(outcomes) == len(sent)
    assert {"sched.remind" if r.startswith("sched.remind.") else r for r in rejected} == {
        "FY-2026-000101",
        "SW-2026-000102",
        "sched.remind",
    }, outcomes


def test_file_shows_the_operator_the_sealed_fields_opened(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json  # noqa: PLC0415

    monkeypatch.setenv("CREDIT_SUBJECT_SECRET", "unit-test-secret-0123456789abcdef")
    examples = tmp_path / "examples.jsonl"
    examples.write_text(run(capsys, "schema", "--examples")[1], "utf-8")
    assert run(capsys, "apply", "--quiet", "--data-dir", str(tmp_path / "data"), str(examples))[0] == 0
    code, out, _ = run(capsys, "file", "11010519491231002X", "--json", "--data-dir", str(tmp_path / "data"))
    shown = json.loads(out)
    assert code == 0
    assert shown["name"] == "张三"
    assert "enc1:" not in out
    assert any(r["title"].startswith("逾期未申报个人所得税") for r in shown["records"])


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["lists", "black"], "no entries on the black list\n"),
        (["lists", "red", "--domain", "taxation"], "no entries on the red list matching these filters\n"),
        (["keys", "list"], "no API keys issued here yet ('credit-ledger keys issue' makes one)\n"),
        (["audit", "queries"], "no queries recorded\n"),
        (["audit", "queries", "--purpose", "tenancy"], "no queries recorded matching these filters\n"),
        (["measures", "stats"], "no measure notices yet\n"),
        (["measures", "stats", "--department", "court"], "no measure notices yet matching these filters\n"),
    ],
)
def test_an_empty_list_says_so_on_stderr_and_prints_no_header_and_no_none(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, *args, "--data-dir", str(tmp_path))
    assert code == 0, err
    assert err == said
    assert "None" not in out
    assert [line for line in out.splitlines() if not line.startswith("as of ")] == []  # no header, no table


def test_an_audit_hint_reads_as_a_sentence_not_as_a_python_dict() -> None:
    from credit_ledger.cli.access_commands import hint_line  # noqa: PLC0415
    from projections.anomalies import anomaly_hints  # noqa: PLC0415

    refused = {"requester": "key:7de5b6ef5fa9", "outcome": "refused", "organisation": "bank-fz-001"}
    [hint] = anomaly_hints([refused] * 3)
    line = hint_line(hint)
    assert line == "hint (refusals): requester key:7de5b6ef5fa9, refused 3; rule: 3 or more refused queries"
