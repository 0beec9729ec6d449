"""One supervisor per Redis namespace and host id on a machine: the lock, the pidfile, the running pid,
and, as PID 1 of a container, reaping orphans nobody else waits for.

The lock (`flock`), not the pidfile, is the truth: a pidfile left by a killed supervisor names a
pid that may since belong to another process, and must never be signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from pathlib import Path

from fullon_ticker_service.config import Settings


class AlreadyRunning(RuntimeError):
    pass


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/tickerctl-{os.getuid()}"
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def host_id(settings: Settings) -> str:
    return settings.cluster.host_id or socket.gethostname()


def lock_path(settings: Settings) -> Path:
    """The lock file is keyed by the Redis endpoint, namespace and host id."""
    r = settings.redis
    key = hashlib.sha1(f"{r.host}:{r.port}:{r.db}:{r.url}:{r.sentinels}:{r.sentinel_service}:"
                       f"{settings.service.namespace}:{host_id(settings)}".encode()).hexdigest()[:12]
    return runtime_dir() / f"tickerctl-{settings.service.namespace}-{key}.lock"


def pid_path(settings: Settings) -> Path:
    return lock_path(settings).with_suffix(".pid")


def running_pid(settings: Settings) -> int | None:
    """The pid of the supervisor holding this namespace's lock on this host, or None."""
    try:
        fd = os.open(lock_path(settings), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a supervisor runs
            with contextlib.suppress(ValueError):
                return int(os.pread(fd, 32, 0).decode().strip())
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class PidLock:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(lock_path(self.settings), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(f"another supervisor (pid {other}) already runs for namespace "
                                 f"{self.settings.service.namespace!r} on this Redis; not starting") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        pid_path(self.settings).write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(pid_path(self.settings).read_text()) == os.getpid():
                pid_path(self.settings).unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def pid_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: kill(0) is all we can tell


def reap_orphans(ours: set[int]) -> None:
    """As PID 1 (a container without an init) we adopt orphans: reap the dead ones nobody waits for.

    Our own children (workers, the fork server, multiprocessing's resource tracker) are left to
    multiprocessing, which waits for them itself.
    """
    if os.getpid() != 1:
        return
    skip = ours | _multiprocessing_helpers()
    for pid in _zombie_children():
        if pid not in skip:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _zombie_children() -> list[int]:
    me, out = os.getpid(), []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                state, ppid = (d / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                if state == "Z" and int(ppid) == me:
                    out.append(int(d.name))
    return out


def _multiprocessing_helpers() -> set[int]:
    """Pids of the fork server and resource tracker multiprocessing started (it reaps them itself)."""
    from multiprocessing import forkserver, resource_tracker

    pids = {getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None),
            getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)}
    return {p for p in pids if p}
