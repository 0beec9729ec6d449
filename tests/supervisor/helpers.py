"""Run the real supervisor (`tickerctl up`) as a process against the in-process simulator."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from fullon_ticker_service.sim import Simulator
from fullon_ticker_service.sim.demo import toml_value
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB

NAMESPACE = "tst"


def write_config(path: Path, sim: Simulator, exchanges: dict[str, dict[str, Any]], *,
                 database_url: str = "", supervisor: dict[str, Any] | None = None) -> Path:
    """exchanges: catalog name -> {"venue": ..., "symbols": [...], other exchange keys}."""
    lines = ["[service]", f'namespace = "{NAMESPACE}"', "health_interval = 0.5", "",
             "[redis]", f'host = "{SHARED_REDIS_HOST}"', f"port = {SHARED_REDIS_PORT}", f"db = {TEST_REDIS_DB}", "",
             "[supervisor]"]
    sv = {"restart_base": 0.3, "restart_cap": 2.0, "heartbeat_timeout": 5.0, "start_grace": 20.0,
          "stop_timeout": 8.0, **(supervisor or {})}
    lines += [f"{k} = {toml_value(v)}" for k, v in sv.items()]
    lines += ["", "[database]", f'url = "{database_url}"', "poll_interval = 5.0", "",
              "[defaults]", "reconnect_delay = 0.2", "reconnect_max_delay = 1.0", "stale_after = 5.0", ""]
    for name, spec in exchanges.items():
        spec = dict(spec)
        venue = spec.pop("venue", name)
        lines.append(f"[exchanges.{name}]")
        if venue in sim.exchanges:
            spec.setdefault("markets", f"{sim.http_url}/{venue}/markets")
            spec.setdefault("ccxt", sim.ccxt_config(venue))
        if venue != name:
            lines.append(f'ccxt_id = "{venue}"')
        for k, v in spec.items():
            lines.append(f"{k} = {toml_value(v)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("TICKER_", "REDIS_", "DB_", "DATABASE_"))}
    out["XDG_RUNTIME_DIR"] = os.environ.get("TEST_RUNTIME_DIR", "/tmp/tickerctl-tests")
    return out


def tickerctl(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start `tickerctl ARGS` with its output in `log` (a file: a pipe nobody reads would block it)."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "fullon_ticker_service.cli", *args], env=env(),
                                stdout=out, stderr=subprocess.STDOUT)


def ps_json(config: Path) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", "ps", "--json", "-c", str(config)],
                         env=env(), capture_output=True, timeout=20, check=True)
    return orjson.loads(out.stdout)


async def running(config: Path, names: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]] | bool:
    """`ps --json` rows by exchange when every named exchange is `running` with ticks, else False.
    Run in a thread: the in-process simulator shares the test's event loop."""
    rows = {r["exchange"]: r for r in await asyncio.to_thread(ps_json, config)}
    return all(rows.get(n, {}).get("status") == "running" and rows[n]["ticks"] > 0 for n in names) and rows


def row(config: Path, exchange: str) -> dict[str, Any] | None:
    return next((r for r in ps_json(config) if r["exchange"] == exchange), None)


def _children() -> dict[int, list[tuple[int, bytes]]]:
    out: dict[int, list[tuple[int, bytes]]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (d / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            out.setdefault(ppid, []).append((int(d.name), cmd))
    return out


def worker_pids(supervisor_pid: int) -> list[int]:
    """Worker processes of a supervisor (from /proc): spawned children, or children of its fork server."""
    children = _children()
    out = []
    for pid, cmd in children.get(supervisor_pid, []):
        if b"spawn_main" in cmd or b"tickerctl: worker" in cmd:
            out.append(pid)
        elif b"forkserver" in cmd or b"tickerctl: fork server" in cmd:
            out += [w for w, _ in children.get(pid, [])]
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def health(config: Path) -> tuple[int, str]:
    """`tickerctl health`: (exit code, output)."""
    out = subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", "health", "-c", str(config)],
                         env=env(), capture_output=True, text=True, timeout=20)
    return out.returncode, out.stdout + out.stderr
