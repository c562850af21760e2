"""The data dir's generated secrets: made once, whole, by whichever process starting on a new data
dir comes first, and read by all the others."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from credit_ledger.config import Settings
from ledger.store.files import write_atomically, write_once

STARTING_TOGETHER = 6


def _start(data_dir: Path, barrier: Any, results: Any) -> None:
    settings = Settings(data_dir=data_dir)
    barrier.wait()  # every process reaches the new data dir at the same moment
    try:
        results.put((settings.master_key_bytes(ledger_is_new=True).hex(), settings.secret_bytes().decode()))
    except Exception as exc:  # what the test reports: a process that could not start
        results.put(repr(exc))


def test_processes_starting_together_on_a_new_data_dir_all_read_the_one_master_key_and_secret(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        data_dir = tmp_path / f"data{attempt}"
        barrier, results = context.Barrier(STARTING_TOGETHER), context.Queue()
        starting = [
            context.Process(target=_start, args=(data_dir, barrier, results))
            for _ in range(STARTING_TOGETHER)
        ]
        for process in starting:
            process.start()
        keys = [results.get(timeout=60) for _ in starting]
        for process in starting:
            process.join(timeout=60)
        assert len(set(keys)) == 1, keys
        master, _secret = keys[0]
        assert (data_dir / "master.key").read_text() == master
        assert sorted(p.name for p in data_dir.iterdir()) == ["master.key", "subject-key.secret"], "no drafts"
        assert (data_dir / "master.key").stat().st_mode & 0o777 == 0o600


def test_a_file_written_once_keeps_what_the_first_writer_wrote(tmp_path: Path) -> None:
    path = tmp_path / "new" / "seed"
    write_once(path, "first")
    write_once(path, "second")
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["seed"]


def test_a_file_written_atomically_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "staged"
    write_atomically(path, "old")
    write_atomically(path, "new")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["staged"]
