"""The demo and the command line as a new user and an operator meet them.

- `tickerctl demo` never writes into the Redis that REDIS_* (environment or a fullon `.env`) names:
  a "production" redis-server holding a real ticker is left untouched;
- Ctrl-C at any moment of the demo leaves no process behind;
- every user-facing error is one line with the documented exit code, never a traceback;
- processes carry titles an operator can read in `ps`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import eventually
from tests.servers import RedisServer, free_port
from tests.supervisor.helpers import env, running, worker_pids, write_config

TICKERCTL = [sys.executable, "-m", "fullon_ticker_service.cli"]
REAL = {"symbol": "BTC/USDT", "exchange": "binance", "price": 67012.5, "volume": 1.0, "time": 1.0, "bid": 67012.0,
        "ask": 67013.0, "last": 67012.5, "change": None, "percentage": None}


def _ours(port: int) -> set[tuple[int, str]]:
    """Processes a demo on `port` could have left: anything titled `tickerctl: ...` (supervisor, fork
    server, workers, simulator), a simulator still starting, and the redis-server on port + 1."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if cmd.startswith("tickerctl: ") or f"cli sim --port {port}" in cmd or f"127.0.0.1:{port + 1}" in cmd:
                out.add((int(d.name), cmd))
    return out


def _left(port: int, before: set[tuple[int, str]]) -> set[tuple[int, str]]:
    return {p for p in _ours(port) - before if Path(f"/proc/{p[0]}").exists() and _state(p[0]) != "Z"}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def _demo(port: int, cwd: Path, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    e = {**env(), **extra_env}
    return subprocess.Popen([*TICKERCTL, "demo", "--port", str(port)], cwd=cwd, env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@pytest.fixture
def production():
    """A redis-server standing for the production cache fullon's `.env` points at, holding a real price."""
    server = RedisServer().start()
    r = redis.Redis(port=server.port)
    r.hset("tickers:binance", "BTC/USDT", orjson.dumps(REAL))
    r.set("ticker_time:binance:BTC/USDT", "1.0")
    yield server, r
    r.close()
    server.stop()


async def test_demo_never_writes_where_redis_env_points_and_ctrl_c_leaves_nothing(production, tmp_path):
    server, prod = production
    port = free_port()
    while port + 1 == server.port:
        port = free_port()
    (tmp_path / ".env").write_text(f"REDIS_HOST=127.0.0.1\nREDIS_PORT={server.port}\nREDIS_DB=0\n"
                                   "LOG_FORMAT=beautiful\n")
    before = _ours(port)
    demo = _demo(port, tmp_path, {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(server.port), "REDIS_DB": "0"})
    try:
        runtime = Path(env()["XDG_RUNTIME_DIR"])
        cfg = runtime / f"demo-{port}.toml"
        await eventually(lambda: cfg.exists(), 20, 0.1, "the demo's generated catalog")
        await eventually(lambda: running(cfg, ("binance", "okx")), 60, 0.3, "the demo collecting")
        own = redis.Redis(port=port + 1)
        assert own.hlen("tickers:binance") > 0  # the demo's prices are in the demo's Redis...
        own.close()
        # ...and nothing at all went to the one the environment and .env name
        assert {k.decode() for k in prod.keys("*")} == {"tickers:binance", "ticker_time:binance:BTC/USDT"}
        assert orjson.loads(prod.hget("tickers:binance", "BTC/USDT")) == REAL
    finally:
        demo.send_signal(signal.SIGINT)
        out = (await asyncio.to_thread(demo.communicate, timeout=30))[0].decode()
    assert "Traceback" not in out, out[-3000:]
    said = next(line for line in out.splitlines() if line.startswith("demo: "))
    assert said.startswith(f"demo: simulator on http://127.0.0.1:{port}, the demo's own Redis on "
                           f"127.0.0.1:{port + 1}") and f"redis-cli -p {port + 1}" in said, said
    await eventually(lambda: not _left(port, before), 10, 0.2, "no process of the demo left")


@pytest.mark.parametrize("after", [0.05, 0.4, 1.5])
async def test_ctrl_c_at_any_moment_of_the_demo_leaves_no_process(tmp_path, after):
    """SIGINT while the demo is still starting (simulator and Redis coming up, workers forking)."""
    port = free_port()
    before = _ours(port)
    demo = _demo(port, tmp_path, {})
    await asyncio.sleep(after)
    demo.send_signal(signal.SIGINT)
    out = (await asyncio.to_thread(demo.communicate, timeout=30))[0].decode()
    assert "Traceback" not in out, out[-3000:]
    await eventually(lambda: not _left(port, before), 10, 0.2, "no process of the demo left")


def _run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TICKERCTL, *args], cwd=cwd, env={**env(), **extra}, capture_output=True, text=True,
                          timeout=30)


def test_every_user_facing_error_is_one_line_with_its_exit_code(tmp_path):
    """Busy ports, non-UTF-8 config and .env, a directory or a missing file as --config: one line on
    stderr, the documented exit code (2 runtime, 3 configuration), no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[service]\nnamespace = "\xff\xfe"\n')
    cases = [(["ps", "-c", str(bad)], 3, "the config file is not UTF-8 text"),
             (["ps", "-c", str(tmp_path)], 3, "is a directory, not a config file"),
             (["ps", "-c", str(tmp_path / "missing.toml")], 3, "config file not found"),
             (["up", "-c", str(bad)], 3, "not UTF-8")]
    for args, code, text in cases:
        out = _run(args, tmp_path)
        assert (out.returncode, len(out.stderr.strip().splitlines())) == (code, 1), (args, out)
        assert text in out.stderr and "Traceback" not in out.stderr + out.stdout, (args, out)
    dotenv_dir = tmp_path / "envdir"
    dotenv_dir.mkdir()
    (dotenv_dir / ".env").write_bytes(b"REDIS_HOST=\xff\n")
    out = _run(["ps"], dotenv_dir)
    assert out.returncode == 3 and ".env file is not UTF-8" in out.stderr and len(out.stderr.splitlines()) == 1

    with __import__("socket").socket() as taken:  # a port someone else listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        out = _run(["sim", "--port", str(busy)], tmp_path)
        assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{busy}" in out.stderr, out
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        out = _run(["demo", "--port", str(busy)], tmp_path)
        assert out.returncode == 2 and f"port {busy} on 127.0.0.1 is in use" in out.stderr, out
        assert "Traceback" not in out.stderr + out.stdout, out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_config_is_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[service]\n")
    cfg.chmod(0)
    out = _run(["ps", "-c", str(cfg)], tmp_path)
    assert out.returncode == 3 and "cannot read the config file" in out.stderr


async def test_process_titles_name_each_process(tmp_path, procs, redis_db):
    """ps shows `tickerctl: supervisor [namespace]`, `tickerctl: fork server`, `tickerctl: worker X`."""
    from fullon_ticker_service.sim import SimExchange, Simulator

    async with Simulator([SimExchange("binance", symbols=3, rate=10), SimExchange("okx", symbols=3, rate=10)]) as sim:
        cfg = write_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n)} for n in ("binance", "okx")})
        sup = procs("up", "-c", str(cfg))
        rows = await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "running")

        def title(pid: int) -> str:
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")[0].decode()

        assert title(sup.pid) == "tickerctl: supervisor [tst]"
        assert {title(rows[n]["pid"]) for n in ("binance", "okx")} == {"tickerctl: worker binance",
                                                                      "tickerctl: worker okx"}
        assert sorted(worker_pids(sup.pid)) == sorted(rows[n]["pid"] for n in ("binance", "okx"))
        assert [title(p) for p in _children(sup.pid)].count("tickerctl: fork server") == 1


def _children(pid: int) -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _parent(int(d.name)) == pid]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
