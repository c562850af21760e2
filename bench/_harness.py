"""What every benchmark shares: the import path, its arguments, the machine line, GC tuning, a ledger,
and for the HTTP benchmarks a served ledger and an open-loop load.

Import it first (``import _harness``): ``python bench/x.py`` puts ``bench/`` at the head of the
import path, where ``bench/projections.py`` would shadow the ``projections`` package; this puts the
repository's root there instead, so the benchmarks run from a checkout as they are documented.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from ledger.application.service import CreditLedger
    from ledger.domain.catalogue import Catalogue

SECRET = b"bench-secret-0123456789"
NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
"""The ledger's clock in every benchmark: generated submissions are dated relative to it."""


def parser(doc: str | None, epilog: str | None = None) -> argparse.ArgumentParser:
    """The script's arguments, its module docstring as the description."""
    return argparse.ArgumentParser(
        description=doc, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def machine() -> str:
    return f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def start(*, gc: bool = True) -> None:
    """Tune the garbage collector as credit-ledger's long-running commands do, and say where we run."""
    if gc:
        from credit_ledger.compose import tune_gc  # noqa: PLC0415 - after the import path is fixed

        tune_gc()
    print(machine())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


BENCH_MASTER_KEY = bytes(range(32))
"""The benchmarks' master key: personal fields sealed as in production (``--no-encryption`` runs without)."""


def open_ledger(
    path: Path, catalogue: Catalogue, *, encrypted: bool = True, clock: Callable[[], datetime] | None = None
) -> CreditLedger:
    """A ledger on a SQLite file, its clock stopped at ``NOW`` unless given one, sealing personal
    fields unless told not to."""
    from ledger.application.service import CreditLedger  # noqa: PLC0415 - after the import path is fixed

    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    master_key = BENCH_MASTER_KEY if encrypted else None
    return CreditLedger(
        catalogue=catalogue, secret=SECRET, clock=clock or (lambda: NOW), env=env, master_key=master_key
    )


# -- CPU seconds per process (Linux /proc) -------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def command_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in argv if w]
    if "credit_ledger.cli" in words:
        return "credit-ledger " + " ".join(words[words.index("credit_ledger.cli") + 1 :][:1])
    return Path(words[0]).name if words else "?"


# -- HTTP benchmarks: a served ledger, and requests sent on schedule ---------------------------------

EXAMPLES = ROOT / "ledger" / "schema" / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "credit_ledger.cli", *args],
        env=env,
        cwd=env.get("PYTHONPATH", "").split(os.pathsep)[0] or None,  # the served code's (``served``)
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@contextmanager
def served(
    launcher: Sequence[str] = ("-m", "credit_ledger.cli"), code: Path | None = None, **extra: str
) -> Iterator[tuple[int, dict[str, str]]]:
    """`credit-ledger serve` (embedded broker, SQLite) in a temporary data dir: (HTTP port, the
    environment of a client that talks to it). ``launcher``: how Python starts it (a bench
    launcher such as bench/_traced.py instead of the CLI); ``code``: another checkout whose
    packages serve runs (to compare two versions in one session); ``extra``: more environment."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "CREDIT_DATA_DIR": tmp,
            "CREDIT_HTTP_PORT": str(port),
            "CREDIT_KAFKA_SESSION_TIMEOUT": "2",
            "CREDIT_SUBJECT_SECRET": SECRET.decode(),
            **extra,
        }
        # The served code's root first on the path, and the processes started in it: `python -m`
        # puts the working directory ahead of PYTHONPATH, so serve started from another checkout's
        # root ran that checkout's code, not ``code``'s (every `--code` run before session 13 that
        # was started from a checkout's root served that checkout: docs/benchmarks.md, issue 13).
        root = Path(code).resolve() if code is not None else ROOT
        env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
        env.pop("CREDIT_KAFKA_BOOTSTRAP", None)
        log_path = Path(tmp) / "serve.log"
        log = open(log_path, "w")  # noqa: SIM115 - lives as long as serve
        serve = subprocess.Popen(
            [sys.executable, *launcher, "serve"],
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not (found := re.search(r"kafka: +(\S+)", log_path.read_text())):
                if time.monotonic() > deadline or serve.poll() is not None:
                    raise RuntimeError(f"serve did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield port, {**env, "CREDIT_KAFKA_BOOTSTRAP": found.group(1)}
        finally:
            serve.terminate()
            serve.wait(timeout=30)
            log.close()


def publish_examples(env: dict[str, str], names: Sequence[str]) -> None:
    """Publish the schema examples whose file names start with ``names`` (e.g. "01_", "09_")."""
    paths = [p for p in sorted(EXAMPLES.glob("*.json")) if p.name.startswith(tuple(names))]
    lines = "\n".join(json.dumps(json.loads(p.read_text("utf-8")), ensure_ascii=False) for p in paths)
    cli(env, "publish", "-", stdin=lines)


async def open_loop(one: Callable[[int], Awaitable[None]], rate: float, seconds: float) -> float:
    """Start ``one(i)`` for i = 0, 1, ... at ``rate`` a second for ``seconds``, each on its schedule
    whether or not the earlier ones have finished (open loop: a slow answer cannot slow the
    offered load); the seconds until the last has finished."""
    tasks = []
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


async def load(
    url: str, key: str, bodies: Sequence[bytes], rate: float, seconds: float, *, client: str = "aiohttp"
) -> tuple[list[float], int, float]:
    """POST ``bodies`` in turn to ``url`` at ``rate`` a second for ``seconds`` (open loop: each goes
    out on schedule whether or not earlier ones have answered); (latencies, non-200s, elapsed).
    ``client``: "aiohttp", or "lean" (bench/_http.py: the same requests for a fraction of the CPU)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if client == "lean":
        return await _lean_load(url, headers, bodies, rate, seconds)
    import aiohttp  # noqa: PLC0415 - only the HTTP benchmarks need it

    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(i: int) -> None:
            nonlocal errors
            began = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - began)

        elapsed = await open_loop(one, rate, seconds)
    return latencies, errors, elapsed


async def _lean_load(
    url: str, headers: dict[str, str], bodies: Sequence[bytes], rate: float, seconds: float
) -> tuple[list[float], int, float]:
    http = _bench_module("_http")
    return await http.Load(url, headers, bodies).run(rate, seconds)  # type: ignore[no-any-return]


def _bench_module(name: str) -> Any:
    """A module of bench/ by name (bench/ is off the import path: see the top of this module)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def until_answered(url: str, key: str, bodies: Sequence[bytes], timeout: float = 60) -> None:
    """Wait until the read models can answer (every request 200)."""
    deadline = time.monotonic() + timeout
    while asyncio.run(load(url, key, bodies, 10, 0.3))[1]:
        if time.monotonic() > deadline:
            raise RuntimeError("the read models never answered")
        time.sleep(0.5)


def latency_ms(latencies: list[float]) -> dict[str, float]:
    """Percentiles, max and mean of latencies in seconds, in milliseconds (the open-loop benches)."""
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return {
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(ordered) * 1000,
    }


def latency_line(ms: dict[str, float]) -> str:
    return "latency ms: " + "  ".join(f"{k} {v:.2f}" for k, v in ms.items())


def report_latency(
    what: str,
    latencies: list[float],
    errors: int,
    elapsed: float,
    rate: float,
    seconds: float,
    *,
    floor: bool = False,
) -> None:
    """Print an open-loop HTTP benchmark's figures against the target p99 <= 10 ms at 500/s
    (``floor``: answers that did no work, bench/_floor.py, which are not held to it)."""
    ms = latency_ms(latencies)
    print(machine())
    print(f"{what}: {len(latencies):,} at a target of {rate:g}/s for {seconds:g} s; errors: {errors}")
    done = (
        "answered with no work and recorded nowhere: the floor"
        if floor
        else "each recorded in the ledger before answering"
    )
    print(f"throughput: {len(latencies) / elapsed:,.0f} {what}/s ({done})")
    print(latency_line(ms))
    if floor:
        print("target p99 <= 10 ms at 500/s: not measured (a floor run made no check)")
        return
    met = ms["p99"] <= 10 and rate >= 500 and errors == 0
    print(f"target p99 <= 10 ms at 500/s: {'met' if met else 'NOT met'}")
