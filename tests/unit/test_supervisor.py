"""The supervisor of serve's child processes: restart delays that back off, and reset after a healthy run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from credit_ledger.config import VARIABLES, Settings
from credit_ledger.supervisor import ChildSupervisor, RestartDelay
from tests.unit.ticking import Ticks as Clock


class FakeChild:
    """A child process that runs ``seconds`` on the fake clock, then exits with ``status``."""

    def __init__(self, clock: Clock, seconds: float, status: int, on_exit: Callable[[], None]) -> None:
        self.clock, self.seconds, self.status, self.on_exit = clock, seconds, status, on_exit
        self.exited = False

    def wait(self, timeout: float | None = None) -> int:
        if not self.exited:
            self.clock.now += self.seconds
            self.exited = True
            self.on_exit()
        return self.status

    def poll(self) -> int | None:
        return self.status if self.exited else None

    def terminate(self) -> None:
        self.exited = True

    def kill(self) -> None:
        self.exited = True


def supervised(
    tmp_path: Path,
    lives: list[tuple[float, int]],
    on_exit: Callable[[ChildSupervisor], None] = lambda _: None,
) -> tuple[ChildSupervisor, list[float]]:
    """A supervisor whose children live ``lives`` (seconds, exit status) in turn; and its pauses."""
    clock = Clock()
    pauses: list[float] = []
    remaining: Iterator[tuple[float, int]] = iter(lives)

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        clock.now += seconds

    def spawn() -> FakeChild:
        seconds, status = next(remaining)
        return FakeChild(clock, seconds, status, lambda: on_exit(supervisor))

    supervisor = ChildSupervisor(
        "relay", Settings(data_dir=tmp_path), "127.0.0.1:9092", spawn=spawn, clock=clock, pause=pause
    )
    return supervisor, pauses


def test_the_restart_delay_doubles_up_to_30_seconds_while_a_child_keeps_crashing_at_once() -> None:
    delay = RestartDelay()
    assert [delay.after_crash(ran_for=0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_the_restart_delay_starts_again_at_one_second_after_a_child_ran_healthily_for_a_minute() -> None:
    delay = RestartDelay()
    assert [delay.after_crash(ran_for=1) for _ in range(4)] == [1, 2, 4, 8]
    assert delay.after_crash(ran_for=59) == 16  # not yet healthy
    assert delay.after_crash(ran_for=60) == 1
    assert delay.after_crash(ran_for=2) == 2


def test_the_supervisor_backs_off_and_resets_once_a_restarted_child_has_run_healthily(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three quick crashes, a crash after 90 s of healthy running, one more quick crash, a clean exit.
    supervisor, pauses = supervised(tmp_path, [(1, 1), (1, 1), (1, 1), (90, 1), (1, 1), (5, 0)])
    supervisor.run()  # in this thread: it returns when the child exits cleanly
    assert pauses == [1, 2, 4, 1, 2]
    err = capsys.readouterr().err
    assert "the relay process exited with status 1; restarting in 4s" in err
    assert err.count("restarting in") == 5


def test_a_child_that_exits_while_the_supervisor_stops_is_not_restarted(tmp_path: Path) -> None:
    supervisor, pauses = supervised(tmp_path, [(1, 143)], on_exit=lambda s: s.stopping.set())
    supervisor.run()
    assert pauses == []


def test_no_child_starts_after_stop(tmp_path: Path) -> None:
    supervisor, _ = supervised(tmp_path, [(1, 0)])
    supervisor.stop()
    supervisor.run()  # a supervisor thread that got here only after stop() returns at once
    assert supervisor.process is None


def test_stop_terminates_the_running_child(tmp_path: Path) -> None:
    supervisor, _ = supervised(tmp_path, [(1, 0)])
    child = supervisor.spawn()
    supervisor.process = child
    supervisor.stop()
    assert child.poll() is not None
    assert supervisor.stopping.is_set()


def test_children_get_every_setting_in_their_environment_and_the_broker_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable.env, raising=False)
    settings = Settings(data_dir=tmp_path, partitions=3, scheduler_interval=2.0)
    supervisor = ChildSupervisor("project", settings, "127.0.0.1:9092")
    assert supervisor.argv[1:] == ["-m", "credit_ledger.cli", "project"]
    assert supervisor.env["CREDIT_KAFKA_BOOTSTRAP"] == "127.0.0.1:9092"
    assert Settings.from_env(supervisor.env) == Settings(
        data_dir=tmp_path, partitions=3, scheduler_interval=2.0, kafka_bootstrap="127.0.0.1:9092"
    )
