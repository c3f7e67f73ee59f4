"""Start real apimirror processes (and private FerretDB/Prometheus servers) for tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll `check` until it is true; fail with `what` when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    """Say whether something accepts connections on a loopback port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    """A child process whose combined output goes to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        """Start the process in its own process group."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def alive(self) -> bool:
        """Say whether the process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Send SIGTERM to the group, then SIGKILL after `timeout`."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        """Return everything the process has written so far."""
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )


def apimirror(
    name: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Proc:
    """Build (not start) an `apimirror ARGS` child running this checkout's code."""
    full_env = {**os.environ, **env, **(extra_env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    argv = [sys.executable, "-m", "apimirror.cli", *args]
    return Proc(name=name, argv=argv, env=full_env, log_path=log_dir / f"{name}.log")


def ferretdb_binary() -> str | None:
    """Return the FerretDB binary the harness built, or None when there is none."""
    explicit = os.environ.get("FERRETDB_BIN")
    if explicit:
        return explicit
    cached = Path.home() / ".cache" / "apimirror" / "bin" / "ferretdb-v1.24.2"
    return str(cached) if cached.exists() else shutil.which("ferretdb")


@dataclass
class PrivateFerretDB:
    """A FerretDB server of the test's own, on a free port, that the test may stop and restart."""

    binary: str
    port: int = field(default_factory=free_port)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ferretdb-")))
    proc: Proc | None = None

    @property
    def url(self) -> str:
        """Return the connection string."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start the server on the same data directory and wait for its port."""
        argv = [
            self.binary,
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--state-dir={self.data_dir}",
            "--telemetry=disable",
            "--log-level=warn",
            "--debug-addr=-",
        ]
        self.proc = Proc("ferretdb", argv, dict(os.environ), self.data_dir / "ferretdb.log").start()
        wait_for(lambda: port_open(self.port), timeout=20, what="private FerretDB")

    def stop(self) -> None:
        """Stop the server; data stays in the directory."""
        if self.proc is not None:
            self.proc.stop()
        wait_for(lambda: not port_open(self.port), timeout=10, what="FerretDB to stop")

    def destroy(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
