"""Benchmark: authorised status queries over HTTP on loopback, each recorded in the ledger first.

Run: python bench/queries.py [--rate 500] [--seconds 20]
Starts `credit-ledger serve` (embedded broker, SQLite) in a temporary data dir, files a few
records, issues a department key, then sends POST /v1/queries/status at a fixed rate (open
loop: requests go out on schedule whether or not earlier ones have answered) and prints the
achieved throughput and latency percentiles. Every query writes its QueryRecord to the ledger
before answering. Target (issue 5): p99 <= 10 ms at 500 queries/s.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

EXAMPLES = Path(__file__).resolve().parents[1] / "ledger" / "schema" / "examples"
CODES = ("11010519491231002X", "440524188001010014", "91350100M000100Y43")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "credit_ledger.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


async def load(url: str, key: str, rate: float, seconds: float) -> tuple[list[float], int, float]:
    body = [
        json.dumps(
            {
                "subject": {"id": code},
                "purpose": "supervision_inspection",
                "basis": "《社会信用体系建设法》第二十条",
            }
        ).encode()
        for code in CODES
    ]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            nonlocal errors
            began = time.perf_counter()
            async with session.post(url, data=body[i % len(body)], headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - began)

        tasks = []
        started = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "CREDIT_DATA_DIR": tmp,
            "CREDIT_HTTP_PORT": str(port),
            "CREDIT_KAFKA_SESSION_TIMEOUT": "2",
            "CREDIT_SUBJECT_SECRET": _harness.SECRET.decode(),
        }
        env.pop("CREDIT_KAFKA_BOOTSTRAP", None)
        log = open(Path(tmp) / "serve.log", "w")  # noqa: SIM115 - lives as long as serve
        serve = subprocess.Popen(
            [sys.executable, "-m", "credit_ledger.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not re.search(r"kafka: +(\S+)", (Path(tmp) / "serve.log").read_text()):
                if time.monotonic() > deadline or serve.poll() is not None:
                    print((Path(tmp) / "serve.log").read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.1)
            bootstrap = re.search(r"kafka: +(\S+)", (Path(tmp) / "serve.log").read_text()).group(1)  # type: ignore[union-attr]
            client_env = {**env, "CREDIT_KAFKA_BOOTSTRAP": bootstrap}
            lines = "\n".join(
                json.dumps(json.loads(p.read_text("utf-8")), ensure_ascii=False)
                for p in sorted(EXAMPLES.glob("*.json"))[:11]
            )
            cli(client_env, "publish", "-", stdin=lines)
            key = json.loads(
                cli(client_env, "keys", "issue", "--role", "department", "--organisation", "market_regulator")
            )["key"]
            url = f"http://127.0.0.1:{port}/v1/queries/status"
            deadline = time.monotonic() + 60
            while True:  # until the read models have the files
                latencies, errors, _ = asyncio.run(load(url, key, 10, 0.3))
                if errors == 0:
                    break
                if time.monotonic() > deadline:
                    print("the files never appeared in the read models", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            asyncio.run(load(url, key, args.rate, args.warmup))
            latencies, errors, elapsed = asyncio.run(load(url, key, args.rate, args.seconds))
        finally:
            serve.terminate()
            serve.wait(timeout=30)
    ms = _harness.latency_ms(latencies)

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"queries: {len(latencies):,} at a target of {args.rate:g}/s for {args.seconds:g} s; errors: {errors}"
    )
    print(
        f"throughput: {len(latencies) / elapsed:,.0f} queries/s (each recorded in the ledger before answering)"
    )
    print(_harness.latency_line(ms))
    print(
        f"target p99 <= 10 ms at 500/s: {'met' if ms['p99'] <= 10 and args.rate >= 500 and errors == 0 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
