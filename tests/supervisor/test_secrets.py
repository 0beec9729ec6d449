"""Secrets and TLS: a password-protected `rediss://` Redis, a PostgreSQL URL with a password; the
passwords never appear in logs, `ps`, `health`, health records or error lines, also when the
servers go away."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time

import orjson
import psycopg
import pytest
from redis.asyncio import Redis

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.servers import free_port
from tests.supervisor.helpers import write_config
from tests.supervisor.test_catalog_pg import database, seed_file  # noqa: F401  (fixture)

REDIS_PW = "r3dis-S3CRET-pw"
PG_PW = "pg-S3CRET-pw"


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_redis(tmp_path):
    """A private redis-server speaking only TLS (self-made CA, cert for 127.0.0.1) with a password."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed to make the test's certificates")
    d = tmp_path / "tls"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=tst-ca", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1",
            cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "srv.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file",
         str(d / "srv.pem"), "--tls-key-file", str(d / "srv.key"), "--tls-ca-cert-file", str(d / "ca.pem"),
         "--tls-auth-clients", "no", "--requirepass", REDIS_PW, "--save", "", "--appendonly", "no",
         "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://:{REDIS_PW}@127.0.0.1:{port}/0?ssl_ca_certs={d / 'ca.pem'}"
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=4, rate=30), SimExchange("okx", symbols=4, rate=30)]) as s:
        yield s


def secret_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("TICKER_", "REDIS_", "DB_", "DATABASE_"))}
    out.update(XDG_RUNTIME_DIR=os.environ.get("TEST_RUNTIME_DIR", "/tmp/tickerctl-tests"), REDIS_URL=redis_url,
               DATABASE_URL=database_url, **extra)
    return out


def ctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def assert_no_secret(text: str, where: str) -> None:
    for pw in (REDIS_PW, PG_PW):
        assert pw not in text, f"{pw!r} leaked into {where}: ...{text[max(0, text.find(pw) - 200):][:400]}"


async def dump_all(r: Redis) -> str:
    """Every key and value in the database, as text."""
    out = []
    async for k in r.scan_iter("*"):
        kind = (await r.type(k)).decode()
        if kind == "string":
            v = await r.get(k)
        elif kind == "hash":
            v = await r.hgetall(k)
        else:
            v = kind
        out.append(f"{k!r} {v!r}")
    return "\n".join(out)


async def test_tls_redis_and_passwords_never_leak(sim, tls_redis, database, tmp_path):  # noqa: F811
    url, server = tls_redis
    pg_url = database.replace("postgresql://postgres@", f"postgresql://postgres:{PG_PW}@")  # trust auth ignores it
    cfg = write_config(tmp_path / "c.toml", sim, {"binance": {}, "okx": {}})
    env = secret_env(url, pg_url, LOG_FORMAT="json")
    assert db_init_with(env, cfg, seed_file(tmp_path / "s.toml", {"binance": sim.symbols("binance"),
                                                                  "okx": sim.symbols("okx")})).returncode == 0
    log = tmp_path / "up.log"
    sup = start_up(env, cfg, log)
    r = Redis.from_url(url)
    try:
        async def collecting():
            return all([await r.hlen("tickers:binance") == 4, await r.hlen("tickers:okx") == 4])

        await eventually(collecting, 40, 0.3, "both exchanges written over TLS")

        async def both_running():  # the first flush can land before the first `running` report
            out = await asyncio.to_thread(ctl, env, "ps", "--json", "-c", str(cfg))
            return out.returncode == 0 and {x["status"] for x in orjson.loads(out.stdout)} == {"running"} and out

        ps = await eventually(both_running, 10, 0.3, "ps: both running over TLS")
        health = ctl(env, "health", "-c", str(cfg))
        assert health.returncode == 0, health
        for text, where in ((ps.stdout + ps.stderr, "ps"), (health.stdout + health.stderr, "health"),
                            (await dump_all(r), "Redis keys")):
            assert_no_secret(text, where)

        # Redis goes away: workers, supervisor and ps all report it, without the password
        server.send_signal(signal.SIGKILL)
        server.wait(5)
        t0 = time.monotonic()
        ps_down = ctl(env, "ps", "-c", str(cfg))
        assert ps_down.returncode == 2 and "cannot read Redis at rediss://:***@127.0.0.1" in ps_down.stderr
        assert_no_secret(ps_down.stdout + ps_down.stderr, "ps with Redis down")
        await eventually(lambda: time.monotonic() - t0 > 2 and b"redis" in log.read_bytes().lower(), 20, 0.2,
                         "workers noticed")
        # PostgreSQL unreachable with a password in the URL: one clear line, no password
        bad_pg = pg_url.replace(":5432/", f":{free_port()}/")
        down = ctl(secret_env(url, bad_pg), "db", "init", "-c", str(cfg))
        assert down.returncode != 0 and "Traceback" not in down.stderr
        assert_no_secret(down.stdout + down.stderr, "db init with PostgreSQL down")
    finally:
        await r.aclose()
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(30)
        except subprocess.TimeoutExpired:
            sup.kill()
    text = log.read_text()
    assert_no_secret(text, "supervisor and worker logs")
    assert all(line.startswith("{") for line in text.splitlines() if line.strip()), "LOG_FORMAT=json: JSON lines"


def start_up(env: dict[str, str], cfg, log) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "fullon_ticker_service.cli", "up", "-c", str(cfg)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def db_init_with(env, cfg, seed):
    return subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", "db", "init", "-c", str(cfg), "--seed",
                           str(seed)], env=env, capture_output=True, text=True, timeout=60)


def test_sslmode_is_passed_to_postgresql(database, tmp_path):  # noqa: F811
    """`?sslmode=require` reaches libpq: against a server without SSL it fails with that reason."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    with psycopg.connect(database) as c:
        ssl_on = c.execute("SHOW ssl").fetchone()[0] == "on"
    out = ctl(secret_env("redis://127.0.0.1:6379/0", database + "?sslmode=require"), "db", "init", "-c", str(cfg))
    if ssl_on:
        assert out.returncode == 0, out
    else:
        assert out.returncode != 0 and "SSL" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out


