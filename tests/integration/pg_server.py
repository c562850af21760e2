"""A throw-away PostgreSQL cluster for tests: initdb in a temp dir, run on a free port, delete.

Uses Debian's server binaries (``/usr/lib/postgresql/<version>/bin``); ``.ci/postgres.sh``
installs them. PostgreSQL refuses to run as root, so under root the cluster is owned by and run
as the ``postgres`` OS user. The cluster trades durability for speed (fsync off): it is deleted
afterwards anyway.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

START_TIMEOUT = 30.0
SUPERUSER = "postgres"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin "
    "or on PATH: install them with `apt-get install postgresql` (or run .ci/postgres.sh)"
)


@dataclass
class PgServer:
    """A running throw-away cluster: connection details and a way to make more databases."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    socket_dir: str

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string over TCP, as the application connects."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={dbname or self.dbname}"
        )

    def connect(self, dbname: str | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit connection to ``dbname`` (the default database if not given)."""
        return psycopg.connect(self.conninfo(dbname), autocommit=True)

    def env(self, dbname: str | None = None, **extra: str) -> dict[str, str]:
        """The eventsourcing environment for an application stored in ``dbname``."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": dbname or self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            **extra,
        }

    def create_database(self, name: str) -> str:
        """A new empty database owned by the test user; returns its name."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name


def find_binaries() -> Path:
    """The directory with ``initdb``, ``pg_ctl`` and ``postgres`` (newest Debian version first)."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        bindir = Path(initdb).parent
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise RuntimeError(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_owner(argv: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root (the server refuses to run as root)."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        msg = "running as root but `runuser` is missing: cannot start PostgreSQL as another user"
        raise RuntimeError(msg)
    return [runuser, "-u", SUPERUSER, "--", *argv]


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        raise RuntimeError(msg)


def _start(bindir: Path, data: Path, sockets: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Run the server as our child (so we reap it) on a free port; retry if the port was taken."""
    for _attempt in range(3):
        port = _free_port()
        argv = [
            str(bindir / "postgres"),
            "-D", str(data),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={port}",
            "-c", f"unix_socket_directories={sockets}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=300",  # three serve workers, each with relay, projector and pools
            "-c", "shared_buffers=32MB",
        ]  # fmt: skip
        with log.open("ab") as out:
            server = subprocess.Popen(
                _as_owner(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        admin = f"host={sockets} port={port} user={SUPERUSER} dbname=postgres"
        try:
            ready = _wait_until_ready(server, admin, time.monotonic() + START_TIMEOUT)
        except BaseException:
            _kill(server)
            raise
        if ready:
            return server, port
        server.wait()  # exited early, most likely because the port was taken meanwhile
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"
    msg = f"PostgreSQL would not start:\n{tail}"
    raise RuntimeError(msg)


def _wait_until_ready(server: subprocess.Popen[bytes], conninfo: str, deadline: float) -> bool:
    """Poll until the server accepts a connection (True) or exits (False); raise at the deadline."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            with psycopg.connect(conninfo, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.05)
        else:
            return True
    msg = f"PostgreSQL did not accept connections within {START_TIMEOUT:.0f}s: {last}"
    raise RuntimeError(msg)


def _stop(bindir: Path, data: Path, server: subprocess.Popen[bytes]) -> None:
    """``pg_ctl stop -m immediate``, then reap the server; kill it if it lingers."""
    if server.poll() is None:
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"]),
            capture_output=True,
            check=False,
        )
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _kill(server)


def _kill(server: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's whole session (runuser and postgres under it), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


@contextlib.contextmanager
def running_postgres(
    *, dbname: str = "ledger", user: str = "ledger", password: str = "ledger-test"
) -> Iterator[PgServer]:
    """Start a fresh cluster with one database and a password-authenticated owner; stop it after."""
    bindir = find_binaries()
    root = Path(tempfile.mkdtemp(prefix="pg-ledger-"))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        sockets.mkdir()
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                msg = f"running as root but there is no {SUPERUSER!r} OS user: {INSTALL_HINT}"
                raise RuntimeError(msg) from None
            for path in (root, sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run(
            [
                str(bindir / "initdb"),
                "-D", str(data),
                "-U", SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            "initdb",
        )  # fmt: skip
        server, port = _start(bindir, data, sockets, log)
        admin = f"host={sockets} port={port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(user))
            )
        yield PgServer("127.0.0.1", port, user, password, dbname, str(sockets))
    finally:
        if server is not None:
            _stop(bindir, data, server)
        shutil.rmtree(root, ignore_errors=True)
