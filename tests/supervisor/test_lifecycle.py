"""`tickerctl up --detach` / `down`, the pidfile, and SIGHUP re-reading the config file's catalog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fullon_ticker_service import config
from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.supervisor.pidlock import lock_path, pid_path, running_pid
from tests.conftest import eventually
from tests.supervisor.helpers import alive, env, ps_json, row, running, worker_pids, write_config


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=30), SimExchange("okx", symbols=6, rate=30),
                          SimExchange("bybit", symbols=6, rate=30)]) as s:
        yield s


def ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", *args], env=env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def same_runtime_dir(monkeypatch):
    """Lock and pid files are looked up where the `tickerctl` processes put them."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", env()["XDG_RUNTIME_DIR"])


def settings_of(cfg) -> config.Settings:
    return config.load(cfg, environ={}, dotenv=None)



async def test_detach_then_down(sim, redis_db, tmp_path):
    """`up --detach` returns once the supervisor holds its lock; `down` stops it and its workers."""
    cfg = write_config(tmp_path / "c.toml", sim, {"binance": {"symbols": sim.symbols("binance")}})
    settings = settings_of(cfg)
    out = ctl("up", "--detach", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    pid = running_pid(settings)
    assert pid is not None and f"pid {pid}" in out.stdout
    try:
        assert pid_path(settings).read_text().strip() == str(pid)
        rows = await eventually(lambda: running(cfg, ("binance",)), 40, 0.3, "binance running")
        worker = rows["binance"]["pid"]

        second = ctl("up", "--detach", "-c", str(cfg))
        assert second.returncode == 2 and "already runs" in second.stderr, second
        assert running_pid(settings) == pid and row(cfg, "binance")["pid"] == worker

        down = ctl("down", "-c", str(cfg))
        assert down.returncode == 0 and f"supervisor {pid} stopped" in down.stdout, down
        assert not alive(pid) and not alive(worker)
        assert not pid_path(settings).exists() and running_pid(settings) is None
        assert {r["status"] for r in ps_json(cfg)} == {"stopped"}
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)

    again = ctl("down", "-c", str(cfg))
    assert again.returncode == 1 and "no supervisor is running" in again.stderr


async def test_down_never_signals_a_stale_pidfile(redis_db, tmp_path):
    """A lock file left behind names a pid that is not ours: `down` must not signal it."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[service]\nnamespace = "tst"\n[redis]\nport = 6379\n')
    settings = settings_of(cfg)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # noqa: ASYNC220
    try:
        lock_path(settings).write_text(str(bystander.pid))  # as if a killed supervisor left it
        out = ctl("down", "-c", str(cfg))
        assert out.returncode == 1 and "no supervisor is running" in out.stderr
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        lock_path(settings).unlink(missing_ok=True)


async def test_detach_reports_a_supervisor_that_cannot_start(tmp_path):
    """`up --detach` with a config the supervisor rejects fails at once with the reason."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[service]\nnamespace = "tst"\n[supervisor]\nstart_method = "teleport"\n')
    out = ctl("up", "--detach", "-c", str(cfg))
    assert out.returncode == 3 and "supervisor.start_method" in out.stderr


async def test_sighup_rereads_the_config_catalog(sim, redis_db, procs, tmp_path):
    """SIGHUP: added exchange started, removed one stopped, changed symbols sent live (same pid),
    an exchange whose connection settings changed restarted; a broken file is refused and kept."""
    first = {"binance": {"symbols": sim.symbols("binance")[:3]}, "okx": {"symbols": sim.symbols("okx")},
             "bybit": {"symbols": sim.symbols("bybit"), "stale_after": 5.0}}
    cfg = write_config(tmp_path / "c.toml", sim, first)
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx", "bybit")), 40, 0.3, "3 running")
    assert await redis_db.hlen("tickers:binance") == 3

    second = {"binance": {"symbols": sim.symbols("binance")}, "bybit": {"symbols": sim.symbols("bybit"),
                                                                          "stale_after": 6.0}}
    write_config(cfg, sim, {**second, "okx": {"symbols": sim.symbols("okx"), "chunk": -1}})  # invalid value
    sup.send_signal(signal.SIGHUP)
    await eventually(lambda: "configuration not reloaded" in sup.log.read_text(), 10, 0.1, "refusal logged")
    assert sorted(worker_pids(sup.pid)) == sorted(r["pid"] for r in rows.values())  # nothing restarted

    write_config(cfg, sim, second)
    sup.send_signal(signal.SIGHUP)

    async def applied():
        r = {x["exchange"]: x for x in ps_json(cfg)}
        return (r.get("okx", {}).get("status") in (None, "stopped")
                and r["binance"]["symbols"] == 6 and r["bybit"]["status"] == "running"
                and r["bybit"]["pid"] != rows["bybit"]["pid"] and r)

    r = await eventually(applied, 30, 0.3, "new catalog applied")
    assert r["binance"]["pid"] == rows["binance"]["pid"]  # symbols applied live, no restart
    async def six():
        return await redis_db.hlen("tickers:binance") == 6

    await eventually(six, 15, 0.1, "all 6 binance symbols")
    assert not alive(rows["okx"]["pid"])
    assert sorted(worker_pids(sup.pid)) == sorted([r["binance"]["pid"], r["bybit"]["pid"]])
    assert sup.poll() is None

    async def okx_forgotten():  # a removed exchange leaves no price behind for fullon's readers
        return (not await redis_db.exists("tickers:okx")
                and not [k async for k in redis_db.scan_iter("ticker_time:okx:*")])
    await eventually(okx_forgotten, 5, 0.1, "okx's tickers and ticker_time keys deleted")
    assert await redis_db.hlen("tickers:bybit") == len(sim.symbols("bybit"))  # the others keep theirs
