"""Private servers for tests that must kill or restart them (started on a free loopback port)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throw-away redis-server bound to 127.0.0.1; `kill()` and `start()` again on the same port."""

    def __init__(self, port: int | None = None, extra: list[str] | None = None) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="tst-redis-")
        self.extra = extra or []  # e.g. ["--replicaof", "127.0.0.1", "6390"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning", *self.extra]

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.command()[0]} on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelServer(RedisServer):
    """A private Redis Sentinel (redis-server --sentinel) watching one master as `service`."""

    def __init__(self, master_port: int, service: str = "mymaster", down_after_ms: int = 1000) -> None:
        super().__init__()
        conf = Path(self.dir) / "sentinel.conf"  # Sentinel rewrites its file: it must be ours
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
                        f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
                        f"sentinel failover-timeout {service} 10000\nsentinel parallel-syncs {service} 1\n")
        self.conf = conf

    def command(self) -> list[str]:
        return [self.binary, str(self.conf), "--sentinel", "--loglevel", "warning"]


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: on PATH, else the newest /usr/lib/postgresql/*/bin (Debian)."""
    found = shutil.which(name)
    if found:
        return found
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                  if p.parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (d / name).exists():
            return str(d / name)
    raise RuntimeError(f"PostgreSQL binary {name!r} not found (install postgresql)")


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with trust auth; `kill()` and `start()` again.

    PostgreSQL refuses to run as root: when we are root, initdb and the server run as the
    `postgres` user in a temp dir that user owns. `kill()` is an immediate shutdown (SIGQUIT to
    the postmaster: no checkpoint, clients cut), like `pg_ctl stop -m immediate`.
    """

    def __init__(self, port: int | None = None, user: str = "postgres") -> None:
        self.port = port or free_port()
        self.superuser = user
        self.dir = Path(tempfile.mkdtemp(prefix="tst-pg-"))
        self.data = self.dir / "data"
        self.run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.proc: subprocess.Popen[bytes] | None = None
        self._initdb()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def _initdb(self) -> None:
        out = subprocess.run([_postgres_bin("initdb"), "-D", str(self.data), "-U", self.superuser, "-A", "trust",
                              "-E", "UTF8", "--locale=C", "--no-sync"],
                             cwd=self.dir, capture_output=True, text=True, timeout=120, **self.run_as)
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stderr.strip()[-500:]}")

    def start(self, timeout: float = 20.0) -> PostgresServer:
        with open(self.dir / "server.log", "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [_postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
                 # fsync off: only an OS crash could lose data; commits stay durable across kill()
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
                cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, **self.run_as)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ready():
                return self
            time.sleep(0.05)
        tail = (self.dir / "server.log").read_text(errors="replace")[-800:]
        raise RuntimeError(f"postgres on port {self.port} did not start: {tail}")

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def kill(self) -> None:
        """Immediate shutdown: the postmaster cuts every backend and exits without a checkpoint."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
