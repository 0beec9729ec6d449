"""`tickerctl demo` / `make demo`: the real supervisor on the bundled simulator, isolated.

The demo starts three things and stops all of them whatever happens (Ctrl-C at any moment, a port
taken, a child dying): the simulator on PORT, a redis-server of its own on 127.0.0.1:PORT+1, and the
supervisor. Its settings come from the demo catalog, but Redis is always the demo's own: REDIS_*
from the environment or a fullon `.env` (which point at the production cache) are ignored, so
simulated prices never land where real ones are read. Readiness is a probe of each port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from fullon_ticker_service import config, logs
from fullon_ticker_service.config import RedisSettings

DEFAULT_PORT = 8765
DEFAULT_CONFIG = Path("config/demo.toml")


class DemoError(Exception):
    """One line for the user; the demo exits 2."""


def main(port: int, cfg: Path | None) -> int:
    redis_port = port + 1
    children: list[subprocess.Popen[bytes]] = []
    try:
        path = _catalog(port, cfg)
        settings = config.load(path)
        settings = dataclasses.replace(settings, redis=RedisSettings(url=f"redis://127.0.0.1:{redis_port}/0"))
        logs.setup(settings.service.log_level, settings.service.log_format)
        for p in (port, redis_port):
            if _listening(p):
                raise DemoError(f"port {p} on 127.0.0.1 is in use (another demo or simulator?); try --port "
                                f"{port + 10}")
        with _no_interrupt():  # a Ctrl-C now is taken once the child is in `children`, to be stopped
            children.append(_start_redis(redis_port))
        with _no_interrupt():
            children.append(subprocess.Popen([sys.executable, "-m", "fullon_ticker_service.cli", "sim", "--port",
                                              str(port)], start_new_session=True))
        _wait_ready(children, (redis_port, port))
        print(f"demo: simulator on http://127.0.0.1:{port}, the demo's own Redis on 127.0.0.1:{redis_port} "
              f"(nothing is written anywhere else). Watch: .venv/bin/tickerctl ps -c {path}; read: "
              f"redis-cli -p {redis_port} hget tickers:binance BTC/USDT", flush=True)
        from fullon_ticker_service.supervisor import AlreadyRunning, Supervisor

        try:
            return Supervisor(settings).run()
        except AlreadyRunning as exc:
            raise DemoError(str(exc)) from None
    except config.ConfigError as exc:
        print(f"tickerctl demo: configuration error: {exc}", file=sys.stderr)
        return 3
    except DemoError as exc:
        print(f"tickerctl demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        _stop(children)


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold SIGINT back (it is delivered, as KeyboardInterrupt, at the end of the block)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _catalog(port: int, cfg: Path | None) -> Path:
    """config/demo.toml for the default port; for another one, the same catalog generated for it."""
    if cfg is not None:
        return cfg
    if port == DEFAULT_PORT:
        return DEFAULT_CONFIG
    from fullon_ticker_service.sim.demo import demo_toml
    from fullon_ticker_service.supervisor.pidlock import runtime_dir

    path = runtime_dir() / f"demo-{port}.toml"
    path.write_text(demo_toml(port=port))
    return path


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.path.exists(p)), None)
    if binary is None:
        raise DemoError("redis-server not found: `make demo` installs it (scripts/ensure-services redis)")
    from fullon_ticker_service.supervisor.pidlock import runtime_dir

    data = runtime_dir() / f"demo-redis-{port}"
    data.mkdir(exist_ok=True)
    return subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
                             "no", "--dir", str(data), "--loglevel", "warning"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(children: list[subprocess.Popen[bytes]], ports: tuple[int, ...], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not all(_listening(p) for p in ports):
        for child in children:
            if child.poll() is not None:
                raise DemoError(f"{' '.join(map(str, child.args[:4]))} exited at start (code {child.returncode})")
        if time.monotonic() > deadline:
            raise DemoError(f"ports {ports} not listening after {within:g}s")
        time.sleep(0.05)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child, SIGKILL what has not gone after 5 s: nothing is left behind."""
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
    deadline = time.monotonic() + 5
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(max(0.0, deadline - time.monotonic()))
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait(5)
