#!/usr/bin/env python3
"""The reproducible benchmark (issue #6, "Beat the peers"): real processes, real Redis, the local simulator.

    .venv/bin/python scripts/bench.py [--out DIR] [--quick] [--redis-db 11] [...]

Every party runs in its own process, so each one's CPU and memory can be read from /proc:
  sim        the simulator (`Simulator`, Binance frames, offered rate set per step) plus a send log:
             the wall-clock time each quote was generated, to the microsecond;
  observer   PSUBSCRIBE `ticker_updates:bench_*` (raw socket + hiredis): the moment a value is
             readable in Redis, seen from outside the writer (the worker's Lua script writes the hash
             and PUBLISHes in one step); while cryptofeed's own Redis backend is measured (it
             publishes nothing), a MONITOR connection sees each of its ZADDs and the value written;
  designs    alive together, each on its own simulator with the same seed (the same frames), only
             the measured one fed, back to back at each offered rate, on two Binance streams:
             `ticker` (24hrTicker) and `bookTicker` (what cryptofeed's Binance TICKER is):
             `ccxt-only`   ccxt.pro parsing only, no writes: the ceiling of a ccxt design;
             `ours-native` / `ours-ccxt`  the real worker (`python -m fullon_ticker_service.worker`)
                           with `decoder = "native"` / `"ccxt"`; a worker whose config does not know
                           `decoder` yet runs once, as `ours`;
             `upstream`    fullon's pattern (ticker only): one `watch_ticker` loop per symbol, three
                           awaited Redis commands per tick (HSET tickers, SET ticker_time, PUBLISH);
             `cryptofeed`  the peer (bookTicker only; PyPI `cryptofeed`, pointed at the simulator)
                           with a minimal latest-value callback of ours: per tick one pipelined round
                           trip HSET tickers + SET ticker_time + PUBLISH, our layout;
             `cryptofeed-redis`  the peer with its own Redis backend (`TickerRedis`: a ZSET per
                           symbol that keeps every tick: history, not latest values);
             then ccxt-only and each of ours (and cryptofeed on bookTicker) alternate at saturation
             (the ceiling ratio, wall clock and per CPU).
Then several workers at once through `tickerctl up` (aggregate rate, per-worker latency, RSS/PSS
per start method), the time from `tickerctl up` to the first tick of 5 exchanges, py-spy profiles
of the worker (docs/benchmarks.md explains the method) and a memory soak. Latency = observer
receive time - send time (the send log, matched on symbol+last+bid+ask, or symbol+bid+ask on
bookTicker, to the latest send of that value before the receive; the frame's `E` field only has
milliseconds and is reported beside it). Results: a text report on stdout and, with `--out`,
`bench.json` + `bench.txt` + `bench.png` (latency and CPU per tick against the offered rate;
needs matplotlib). cryptofeed and matplotlib are optional (`pip install -e '.[bench]'`): without
them their parts are skipped with one line saying so.

Internal roles (`bench.py _sim|_observe|_ccxt|_upstream|_cryptofeed ...`) speak JSON lines on stdin/stdout.
"""

# The orchestrator is a script, not a service: blocking reads of small local files and timeout
# parameters on its helpers are fine here.
# ruff: noqa: ASYNC109, ASYNC230, ASYNC240
from __future__ import annotations

import argparse
import asyncio
import bisect
import codecs
import contextlib
import ctypes
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson

from fullon_ticker_service.sim.demo import toml_value

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAT = 200_000.0  # "saturation": more than anything here can send or parse
TARGET_RATE = 10_000.0  # the offered rate of the p99 target (--latency-rounds steps of it)
OURS = ("ours-native", "ours-ccxt", "ours", "ours-both", "ours-baseline")  # the worker with decoder = native / ccxt /
# its default; ours-both: decoder ccxt with the bid/ask stream subscribed beside the ticker stream (two ticks per
# quote); ours-baseline: an older revision's worker, imported from $BENCH_BASELINE_SRC (e.g. a `git archive` of it)
EXTRA_OURS = ("ours", "ours-both", "ours-baseline")  # not run unless asked for (--designs)
DESIGNS = ("ccxt-only", *OURS, "upstream", "cryptofeed", "cryptofeed-redis")
CRYPTOFEED = ("cryptofeed", "cryptofeed-redis")
TICKER, BOOK = "ticker", "bookTicker"  # the two Binance streams compared
STREAMS = (TICKER, BOOK)
# which design can consume which stream: fullon's pattern is watch_ticker; cryptofeed's Binance TICKER
# is bookTicker and it drops 24hrTicker frames ("Unexpected message received")
SUPPORTS = {TICKER: ("ccxt-only", *OURS, "upstream"), BOOK: ("ccxt-only", "ours-native", "ours-ccxt", "ours",
                                                                "ours-baseline", *CRYPTOFEED)}
FIELDS = {TICKER: ("last", "bid", "ask"), BOOK: ("bid", "ask")}  # what a stored value must equal
WORKER_STREAM = {TICKER: "ticker", BOOK: "bidask"}  # the worker's `streams` config per stream
PREFIX = "bench"  # catalog names bench_<venue>[_n]: our channels never mix with other users of the server
NAMESPACE = "bench"
CF_KEY = "ticker"  # cryptofeed's TickerRedis default key: ZSET `ticker-BINANCE-BTC-USDT` per symbol
CF_EXCHANGE = "BINANCE"


def cf_symbol(symbol: str) -> str:
    """ccxt's BTC/USDT -> cryptofeed's BTC-USDT (spot)."""
    return symbol.replace("/", "-")


def deep_merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """`base` with `more` merged in, nested tables key by key (neither is changed)."""
    out = dict(base)
    for k, v in more.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Store:
    """Where a writer keeps its latest values: our layout (HSET tickers:{exchange}) or cryptofeed's
    ZSETs (the member with the highest score is the latest); `fields` are what must equal the last sent."""

    exchange: str
    fields: tuple[str, ...] = FIELDS[TICKER]
    zset: bool = False


# =============================================================================================
# small helpers
# =============================================================================================
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (clock ticks -> s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS (MB) from /proc/PID/smaps_rollup."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):  # anonymous: the heap, free of shared-page accounting
                out[key.lower()[:4]] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """n, p50/p95/p99/max in ms (nearest rank) of latencies given in seconds."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    v = sorted(values)

    def rank(p: float) -> float:
        return round(v[min(len(v) - 1, max(0, math.ceil(p * len(v)) - 1))] * 1000, 3)

    return {"n": len(v), "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": round(v[-1] * 1000, 3)}


def pdeathsig() -> None:
    """preexec: the child gets SIGTERM when the benchmark dies, so nothing is left running."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def child_env(runtime: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TICKER_", "REDIS_", "DB_", "DATABASE_"))}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


def supports_start_method() -> bool:
    src = ROOT / "src/fullon_ticker_service/config.py"
    return src.is_file() and "start_method" in src.read_text()


# =============================================================================================
# child roles: JSON lines on stdin (commands) / stdout (answers); logs on stderr
# =============================================================================================
def say(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.buffer.flush()


async def serve(handlers: dict[str, Callable[..., Any]]) -> None:
    """Answer commands until `quit` or EOF (the benchmark is gone)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        msg = orjson.loads(line)
        cmd = msg.pop("cmd")
        if cmd == "quit":
            say({"ok": True})
            return
        try:
            result = handlers[cmd](**msg)
            if isinstance(result, Awaitable):
                result = await result
        except Exception as exc:  # report, keep serving
            result = {"error": f"{type(exc).__name__}: {exc}"}
        say(result)


async def role_sim(a: argparse.Namespace) -> None:
    from fullon_ticker_service.sim import SimExchange, Simulator

    class LoggedSimulator(Simulator):
        """Records (symbol, last, bid, ask, wall time before, wall time after) the delivery of every
        quote: "after" is when its frames were handed to the kernel, so receive - after is what
        happened past the simulator (the reader, Redis, the observer)."""

        sendlog: ClassVar[list[tuple[str, float, float, float, float, float]]] = []

        async def _deliver(self, ex: Any, q: Any) -> None:
            before = time.time()
            await super()._deliver(ex, q)
            self.sendlog.append((q.symbol, q.last, q.bid, q.ask, before, time.time()))

    specs = []
    for part in a.venues.split(","):
        venue, _, n = part.partition(":")
        specs.append(SimExchange(venue, int(n or 20), 0.0))
    sim = LoggedSimulator(specs, "127.0.0.1", 0, seed=a.seed)
    await sim.start()

    def rate(venue: str, rate: float) -> dict[str, Any]:
        sim.set_rate(venue, rate)
        return {"ok": True}

    def state(venue: str) -> dict[str, Any]:
        ex = sim.exchanges[venue]
        return {"sent": ex.sent, "frames": ex.frames, "connections": len(ex.conns), "t": time.time(),
                "last_good": {s: [q.last, q.bid, q.ask] for s, q in ex.last_good.items()}}

    def sendlog(path: str = "") -> dict[str, Any]:
        log, sim.sendlog = sim.sendlog, []
        if path:
            Path(path).write_bytes(orjson.dumps(log))
        return {"n": len(log)}

    say({"port": sim.port, "http": sim.http_url, "pid": os.getpid(),
         "ccxt": {v: sim.ccxt_config(v) for v in sim.exchanges}, "symbols": {v: sim.symbols(v) for v in sim.exchanges}})
    try:
        await serve({"rate": rate, "state": state, "sendlog": sendlog})
    finally:
        await sim.stop()


MONITOR_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')


def monitor_zadd(line: bytes) -> tuple[int, bytes, bytes] | None:
    """(db, key, member) of a MONITOR line of a ZADD (`<time> [<db> <client>] "ZADD" "key" "NX" "score"
    "member"`, every argument quoted with backslash escapes), else None."""
    head, _, rest = line.partition(b"] ")
    args = [codecs.escape_decode(x)[0] for x in MONITOR_ARG.findall(rest)]
    if len(args) < 4 or args[0].upper() != b"ZADD":
        return None
    try:
        db = int(head.split(b"[", 1)[1].split(b" ", 1)[0])
    except (IndexError, ValueError):
        return None
    return db, args[1], args[-1]


async def role_observe(a: argparse.Namespace) -> None:
    import hiredis

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(a.host, a.port)
        if a.password:
            writer.write(b"*2\r\n$4\r\nAUTH\r\n" + f"${len(a.password)}\r\n{a.password}\r\n".encode())
        return reader, writer

    def command(*args: bytes) -> bytes:
        return f"*{len(args)}\r\n".encode() + b"".join(b"$%d\r\n%s\r\n" % (len(c), c) for c in args)

    reader, writer = await connect()
    writer.write(command(b"PSUBSCRIBE", f"ticker_updates:{PREFIX}_*".encode()))
    await writer.drain()
    rd = hiredis.Reader()
    records: list[tuple[float, bytes, bytes]] = []
    # cryptofeed's own Redis backend publishes nothing: while it is measured, a MONITOR connection sees
    # each of its ZADDs (with the member written) the moment the server runs it, as a PUBLISH would be seen
    monitor: dict[str, Any] = {"task": None, "writer": None, "label": "", "prefix": b""}
    mon_records: list[tuple[float, bytes]] = []

    async def pump() -> None:
        while chunk := await reader.read(1 << 20):
            t = time.time()  # one timestamp per read: everything in it was readable by then
            rd.feed(chunk)
            while (m := rd.gets()) is not False:
                if m[0] == b"pmessage":
                    records.append((t, m[2], m[3]))
        raise ConnectionError("redis closed the observer's connection")

    async def monitor_pump(mreader: asyncio.StreamReader) -> None:
        mrd = hiredis.Reader()
        needle = b'"ZADD" "' + monitor["prefix"]
        while chunk := await mreader.read(1 << 20):
            t = time.time()
            mrd.feed(chunk)
            while (m := mrd.gets()) is not False:
                if isinstance(m, bytes) and needle in m:
                    mon_records.append((t, m))

    task = asyncio.create_task(pump())

    async def monitor_on(label: str, prefix: str) -> dict[str, Any]:
        await monitor_off()
        mreader, mwriter = await connect()
        mwriter.write(command(b"MONITOR"))
        await mwriter.drain()
        monitor.update(label=label, prefix=prefix.encode(), writer=mwriter,
                       task=asyncio.create_task(monitor_pump(mreader)))
        return {"ok": True}

    async def monitor_off() -> dict[str, Any]:
        if monitor["task"] is not None:
            monitor["task"].cancel()
            monitor["writer"].close()
            monitor.update(task=None, writer=None)
        mon_records.clear()
        return {"ok": True}

    def clear() -> dict[str, Any]:
        n = len(records) + len(mon_records)
        records.clear()
        mon_records.clear()
        return {"n": n, "t": time.time()}

    def dump(path: str) -> dict[str, Any]:
        """Write [exchange, symbol, last, bid, ask, tick time, receive time] rows, then forget them.
        `n`: PUBLISHes; `zadds`: ZADDs of the monitored ZSETs (their rows carry the member's values)."""
        rows = []
        for t, channel, data in records:
            tick = orjson.loads(data)
            exchange = channel.decode().split(":", 2)[1]
            rows.append([exchange, tick["symbol"], tick["last"], tick["bid"], tick["ask"], tick["time"], t])
        zadds = 0
        for t, line in mon_records:
            z = monitor_zadd(line)
            if z is None or z[0] != a.db or not z[1].startswith(monitor["prefix"]):
                continue
            zadds += 1
            m = orjson.loads(z[2])
            rows.append([monitor["label"], m["symbol"].replace("-", "/"), None, m["bid"], m["ask"], m["timestamp"], t])
        n = len(records)
        records.clear()
        mon_records.clear()
        Path(path).write_bytes(orjson.dumps(rows))
        return {"n": n, "zadds": zadds, "t": time.time()}

    def first() -> dict[str, Any]:
        seen: dict[str, float] = {}
        for t, channel, _ in records:
            ex = channel.decode().split(":", 2)[1]
            seen.setdefault(ex, t)
        return {"first": seen, "alive": not task.done()}

    say({"pid": os.getpid()})
    await serve({"clear": clear, "dump": dump, "first": first, "monitor_on": monitor_on, "monitor_off": monitor_off})
    task.cancel()


class CountingTickers(dict):  # type: ignore[type-arg]
    """`exchange.tickers` replacement counting every ticker ccxt parses and stores."""

    count = 0

    def __setitem__(self, symbol: str, ticker: Any) -> None:
        dict.__setitem__(self, symbol, ticker)
        CountingTickers.count += 1


async def _ccxt_exchange(a: argparse.Namespace) -> Any:
    import aiohttp
    import ccxt.pro as ccxtpro

    ex = getattr(ccxtpro, a.venue)({"enableRateLimit": True, **orjson.loads(a.ccxt)})
    async with aiohttp.ClientSession() as s, s.get(a.markets) as r:
        markets = orjson.loads(await r.read())
    ex.set_markets(markets)
    if a.stream == BOOK:
        ex.bidsasks = CountingTickers()
    else:
        ex.tickers = CountingTickers()
    return ex


async def role_ccxt(a: argparse.Namespace) -> None:
    """ccxt.pro parsing only: watch loops keep the subscriptions, every parsed ticker is counted."""
    ex = await _ccxt_exchange(a)
    symbols = orjson.loads(a.symbols)

    async def loop(chunk: list[str]) -> None:
        while True:
            try:
                if a.stream == BOOK:
                    await ex.watch_bids_asks(chunk)
                else:
                    await ex.watch_tickers(chunk, {"name": "ticker"})
            except Exception as exc:
                print(f"ccxt-only: {type(exc).__name__}: {exc}", file=sys.stderr)
                await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(loop(symbols[i:i + a.chunk])) for i in range(0, len(symbols), a.chunk)]
    say({"pid": os.getpid()})
    await serve({"stats": lambda: {"ticks": CountingTickers.count, "t": time.time()}})
    for t in tasks:
        t.cancel()
    await ex.close()


async def role_upstream(a: argparse.Namespace) -> None:
    """fullon's pattern: one watch_ticker loop per symbol, three awaited commands per tick."""
    from redis.asyncio import Redis

    from fullon_ticker_service.tick import normalise

    ex = await _ccxt_exchange(a)
    symbols = orjson.loads(a.symbols)
    # one connection per concurrent loop, as redis-py < 8 gave by default (8 caps the pool at 100 and
    # raises MaxConnectionsError beyond): the pattern is judged, not a pool limit
    redis = Redis(host=a.host, port=a.port, db=a.db, password=a.password or None, max_connections=100_000)
    done = {"ticks": 0, "round_trips": 0}

    async def loop(symbol: str) -> None:
        while True:
            try:
                t = await ex.watch_ticker(symbol, {"name": "ticker"})
                tick = normalise(a.exchange, t, time.time())
                data = json.dumps(tick)  # fullon_cache serialises with json.dumps
                await redis.hset(f"tickers:{a.exchange}", symbol, data)
                await redis.set(f"ticker_time:{a.exchange}:{symbol}", str(tick["time"]))
                await redis.publish(f"ticker_updates:{a.exchange}:{symbol}", data)
                done["ticks"] += 1
                done["round_trips"] += 3
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                print(f"upstream: {type(exc).__name__}: {exc}", file=sys.stderr)
                await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(loop(s)) for s in symbols]
    say({"pid": os.getpid()})
    await serve({"stats": lambda: {**done, "parsed": CountingTickers.count, "t": time.time()}})
    for t in tasks:
        t.cancel()
    await ex.close()
    await redis.aclose()


async def role_cryptofeed(a: argparse.Namespace) -> None:
    """The peer: cryptofeed's Binance feed (TICKER = bookTicker) on the simulator, writing to Redis
    through its own backend (`--backend redis`: TickerRedis) or our latest-value callback (`callback`)."""
    import cryptofeed.feed
    from cryptofeed import FeedHandler
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
    from cryptofeed.defines import TICKER as CF_TICKER
    from cryptofeed.exchanges import Binance
    from redis.asyncio import Redis

    class LoopbackWS(WSAsyncConn):
        """cryptofeed refuses any address but wss://; the simulator speaks plain ws on loopback, to
        every design alike (TLS would charge cryptofeed alone for decryption)."""

        def __init__(self, address: str, *args: Any, **kw: Any) -> None:
            super().__init__("wss://" + address.removeprefix("ws://"), *args, **kw)
            self.address = address

    cryptofeed.feed.WSAsyncConn = LoopbackWS  # what Feed.connect() builds its sockets with

    class SimBinance(Binance):
        """cryptofeed's Binance with its two URLs pointed at the simulator's Binance venue: the
        websocket base (`/stream?streams=...` is appended) and the REST base (exchangeInfo)."""

        websocket_endpoints: ClassVar[list[Any]] = [WebsocketEndpoint(a.ws)]
        rest_endpoints: ClassVar[list[Any]] = [RestEndpoint(a.http, routes=Routes("/api/v3/exchangeInfo"))]

    symbols = orjson.loads(a.symbols)
    ccxt_of = {cf_symbol(s): s for s in symbols}
    done = {"ticks": 0, "parsed": 0} if a.backend == "redis" else {"ticks": 0, "parsed": 0, "round_trips": 0}
    auth = f":{a.password}@" if a.password else ""
    if a.backend == "redis":
        from cryptofeed.backends.redis import TickerRedis

        class CountedTickerRedis(TickerRedis):  # type: ignore[misc]
            """TickerRedis as it is, counting the ticks cryptofeed hands it."""

            async def write(self, data: Any) -> None:
                done["ticks"] += 1
                done["parsed"] += 1
                await super().write(data)

        backend = CountedTickerRedis(host=a.host, port=a.port)
        backend.redis = f"redis://{auth}{a.host}:{a.port}/{a.db}"  # its URL has no db: keep off db 0
        callback: Any = backend
    else:
        redis = Redis(host=a.host, port=a.port, db=a.db, password=a.password or None)
        ex = a.exchange

        async def callback(t: Any, receipt: float) -> None:
            """The latest value in our layout, one pipelined round trip per tick (awaited, as a
            cryptofeed callback is: the feed reads its socket again when the callback returns)."""
            done["parsed"] += 1
            symbol = ccxt_of.get(t.symbol, t.symbol)
            bid, ask = float(t.bid), float(t.ask)
            when = t.timestamp or receipt
            data = orjson.dumps({"symbol": symbol, "exchange": ex, "price": (bid + ask) / 2, "volume": 0.0,
                                 "time": when, "bid": bid, "ask": ask, "last": None, "change": None,
                                 "percentage": None})
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(f"tickers:{ex}", symbol, data)
                pipe.set(f"ticker_time:{ex}:{symbol}", repr(when))
                pipe.publish(f"ticker_updates:{ex}:{symbol}", data)
                await pipe.execute()
            done["ticks"] += 1
            done["round_trips"] += 1

    # uvloop: the bench already runs every role on it; the silence timeout as long as ours (the feed
    # is idle for minutes between steps); its log (warnings) beside the bench's other logs
    config = {"uvloop": False, "log": {"filename": a.log or "/dev/null", "level": "WARNING"}}
    fh = FeedHandler(config=config)
    feed = SimBinance(symbols=[cf_symbol(s) for s in symbols], channels=[CF_TICKER],
                      callbacks={CF_TICKER: callback}, timeout=3600, config=config)
    fh.add_feed(feed)
    fh.run(start_loop=False, install_signal_handlers=False)
    say({"pid": os.getpid(), "connections": len(feed.connection_handlers)})
    await serve({"stats": lambda: {**done, "t": time.time()}})
    with contextlib.suppress(Exception):
        await asyncio.wait_for(fh.stop_async(), 10)


# =============================================================================================
# the orchestrator's handles on processes
# =============================================================================================
class Child:
    """A role of this script in its own process."""

    def __init__(self, role: str, args: list[str], log: Path) -> None:
        self.role, self.args, self.log = role, args, log
        self.proc: asyncio.subprocess.Process | None = None
        self.hello: dict[str, Any] = {}

    async def start(self, timeout: float = 60) -> Child:
        with open(self.log, "ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE), self.role, *self.args, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err, limit=1 << 24, preexec_fn=pdeathsig)
        self.hello = await self._read(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.role} exited (code {await self.proc.wait()}); see {self.log}")
        out = orjson.loads(line)
        if isinstance(out, dict) and "error" in out:
            raise RuntimeError(f"{self.role}: {out['error']}")
        return out

    async def call(self, cmd: str, timeout: float = 60, **kw: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"cmd": cmd, **kw}) + b"\n")
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.call("quit", timeout=10)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Bench:
    """Holds the run's settings, Redis connection, temp dir and the results."""

    def __init__(self, a: argparse.Namespace) -> None:
        from redis.asyncio import Redis

        self.a = a
        self.redis = Redis(host=a.redis_host, port=a.redis_port, db=a.redis_db, password=a.redis_password or None)
        self.runtime = Path(os.environ.get("TEST_RUNTIME_DIR") or a.runtime_dir)
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="run-", dir=self.runtime))
        self.observer: Child | None = None
        self.results: dict[str, Any] = {"single": [], "sweep": [], "multi": [], "memory": [], "startup": [],
                                        "profile": None, "soak": None, "errors": [], "notes": []}
        self.t0 = time.monotonic()
        self.symbols_of: dict[str, set[str]] = {}  # what each catalog name collects (for staleness)
        self.primary = "ours"  # the worker design the targets are judged on (ours-native when it exists)
        self.decoder = False  # the worker's config knows `decoder`

    def note(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # --- processes -----------------------------------------------------------------------------
    async def sim(self, venues: str) -> Child:
        return await Child("_sim", ["--venues", venues, "--seed", str(self.a.seed)], self.tmp / "sim.log").start()

    def redis_args(self) -> list[str]:
        a = self.a
        return ["--host", a.redis_host, "--port", str(a.redis_port), "--db", str(a.redis_db),
                "--password", a.redis_password]

    def write_config(self, sim: Child, exchanges: dict[str, tuple[str, int]], start_method: str = "",
                     extra: dict[str, Any] | None = None) -> Path:
        """exchanges: catalog name -> (simulated venue, number of symbols); `extra`: more settings of
        every exchange (streams, decoder)."""
        a = self.a
        lines = ["[service]", f'namespace = "{NAMESPACE}"', "health_interval = 0.5", 'log_level = "WARNING"', "",
                 "[redis]", f"host = {toml_value(a.redis_host)}", f"port = {a.redis_port}", f"db = {a.redis_db}"]
        if a.redis_password:
            lines.append(f"password = {toml_value(a.redis_password)}")
        lines += ["", "[supervisor]", "heartbeat_timeout = 30.0", "start_grace = 60.0", "stop_timeout = 10.0"]
        if start_method and supports_start_method():
            lines.append(f'start_method = "{start_method}"')
        # the feed is idle for minutes between steps: a silence watchdog would reconnect (and back off) then
        lines += ["", "[defaults]", "reconnect_delay = 0.5", "stale_after = 3600.0", "symbol_stale_after = 0.0", ""]
        extra = dict(extra or {})
        more_ccxt = extra.pop("ccxt", {})  # merged into the simulator's overrides (e.g. options.ws)
        for name, (venue, n) in exchanges.items():
            lines += [f"[exchanges.{name}]", f'ccxt_id = "{venue}"',
                      f'markets = "{sim.hello["http"]}/{venue}/markets"',
                      f"ccxt = {toml_value(deep_merge(sim.hello['ccxt'][venue], more_ccxt))}",
                      f"symbols = {toml_value(sim.hello['symbols'][venue][:n])}",
                      *(f"{k} = {toml_value(v)}" for k, v in extra.items()), ""]
        path = self.tmp / f"config-{len(list(self.tmp.glob('config-*')))}.toml"
        path.write_text("\n".join(lines))
        return path

    async def popen(self, args: list[str], log: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        with open(self.tmp / log, "ab") as out:
            return await asyncio.create_subprocess_exec(
                sys.executable, *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=self.tmp, env={**child_env(self.runtime), **(env or {})}, preexec_fn=pdeathsig)

    async def health(self, exchange: str) -> dict[str, Any] | None:
        raw = await self.redis.get(f"{NAMESPACE}:health:{exchange}")
        return orjson.loads(raw) if raw else None

    async def fresh_health(self, exchange: str, after: float, timeout: float = 30) -> dict[str, Any]:
        """The first health record written after `after` (epoch s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = await self.health(exchange)
            if h and h["updated_at"] > after:
                return h
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no fresh health record of {exchange}")

    async def wait_running(self, exchanges: list[str], symbols: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = 0
            for ex in exchanges:
                h = await self.health(ex)
                if h and h["status"] == "running" and await self.redis.hlen(f"tickers:{ex}") >= symbols:
                    ok += 1
            if ok == len(exchanges):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"workers not running with {symbols} symbols stored after {timeout}s")

    async def wait_stored(self, exchange: str, symbols: int, timeout: float = 60) -> None:
        """For a process without a health record (upstream): wait until every symbol is stored."""
        deadline = time.monotonic() + timeout
        while await self.redis.hlen(f"tickers:{exchange}") < symbols:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{exchange}: fewer than {symbols} symbols stored after {timeout}s")
            await asyncio.sleep(0.1)

    # --- measurement pieces --------------------------------------------------------------------
    async def stored(self, store: Store) -> dict[str, list[Any]]:
        """The latest stored value of every symbol of `store`, as [field values]."""
        if store.zset:
            syms = sorted(self.symbols_of[store.exchange])
            async with self.redis.pipeline(transaction=False) as pipe:
                for sym in syms:
                    pipe.zrange(f"{CF_KEY}-{CF_EXCHANGE}-{cf_symbol(sym)}", -1, -1)
                tops = await pipe.execute()
            values = {sym: orjson.loads(top[0]) for sym, top in zip(syms, tops, strict=True) if top}
        else:
            raw = await self.redis.hgetall(f"tickers:{store.exchange}")
            values = {k.decode(): orjson.loads(v) for k, v in raw.items()}
        return {sym: [t.get(f) for f in store.fields] for sym, t in values.items()}

    async def stale(self, sim: Child, venue: str, stores: list[Store]) -> tuple[int, int]:
        """(stale symbols summed over stores, symbols compared): stored value != last sent."""
        good = (await sim.call("state", venue=venue))["last_good"]
        stale = total = 0
        for store in stores:
            stored = await self.stored(store)
            idx = [("last", "bid", "ask").index(f) for f in store.fields]
            for s in self.symbols_of[store.exchange]:
                total += 1
                t, q = stored.get(s), good.get(s)
                if t is None or q is None or t != [q[i] for i in idx]:
                    stale += 1
        return stale, total

    async def converge(self, sim: Child, venue: str, stores: list[Store], timeout: float,
                       pids: list[int]) -> dict[str, Any]:
        """After the feed stops: wait until nothing is stale, or until the writers are idle (stored values
        unchanged for 2 s and their processes used < 5% CPU meanwhile: whatever is stale then stays stale).
        A worker draining a backlog can go seconds between flushes, so an unchanged hash alone is no proof."""
        start = time.monotonic()
        last_digest, changed_at = None, start
        cpu: list[tuple[float, float]] = []
        stale, total = await self.stale(sim, venue, stores)
        while stale and time.monotonic() - start < timeout:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            digest = hash(tuple([orjson.dumps(await self.stored(st), option=orjson.OPT_SORT_KEYS) for st in stores]))
            if digest != last_digest:
                last_digest, changed_at = digest, now
            with contextlib.suppress(OSError):
                cpu.append((now, sum(cpu_seconds(p) for p in pids)))
            past = [c for t, c in cpu if t <= now - 2.0]
            if now - changed_at >= 2.0 and past and cpu[-1][1] - past[-1] < 0.1:
                break
            stale, total = await self.stale(sim, venue, stores)
        return {"stale": stale, "compared": total, "converge_s": round(time.monotonic() - start, 2)}

    async def idle(self, pids: list[int], timeout: float = 60) -> None:
        """Wait until the processes used < 5% CPU over the last second (a parse backlog is drained)."""
        deadline = time.monotonic() + timeout
        before = sum(cpu_seconds(p) for p in pids)
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = sum(cpu_seconds(p) for p in pids)
            if now - before < 0.05:
                return
            before = now

    async def commandstats(self) -> dict[str, int]:
        """Calls per command on the whole server (INFO commandstats)."""
        info = await self.redis.info("commandstats")
        out = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}
        out.update({k.removeprefix("cmdstat_") + "_usec": int(v["usec"]) for k, v in info.items()})
        return out

    async def used_memory(self) -> int:
        return int((await self.redis.info("memory"))["used_memory"])

    @staticmethod
    def latency(rows: list[list[Any]], log_path: Path, fields: tuple[str, ...],
                frame_e: bool = True) -> dict[str, dict[str, Any]]:
        """Per exchange: percentiles of receive - send (send log) and receive - frame E (ms). A value is
        matched to the latest send of it (symbol + fields) at or before its receive time: a price that
        recurs is never matched to a later send (negative latency) nor to a much older one."""
        idx = [("last", "bid", "ask").index(f) for f in fields]
        sent: dict[tuple[Any, ...], list[tuple[float, float]]] = defaultdict(list)
        for s, last, bid, ask, t, *after in orjson.loads(log_path.read_bytes()):
            v = (last, bid, ask)
            sent[(s, *(v[i] for i in idx))].append((t, after[0] if after else t))
        starts: dict[tuple[Any, ...], list[float]] = {}
        for key, times in sent.items():
            times.sort()
            starts[key] = [t for t, _ in times]
        precise: dict[str, list[float]] = defaultdict(list)
        past_sim: dict[str, list[float]] = defaultdict(list)
        by_e: dict[str, list[float]] = defaultdict(list)
        unmatched: Counter[str] = Counter()
        for ex, sym, last, bid, ask, tick_time, recv in rows:
            by_e[ex].append(recv - tick_time)
            v = (last, bid, ask)
            key = (sym, *(v[i] for i in idx))
            begun = starts.get(key)
            i = bisect.bisect_right(begun, recv) if begun else 0
            if not i:
                unmatched[ex] += 1
            else:
                t, after = sent[key][i - 1]
                precise[ex].append(recv - t)
                past_sim[ex].append(recv - after)
        out = {}
        for ex in by_e:
            out[ex] = {**percentiles(precise[ex]), "unmatched": unmatched[ex],
                       "past_sim": {k: v for k, v in percentiles(past_sim[ex]).items() if k in ("p50", "p99", "max")},
                       "frame_E": {k: v for k, v in percentiles(by_e[ex]).items() if k in ("p50", "p99", "max")}
                       if frame_e else {}}
        return out

    # --- one design, one rate ------------------------------------------------------------------
    async def step(self, sim: Child, design: Design, rate: float, symbols: int) -> dict[str, Any]:
        a = self.a
        venue = "binance"
        assert self.observer is not None
        await sim.call("sendlog")  # forget what came before this step
        if design.store.zset:
            await self.observer.call("monitor_on", label=design.exchange, prefix=f"{CF_KEY}-{CF_EXCHANGE}-")
        await sim.call("rate", venue=venue, rate=rate)
        await asyncio.sleep(a.warmup)
        o0 = await self.observer.call("clear")
        s0 = await sim.call("state", venue=venue)
        c0 = await design.counters()
        m0, sim0, r0, u0 = cpu_busy(), cpu_seconds(sim.pid), await self.commandstats(), await self.used_memory()
        await asyncio.sleep(a.window)
        c1 = await design.counters()
        m1, sim1, r1, u1 = cpu_busy(), cpu_seconds(sim.pid), await self.commandstats(), await self.used_memory()
        s1 = await sim.call("state", venue=venue)
        obs_path, log_path = self.tmp / "obs.json", self.tmp / "sendlog.json"
        obs = await self.observer.call("dump", path=str(obs_path))
        if design.store.zset:
            await self.observer.call("monitor_off")
        mem = memory_mb(design.pid)
        await sim.call("rate", venue=venue, rate=0.0)
        row: dict[str, Any] = {"design": design.name, "stream": design.stream, "symbols": symbols,
                               "offered": "sat" if rate >= SAT else int(rate)}
        dt = c1["t"] - c0["t"]
        row["sent_per_s"] = round((s1["sent"] - s0["sent"]) / (s1["t"] - s0["t"]), 1)
        ticks = c1["ticks"] - c0["ticks"]
        row["ticks_per_s"] = round(ticks / dt, 1)
        parsed = c1["parsed"] - c0["parsed"] if "parsed" in c1 else ticks
        row["parsed_per_s"] = round(parsed / dt, 1)
        # per ticker parsed: the same unit for every design (upstream drops many it parses). Over the
        # window only here; replaced below by window + drain (a design that falls behind does part of
        # the window's work after it: the backlog in its socket buffers or in cryptofeed's backend queue)
        row["cpu_us_per_tick_window"] = round((c1["cpu"] - c0["cpu"]) / max(parsed, 1) * 1e6, 1)
        row["cpu_share"] = round((c1["cpu"] - c0["cpu"]) / dt, 3)
        row["sim_cpu_share"] = round((sim1 - sim0) / dt, 3)
        # cores busy on the whole machine (ours and everyone else's): the noise this step ran in
        row["machine_busy_cores"] = round((m1[0] - m0[0]) / (m1[1] - m0[1]) * (os.cpu_count() or 1), 2)
        # what Redis holds more after the window (server-wide): ~0 for latest values, history grows
        row["redis_mb_per_min"] = round((u1 - u0) / (obs["t"] - o0["t"]) * 60 / 2**20, 2)
        if "decoder" in c1:  # what the worker says it decoded with (its health record)
            row["decoder"] = {"used": c1["decoder"], "fallback": c1.get("decoder_fallback") or "",
                              "mismatches": c1.get("decoder_mismatches", 0)}
            if "decoder_frames" in c1 and "decoder_frames" in c0:
                row["decoder"]["native_share"] = round((c1["decoder_frames"] - c0["decoder_frames"]) / max(ticks, 1), 3)
        if design.writes:
            seen = obs["zadds"] if design.store.zset else obs["n"]
            row["written_per_s"] = round(seen / (obs["t"] - o0["t"]), 1)  # counted by the observer
            if "round_trips" in c1:
                row["rt_per_tick"] = round((c1["round_trips"] - c0["round_trips"]) / max(ticks, 1), 4)
            if "flushes" in c1:
                fl = c1["flushes"] - c0["flushes"]
                row["rt_per_flush"] = round((c1["round_trips"] - c0["round_trips"]) / max(fl, 1), 3)
                row["ticks_per_flush"] = round(ticks / max(fl, 1), 1)
                # what the server saw (server-wide: exact only with --private-redis): redis-py runs
                # SCRIPT EXISTS as a round trip of its own before every pipeline holding a Script
                cmds = {k: r1.get(k, 0) - r0.get(k, 0) for k in ("evalsha", "script|exists")}
                row["server_per_flush"] = {k: round(v / max(fl, 1), 3) for k, v in cmds.items()}
                # the server's own time running the flushes (the script, its writes and PUBLISHes)
                usec = r1.get("evalsha_usec", 0) - r0.get("evalsha_usec", 0)
                row["server_us_per_flush"] = round(usec / max(fl, 1), 1)
            row.update(await self.converge(sim, venue, [design.store], a.drain_timeout, [design.pid]))
            await sim.call("sendlog", path=str(log_path))
            rows = orjson.loads(obs_path.read_bytes())
            if design.store.zset:  # cryptofeed's backend keeps every tick
                row["history_entries"] = sum(await self.zcards(design))
            lat = self.latency(rows, log_path, design.store.fields, frame_e=design.stream == TICKER)
            row["latency"] = lat.get(design.exchange, percentiles([]))
        else:
            await self.idle([design.pid])  # its backlog drained: the next step gets the machine
        c2 = await design.counters()  # drained: the CPU of the window's whole work, per tick parsed
        parsed2 = c2["parsed"] - c0["parsed"] if "parsed" in c2 else c2["ticks"] - c0["ticks"]
        row["cpu_us_per_tick"] = round((c2["cpu"] - c0["cpu"]) / max(parsed2, 1) * 1e6, 1)
        row.update({k: v for k, v in mem.items()})
        self.note(f"{design.name:16s} {design.stream:10s} {row['offered']!s:>6} offered: "
                  f"{row['ticks_per_s']:9.0f} ticks/s, {row['cpu_us_per_tick']} us/tick"
                  + (f", stale {row['stale']}, p99 {row['latency']['p99']} ms (past the simulator "
                     f"{(row['latency'].get('past_sim') or {}).get('p99')})" if design.writes else ""))
        return row

    async def zcards(self, design: Design) -> list[int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for sym in sorted(self.symbols_of[design.exchange]):
                pipe.zcard(f"{CF_KEY}-{CF_EXCHANGE}-{cf_symbol(sym)}")
            return await pipe.execute()

    async def ladder(self, symbols: int, rates: dict[str, list[float]], rounds: int = 0, stream: str = TICKER,
                     round_designs: tuple[str, ...] = (), repeat: dict[str, list[float]] | None = None
                     ) -> list[dict[str, Any]]:
        """Every design alive at once, each on its own simulator (same seed: the same frames), only the
        measured one fed: at each rate the designs run back to back, so they share the machine's
        state of the moment. Then the steps of `repeat` (design -> rates) again, --latency-rounds in
        all, the designs alternating as in the ladder. Then `rounds` alternating saturation steps of
        `round_designs` (the ceiling)."""
        main = symbols == self.a.symbols and stream == TICKER
        extras = main and (self.a.profile or self.a.soak)
        primary = self.primary
        designs = [d for d in DESIGNS if rates.get(d) or (rounds and d in round_designs)
                   or (d == primary and extras)]
        sims: dict[str, Child] = {}
        procs: dict[str, Design] = {}
        rows: list[dict[str, Any]] = []
        try:
            for d in designs:
                sims[d] = await self.sim(f"binance:{symbols}")
                procs[d] = Design(self, d, sims[d], symbols, stream)
                await procs[d].start()
            for rate in sorted(dict.fromkeys(r for d in designs for r in rates.get(d, []))):
                for d in designs:
                    if rate in rates.get(d, []):
                        rows.append(await self.step(sims[d], procs[d], rate, symbols))
            # the steps the p99 targets are judged on, again: one 6 s window's p99 rests on a few
            # episodes of contention, so those targets take the median of these rounds
            again = {d: [r for r in rs if r in rates.get(d, [])] for d, rs in (repeat or {}).items() if d in procs}
            for i in range(2, self.a.latency_rounds + 1):
                for rate in sorted({r for rs in again.values() for r in rs}):
                    for d in designs:
                        if rate in again.get(d, []):
                            rows.append({**await self.step(sims[d], procs[d], rate, symbols), "repeat": i})
            for i in range(rounds):
                for d in round_designs:
                    if d in procs:
                        rows.append({**await self.step(sims[d], procs[d], SAT, symbols), "round": i + 1})
            if extras and primary in procs:
                if self.a.profile:
                    self.results["profile"] = {r: await self.profile(sims[primary], procs[primary], r)
                                               for r in self.a.profile_rates.split(",")}
                if self.a.soak:
                    self.results["soak"] = await self.soak(sims[primary], procs[primary])
        finally:
            for d in designs:
                if d in procs:
                    await procs[d].stop()
                if d in sims:
                    await sims[d].stop()
            await self.redis.flushdb()
        return rows

    # --- profile and soak ----------------------------------------------------------------------
    async def profile(self, sim: Child, design: Design, rate: str) -> dict[str, Any]:
        """py-spy on the worker at `rate` ('sat' or ticks/s); self time by owner, our hot lines."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            return {"error": "py-spy not installed (pip install py-spy)"}
        out = self.tmp / f"profile-{rate}.txt"
        await sim.call("rate", venue="binance", rate=parse_rates(rate)[0])
        await asyncio.sleep(1.0)
        proc = await asyncio.create_subprocess_exec(
            spy, "record", "-p", str(design.pid), "-d", str(int(self.a.profile)), "-r", "250", "-f", "raw",
            "-o", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        await sim.call("rate", venue="binance", rate=0.0)
        await self.converge(sim, "binance", [design.store], self.a.drain_timeout, [design.pid])  # drained
        await sim.call("sendlog")
        if proc.returncode != 0 or not out.exists():
            return {"error": f"py-spy failed: {err.decode()[-300:]}"}
        if self.a.out:
            Path(self.a.out).mkdir(parents=True, exist_ok=True)
            shutil.copy(out, Path(self.a.out) / f"profile-ours-{rate}.txt")
        result = {"rate": rate, **summarise_profile(out.read_text())}
        self.note(f"profile at {rate}: {result['samples']} samples; " + ", ".join(
            f"{k} {v}%" for k, v in list(result["categories"].items())[:3]))
        return result

    async def soak(self, sim: Child, design: Design) -> dict[str, Any]:
        rate = self.a.soak_rate
        await sim.call("rate", venue="binance", rate=rate)
        samples = []
        start = time.monotonic()

        async def sample() -> None:
            h = await self.health(design.exchange) or {}
            samples.append({"t": round(time.monotonic() - start, 1), **memory_mb(design.pid),
                            "ticks": h.get("ticks"), "cpu_s": round(cpu_seconds(design.pid), 2)})
            await sim.call("sendlog")  # the simulator's send log is not needed here: keep it small

        while time.monotonic() - start < self.a.soak:
            await sample()
            await asyncio.sleep(min(10.0, self.a.soak / 10))
        await sample()
        await sim.call("rate", venue="binance", rate=0.0)
        await sim.call("sendlog")
        half = [s for s in samples if s["t"] >= self.a.soak / 2] or samples
        out = {"rate": rate, "seconds": self.a.soak, "samples": samples,
               "pss_first": samples[0].get("pss"), "pss_last": samples[-1].get("pss"),
               "pss_max": max(s.get("pss", 0) for s in samples),
               "pss_growth_second_half_mb": round(half[-1].get("pss", 0) - half[0].get("pss", 0), 1),
               "anon_first": samples[0].get("anon"), "anon_last": samples[-1].get("anon"),
               "anon_growth_second_half_mb": round(half[-1].get("anon", 0) - half[0].get("anon", 0), 1),
               "ticks_per_s": round(((samples[-1]["ticks"] or 0) - (samples[0]["ticks"] or 0))
                                    / max(samples[-1]["t"] - samples[0]["t"], 1), 1)}
        self.note(f"soak {self.a.soak}s at {rate}/s: PSS {out['pss_first']} -> {out['pss_last']} MB")
        return out

    # --- several workers through tickerctl up ------------------------------------------------
    async def supervisor(self, sim: Child, exchanges: dict[str, tuple[str, int]], start_method: str,
                         log: str) -> tuple[asyncio.subprocess.Process, float]:
        # the ticker stream only, as in the one-worker ladder (the default adds bookTicker: two ticks a quote)
        cfg = self.write_config(sim, exchanges, start_method, {"streams": [WORKER_STREAM[TICKER]]})
        t0 = time.time()
        proc = await self.popen(["-m", "fullon_ticker_service.cli", "up", "-c", str(cfg)], log)
        return proc, t0

    async def stop_supervisor(self, proc: asyncio.subprocess.Process) -> None:
        tree = descendants(proc.pid)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for pid in tree:  # anything of ours still around after the graceful stop
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.redis.flushdb()

    def tree_memory(self, pid: int, workers: list[int]) -> dict[str, Any]:
        tree = [pid, *descendants(pid)]
        mems = {p: memory_mb(p) for p in tree}
        per = [mems.get(w, memory_mb(w)) for w in workers]
        return {"workers": len(workers),
                "worker_rss_mb": [m.get("rss") for m in per], "worker_pss_mb": [m.get("pss") for m in per],
                "tree_pss_mb": round(sum(m.get("pss", 0) for m in mems.values()), 1),
                "tree_rss_mb": round(sum(m.get("rss", 0) for m in mems.values()), 1),
                "processes": len(tree)}

    async def multi(self, n: int, symbols: int, rates: list[float], start_method: str) -> dict[str, Any]:
        sim = await self.sim(f"binance:{symbols}")
        names = [f"{PREFIX}_binance" + (f"_{i}" if i > 1 else "") for i in range(1, n + 1)]
        for name in names:
            self.symbols_of[name] = set(sim.hello["symbols"]["binance"][:symbols])
        proc, _ = await self.supervisor(sim, {name: ("binance", symbols) for name in names}, start_method,
                                        f"up-{n}-{start_method}.log")
        out: dict[str, Any] = {"workers": n, "symbols_each": symbols, "start_method": start_method or "default",
                               "steps": []}
        try:
            await self.wait_running(names, symbols)
            pids = {name: (await self.health(name))["pid"] for name in names}  # type: ignore[index]
            for rate in rates:
                out["steps"].append(await self.multi_step(sim, names, pids, rate))
            await sim.call("rate", venue="binance", rate=self.a.mem_rate)
            await asyncio.sleep(self.a.warmup)
            out["memory"] = self.tree_memory(proc.pid, list(pids.values()))
            await sim.call("rate", venue="binance", rate=0.0)
        finally:
            await self.stop_supervisor(proc)
            await sim.stop()
        return out

    async def multi_step(self, sim: Child, names: list[str], pids: dict[str, int], rate: float) -> dict[str, Any]:
        a = self.a
        assert self.observer is not None
        await sim.call("sendlog")
        await sim.call("rate", venue="binance", rate=rate)
        await asyncio.sleep(a.warmup)
        await self.observer.call("clear")
        now = time.time()
        h0 = {n: await self.fresh_health(n, now) for n in names}
        cpu0 = {n: cpu_seconds(pids[n]) for n in names}
        await asyncio.sleep(a.window)
        now = time.time()
        h1 = {n: await self.fresh_health(n, now) for n in names}
        cpu1 = {n: cpu_seconds(pids[n]) for n in names}
        obs_path, log_path = self.tmp / "obs.json", self.tmp / "sendlog.json"
        await self.observer.call("dump", path=str(obs_path))
        await sim.call("rate", venue="binance", rate=0.0)
        conv = await self.converge(sim, "binance", [Store(n) for n in names], a.drain_timeout, list(pids.values()))
        await sim.call("sendlog", path=str(log_path))
        lat = self.latency(orjson.loads(obs_path.read_bytes()), log_path, FIELDS[TICKER])
        per = []
        for n in names:
            ticks = h1[n]["ticks"] - h0[n]["ticks"]
            dt = h1[n]["updated_at"] - h0[n]["updated_at"]
            per.append({"exchange": n, "ticks_per_s": round(ticks / dt, 1),
                        "cpu_us_per_tick": round((cpu1[n] - cpu0[n]) / max(ticks, 1) * 1e6, 1),
                        "latency": lat.get(n, percentiles([]))})
        row = {"offered_each": "sat" if rate >= SAT else int(rate),
               "aggregate_ticks_per_s": round(sum(p["ticks_per_s"] for p in per), 1), **conv, "per_worker": per}
        p99s = [p["latency"]["p99"] for p in per if p["latency"]["p99"] is not None]
        self.note(f"{len(names)} workers, {row['offered_each']}/s each: aggregate {row['aggregate_ticks_per_s']:.0f}"
                  f" ticks/s, worst p99 {max(p99s) if p99s else None} ms, stale {conv['stale']}")
        return row

    async def memory_only(self, n: int, symbols: int, start_method: str) -> dict[str, Any]:
        """Start n workers, let them tick a little, read RSS/PSS of the whole tree."""
        sim = await self.sim(f"binance:{symbols}")
        names = [f"{PREFIX}_binance" + (f"_{i}" if i > 1 else "") for i in range(1, n + 1)]
        proc, _ = await self.supervisor(sim, {name: ("binance", symbols) for name in names}, start_method,
                                        f"mem-{n}-{start_method}.log")
        try:
            await self.wait_running(names, symbols)
            pids = [(await self.health(name))["pid"] for name in names]  # type: ignore[index]
            await sim.call("rate", venue="binance", rate=self.a.mem_rate)
            await asyncio.sleep(self.a.warmup + 1)
            mem = {"start_method": start_method, **self.tree_memory(proc.pid, pids)}
            await sim.call("rate", venue="binance", rate=0.0)
        finally:
            await self.stop_supervisor(proc)
            await sim.stop()
        self.note(f"memory {start_method} x{n}: worker PSS {mem['worker_pss_mb']} MB, tree PSS {mem['tree_pss_mb']} MB")
        return mem

    async def startup(self, venues: list[str], start_method: str) -> dict[str, Any]:
        """`tickerctl up` -> first tick of every exchange seen by the observer (seconds)."""
        sim = await self.sim(",".join(f"{v}:20" for v in venues))
        for v in venues:
            await sim.call("rate", venue=v, rate=50.0)
        assert self.observer is not None
        await self.observer.call("clear")
        names = {f"{PREFIX}_{v}": (v, 20) for v in venues}
        proc, t0 = await self.supervisor(sim, names, start_method, f"startup-{start_method}.log")
        try:
            deadline = time.monotonic() + 90
            first: dict[str, float] = {}
            while time.monotonic() < deadline:
                first = (await self.observer.call("first"))["first"]
                if all(n in first for n in names):
                    break
                await asyncio.sleep(0.05)
            await self.observer.call("clear")
        finally:
            await self.stop_supervisor(proc)
            await sim.stop()
        per = {n: round(first[n] - t0, 2) for n in names if n in first}
        out = {"start_method": start_method, "exchanges": len(names), "first_tick_s": per,
               "all_s": max(per.values()) if len(per) == len(names) else None}
        self.note(f"startup {start_method}: {out['all_s']} s until all {len(names)} exchanges ticked")
        return out


class Design:
    """One consumer of one stream: ccxt-only, one of ours (the real worker), upstream or cryptofeed."""

    def __init__(self, bench: Bench, name: str, sim: Child, symbols: int, stream: str = TICKER) -> None:
        self.bench, self.name, self.sim, self.symbols, self.stream = bench, name, sim, symbols, stream
        # never the same keys (nor the same lease: a second worker of one name would stand by)
        self.exchange = f"{PREFIX}_{name.replace('-', '_')}"
        self.writes = name != "ccxt-only"
        self.store = Store(self.exchange, FIELDS[stream], zset=name == "cryptofeed-redis")
        self.child: Child | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.pid = 0
        bench.symbols_of[self.exchange] = set(sim.hello["symbols"]["binance"][:symbols])

    async def start(self) -> None:
        b, sim = self.bench, self.sim
        syms = sim.hello["symbols"]["binance"][:self.symbols]
        if self.name in OURS:
            extra: dict[str, Any] = {"streams": [WORKER_STREAM[self.stream]]}
            env: dict[str, str] = {}
            if self.name in ("ours-native", "ours-ccxt"):
                extra["decoder"] = self.name.removeprefix("ours-")
            elif self.name == "ours-both":
                extra = {"streams": ["ticker", "bidask"], "decoder": "ccxt"}
            elif self.name == "ours-baseline":
                src = os.environ.get("BENCH_BASELINE_SRC", "")
                if not src or not (Path(src) / "fullon_ticker_service").is_dir():
                    raise SystemExit("ours-baseline: set BENCH_BASELINE_SRC to the src/ of the revision to compare, "
                                     "e.g. git archive REV src | tar -x -C /tmp/base; BENCH_BASELINE_SRC=/tmp/base/src")
                # its config may know neither streams nor decoder: BENCH_BASELINE_EXTRA, when set, gives
                # what it knows (e.g. '{"streams": ["bidask"], "decoder": "native"}' for bookTicker)
                if (given := os.environ.get("BENCH_BASELINE_EXTRA")) is not None:
                    extra = orjson.loads(given or "{}")
                env = {"PYTHONPATH": src}
            cfg = b.write_config(sim, {self.exchange: ("binance", self.symbols)}, extra=extra)
            self.proc = await b.popen(["-m", "fullon_ticker_service.worker", self.exchange, "--config", str(cfg)],
                                      f"worker-{self.name}-{self.stream}-{self.symbols}.log", env)
            await b.wait_running([self.exchange], self.symbols)
            self.pid = self.proc.pid
            return
        log = b.tmp / f"{self.name}-{self.stream}-{self.symbols}.log"
        args = ["--venue", "binance", "--symbols", orjson.dumps(syms).decode(), "--stream", self.stream]
        if self.name in CRYPTOFEED:
            base = f"{sim.hello['http']}/binance"
            self.child = await Child("_cryptofeed", [
                *args, "--ws", "ws" + base.removeprefix("http"), "--http", base, "--exchange", self.exchange,
                "--backend", "redis" if self.name == "cryptofeed-redis" else "callback",
                "--log", str(b.tmp / f"{self.name}-feedhandler.log"), *b.redis_args()], log).start()
            if self.name == "cryptofeed-redis":
                await self.wait_zsets()
            else:
                await b.wait_stored(self.exchange, self.symbols)
        else:
            args += ["--ccxt", orjson.dumps(sim.hello["ccxt"]["binance"]).decode(),
                     "--markets", f"{sim.hello['http']}/binance/markets"]
            if self.name == "ccxt-only":
                self.child = await Child("_ccxt", [*args, "--chunk", "100"], log).start()
            else:
                self.child = await Child("_upstream", [*args, "--exchange", self.exchange, *b.redis_args()],
                                         log).start()
                await b.wait_stored(self.exchange, self.symbols)
        self.pid = self.child.pid
        await asyncio.sleep(1.0)  # subscriptions settle

    async def wait_zsets(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for n in await self.bench.zcards(self) if n) < self.symbols:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: fewer than {self.symbols} ZSETs after {timeout}s")
            await asyncio.sleep(0.1)

    async def counters(self) -> dict[str, Any]:
        if self.name in OURS:
            h = await self.bench.fresh_health(self.exchange, time.time())
            return {"t": h["updated_at"], "ticks": h["ticks"], "round_trips": h["redis_round_trips"],
                    "flushes": h["flushes"], "cpu": cpu_seconds(self.pid),
                    **{k: h[k] for k in ("decoder", "decoder_fallback", "decoder_mismatches", "decoder_frames")
                       if k in h}}
        assert self.child is not None
        s = await self.child.call("stats")
        return {**s, "cpu": cpu_seconds(self.pid)}

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# =============================================================================================
# profile summary
# =============================================================================================
LOOP_FILES = ("uvloop/", "asyncio/")


def classify(frame: str) -> str | None:
    """The owner of one py-spy frame `func (path:line)`, or None for stdlib/loop frames."""
    if "fullon_ticker_service/" in frame:
        return "ours (fullon_ticker_service)"
    for pkg, label in (("ccxt/", "ccxt"), ("redis/", "redis-py"), ("aiohttp/", "aiohttp (websocket)"),
                       ("loguru/", "loguru"), ("orjson", "orjson"), ("yarl/", "aiohttp (websocket)"),
                       ("multidict", "aiohttp (websocket)")):
        if pkg in frame:
            return label
    return None


def summarise_profile(raw: str) -> dict[str, Any]:
    """Self time by package of the innermost non-stdlib frame; our hot lines; ccxt's share."""
    cats: Counter[str] = Counter()
    ours_lines: Counter[str] = Counter()
    ours_incl: Counter[str] = Counter()
    ccxt_incl: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        owner, hot = "stdlib / event loop", ""
        if frames[0].startswith("Thread._bootstrap"):
            # not the event loop's thread: mostly blocked waits py-spy cannot tell from work (pycares'
            # shutdown thread when aiodns is installed, the resolver's executor)
            cats["other threads"] += n
            continue
        for f in reversed(frames):
            c = classify(f)
            # the process's entry frames (where uvloop runs its C callbacks) are the loop, not our code
            if c is not None and not any(x in f for x in ("run_process", "<module>", "main (", "_run (",
                                                          "fullon_ticker_service/cli.py")):
                owner, hot = c, f
                break
        cats[owner] += n
        if owner.startswith("ours"):
            ours_lines[hot] += n
        names = {f.split(" (", 1)[0].rsplit(".", 1)[-1] for f in frames if "fullon_ticker_service/" in f}
        for fn in ("on_ticker", "on_bidask", "normalise", "validate", "put", "flush_now", "_send", "_watch",
                   "health_record", "_publish_health", "_watchdog", "_hook", "_decode", "_deliver", "_shadow"):
            if fn in names:  # inclusive time of our functions
                ours_incl[fn] += n
        cnames = {f.split(" (", 1)[0].rsplit(".", 1)[-1] for f in frames if "ccxt/" in f}
        for fn in ("handle_message", "handle_tickers_and_bids_asks", "parse_ws_ticker", "watch_tickers",
                   "watch_multiple", "resolve"):
            if fn in cnames:
                ccxt_incl[fn] += n
    pct = {k: round(v * 100 / max(total, 1), 1) for k, v in cats.most_common()}
    return {"samples": total, "categories": pct,
            "ours_hot_lines": [[k, round(v * 100 / max(total, 1), 1)] for k, v in ours_lines.most_common(12)],
            "ours_inclusive": {k: round(v * 100 / max(total, 1), 1) for k, v in ours_incl.most_common()},
            "ccxt_inclusive": {k: round(v * 100 / max(total, 1), 1) for k, v in ccxt_incl.most_common()}}


# =============================================================================================
# report
# =============================================================================================
def machine() -> dict[str, Any]:
    import ccxt
    import redis

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    try:
        rv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=5).stdout.split()
        redis_server = next((w.split("=")[1] for w in rv if w.startswith("v=")), "?")
    except (OSError, subprocess.SubprocessError):
        redis_server = "?"
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                                    * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version(), "ccxt": ccxt.__version__,
            "redis_py": redis.__version__, "redis_server": redis_server,
            "cryptofeed": version_of("cryptofeed"), "matplotlib": version_of("matplotlib"),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def python_speed(n: int = 2_000_000, rounds: int = 3) -> float:
    """Millions of pure-Python loop steps per second, best of `rounds`: a yardstick for the host's speed
    at that moment (shared machines vary by tens of per cent), so runs of different days can be compared."""
    best = math.inf
    for _ in range(rounds):
        started, total = time.perf_counter(), 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(n / best / 1e6, 1)


def version_of(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def fmt(v: Any, width: int = 8) -> str:
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        return (f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}").rjust(width)
    return str(v).rjust(width)


def ceiling(rows: list[dict[str, Any]], design: str = "ours") -> dict[str, Any] | None:
    """The alternating saturation rounds: `design` / ccxt-only per round, and the median ratio."""
    by: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if "round" in r:
            by[r["round"]][r["design"]] = r
    pairs = [(d["ccxt-only"], d[design]) for _, d in sorted(by.items()) if "ccxt-only" in d and design in d]
    if not pairs:
        return None
    ratios = sorted(o["ticks_per_s"] / max(c["ticks_per_s"], 1) for c, o in pairs)
    # the same ratio from CPU per tick: ticks one core sustains; robust to what else the machine runs
    cpu = sorted(c["cpu_us_per_tick"] / o["cpu_us_per_tick"] for c, o in pairs)
    med = len(pairs) // 2
    return {"symbols": pairs[0][1]["symbols"], "design": design, "stream": pairs[0][1].get("stream", TICKER),
            "rounds": [{"ccxt_only": c["ticks_per_s"], "ours": o["ticks_per_s"], "ours_stale": o.get("stale"),
                        "ratio": round(o["ticks_per_s"] / max(c["ticks_per_s"], 1), 3),
                        "cpu_ratio": round(c["cpu_us_per_tick"] / o["cpu_us_per_tick"], 3),
                        "busy": [c.get("machine_busy_cores"), o.get("machine_busy_cores")]} for c, o in pairs],
            "median_ratio": round(ratios[med], 3),
            "median_cpu_ratio": round(cpu[med], 3),
            "ours_per_core": round(1e6 / sorted(o["cpu_us_per_tick"] for _, o in pairs)[med]),
            "ccxt_per_core": round(1e6 / sorted(c["cpu_us_per_tick"] for c, _ in pairs)[med]),
            "ours_median": sorted(o["ticks_per_s"] for _, o in pairs)[len(pairs) // 2],
            "ccxt_median": sorted(c["ticks_per_s"] for c, _ in pairs)[len(pairs) // 2],
            "ours_stale_max": max(o.get("stale") or 0 for _, o in pairs)}


def derive(res: dict[str, Any]) -> None:
    """Everything computed from the rows: ceilings, ratios, the cryptofeed comparison, the targets.
    Also for a bench.json of an earlier version (rows without `stream` are the ticker stream)."""
    for r in res.get("single", []) + res.get("sweep", []):
        r.setdefault("stream", TICKER)
    res.setdefault("notes", [])
    present = {r["design"] for r in res["single"]}
    if res.get("primary") not in present:
        res["primary"] = next((d for d in OURS if d in present), "ours")
    res["ceilings"] = [c for stream in STREAMS for d in DESIGNS if d != "ccxt-only"
                       if (c := ceiling([r for r in res["single"] if r["stream"] == stream], d))]
    res["ceiling"] = next((c for c in res["ceilings"] if c["stream"] == TICKER and c["design"] == res["primary"]), None)
    res["sweep_ceiling"] = [c for n in sorted({r["symbols"] for r in res["sweep"]})
                            if (c := ceiling([r for r in res["sweep"] if r["symbols"] == n], res["primary"]))]
    res["ratios"] = ratios(res)
    res["peers"] = peers(res)
    res["targets"] = targets(res)
    res["peer_targets"] = peer_targets(res)


def ladder_rows(res: dict[str, Any], stream: str) -> dict[tuple[str, Any], dict[str, Any]]:
    """(design, offered) -> row of the main ladder (the run's symbol count, no saturation rounds)."""
    sym = res["params"]["symbols"]
    return {(r["design"], r["offered"]): r for r in res["single"]
            if "round" not in r and "repeat" not in r and r["symbols"] == sym and r.get("stream", TICKER) == stream}


def latency_rounds(res: dict[str, Any], stream: str, design: str, offered: int) -> list[dict[str, Any]]:
    """The main ladder's row of `design` at `offered` followed by its repeats (--latency-rounds), in run order."""
    sym = res["params"]["symbols"]
    return [r for r in res["single"] if r["design"] == design and r["offered"] == offered and "round" not in r
            and r["symbols"] == sym and r.get("stream", TICKER) == stream]


def ratio(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None or y == 0 else round(x / y, 3)


def median_of(values: list[Any]) -> Any:
    """The median of the values that are not None (None when none is)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def peers(res: dict[str, Any]) -> list[dict[str, Any]]:
    """bookTicker, per offered rate: each of ours and each cryptofeed design side by side, and
    ours/cryptofeed of p50, p99 and CPU per tick (below 1: ours is lower). A design measured in
    several rounds (--latency-rounds) gives the median of each figure, the most stale, and `rounds`."""
    rows = ladder_rows(res, BOOK)
    out = []
    for offered in sorted({o for _, o in rows if o != "sat"}):
        entry: dict[str, Any] = {"offered": offered, "designs": {}, "ratios": {}}
        for d in (*OURS, *CRYPTOFEED):
            rs = latency_rounds(res, BOOK, d, offered)
            if rs:
                lats = [r.get("latency") or {} for r in rs]
                entry["designs"][d] = {
                    "p50": median_of([x.get("p50") for x in lats]), "p99": median_of([x.get("p99") for x in lats]),
                    "cpu_us_per_tick": median_of([r["cpu_us_per_tick"] for r in rs]),
                    "stale": max((r["stale"] for r in rs if r.get("stale") is not None), default=None),
                    "ticks_per_s": median_of([r["ticks_per_s"] for r in rs]), "rounds": len(rs),
                    "p99_rounds": [x.get("p99") for x in lats], "cpu_rounds": [r["cpu_us_per_tick"] for r in rs]}
        for o in OURS:
            for c in CRYPTOFEED:
                if o in entry["designs"] and c in entry["designs"]:
                    a, b = entry["designs"][o], entry["designs"][c]
                    entry["ratios"][f"{o}/{c}"] = {k: ratio(a[k], b[k]) for k in ("p50", "p99", "cpu_us_per_tick")}
        if any(c in entry["designs"] for c in CRYPTOFEED):
            out.append(entry)
    return out


def decoding_of(res: dict[str, Any]) -> str:
    p = res["primary"]
    return {"ours-native": "native decoder", "ours-ccxt": "ccxt decoding"}.get(
        p, "the worker's default: ccxt decoding, no `decoder` key yet")


def peer_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The "Beat the peers" targets, judged on the primary worker design (ours-native when it ran)."""
    p = res["primary"]
    out = []

    def add(name: str, value: str, ok: bool | None) -> None:
        out.append({"target": name, "value": value, "met": ok})

    for c in res.get("ceilings", []):
        if c["design"] == p:
            add(f"saturation per CPU >= 2x ccxt-only on the same stream, 0 stale ({c['stream']}, {p})",
                f"{c['median_cpu_ratio']:.2f}x (one core: {p} {c['ours_per_core']}/s, ccxt-only "
                f"{c['ccxt_per_core']}/s), stale at most {c['ours_stale_max']}",
                c["median_cpu_ratio"] >= 2.0 and c["ours_stale_max"] == 0)
    for stream in STREAMS:
        rs = [r for r in latency_rounds(res, stream, p, TARGET_RATE) if (r.get("latency") or {}).get("p99") is not None]
        if rs:
            p99 = statistics.median(r["latency"]["p99"] for r in rs)
            stale = max(r["stale"] for r in rs)
            each = "; ".join(f"{r['latency']['p99']} ms (leaving the simulator: "
                             f"{(r['latency'].get('past_sim') or {}).get('p99')}), {r['ticks_per_s']:.0f} of "
                             f"{r['sent_per_s']:.0f}/s, busy {r.get('machine_busy_cores')}" for r in rs)
            add(f"p99 <= 5 ms at 10k ticks/s, 0 stale ({stream}, {p})",
                (f"median p99 {p99:g} ms of {len(rs)} rounds [{each}]" if len(rs) > 1 else f"p99 {each}")
                + f"; stale at most {stale} (busy: cores of {res['machine']['nproc']} in use on the machine)",
                p99 <= 5.0 and stale == 0)
    for e in res.get("peers", []):
        if e["offered"] not in (1000, 3000, 10000) or p not in e["designs"]:
            continue
        ours = e["designs"][p]
        for c in CRYPTOFEED:  # like for like (latest values, our layout), then cryptofeed's own backend
            if c not in e["designs"]:
                continue
            v = e["designs"][c]
            ok = None if ours["p99"] is None or v["p99"] is None else \
                ours["p99"] < v["p99"] and ours["cpu_us_per_tick"] < v["cpu_us_per_tick"]
            n = min(ours.get("rounds", 1), v.get("rounds", 1))
            each = "" if n < 2 else (
                f" (medians of {n} alternating rounds: p99 {', '.join(fmt(x, 0).strip() for x in ours['p99_rounds'])}"
                f" vs {', '.join(fmt(x, 0).strip() for x in v['p99_rounds'])} ms; CPU "
                f"{', '.join(fmt(x, 0).strip() for x in ours['cpu_rounds'])} vs "
                f"{', '.join(fmt(x, 0).strip() for x in v['cpu_rounds'])} us)")
            add(f"against {LABELS[c]} at {e['offered'] // 1000}k/s on bookTicker: lower p99 and lower CPU per tick",
                f"p99 {ours['p99']} vs {v['p99']} ms, CPU {ours['cpu_us_per_tick']} vs {v['cpu_us_per_tick']} us/tick"
                + each + (f" (it fell behind: {v['ticks_per_s']:.0f} ticks/s)" if v["ticks_per_s"] < 0.97 * e["offered"]
                          else ""), ok)
    for stream in STREAMS:
        rows = ladder_rows(res, stream)
        r, c = rows.get((p, 1000)), rows.get(("ccxt-only", 1000))
        if r and c:
            add(f"CPU per tick at 1k/s <= ccxt-only's ({stream}, {p})",
                f"{r['cpu_us_per_tick']} vs {c['cpu_us_per_tick']} us/tick",
                r["cpu_us_per_tick"] <= c["cpu_us_per_tick"])
    return out


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue #6 targets for one worker (ticker stream), judged on this run's numbers."""
    p = res.get("primary", "ours")
    rows = ladder_rows(res, TICKER)
    out = []

    def add(name: str, value: Any, ok: bool | None) -> None:
        out.append({"target": name, "value": value, "met": ok})

    c = res.get("ceiling")
    if c:
        add("sustained rate >= 80% of the ccxt-only ceiling, per CPU (median of alternating rounds)",
            f"{c['median_cpu_ratio']:.0%} (one core: ours {c['ours_per_core']}/s, ccxt-only {c['ccxt_per_core']}/s)",
            c["median_cpu_ratio"] >= 0.8)
        add("the same on the wall clock (noisy: the rounds' ratios spread "
            f"{min(x['ratio'] for x in c['rounds']):.2f}-{max(x['ratio'] for x in c['rounds']):.2f})",
            f"{c['median_ratio']:.0%} (ours {c['ours_median']:.0f}/s vs ccxt-only {c['ccxt_median']:.0f}/s)",
            c["median_ratio"] >= 0.8)
        add(">= 10k ticks/s with zero stale symbols at the end (saturation rounds)",
            f"{c['ours_median']:.0f}/s median, stale at most {c['ours_stale_max']}",
            c["ours_median"] >= 10_000 and c["ours_stale_max"] == 0)
    r10 = rows.get((p, 10000))
    if r10:
        kept = r10["ticks_per_s"] >= 0.97 * r10["sent_per_s"]
        add("10k ticks/s offered: kept up and zero stale", f"{r10['ticks_per_s']:.0f}/s of {r10['sent_per_s']:.0f} "
            f"sent, stale {r10['stale']}, p99 {r10['latency']['p99']} ms", kept and r10["stale"] == 0)
    for rate, limit in ((1000, 10.0), (5000, 25.0)):
        r = rows.get((p, rate))
        if r and r["latency"]["p99"] is not None:
            add(f"p99 <= {limit:g} ms at {rate // 1000}k ticks/s", f"{r['latency']['p99']} ms "
                f"(machine busy {r.get('machine_busy_cores')} of 2 cores)", r["latency"]["p99"] <= limit)
    ours = [r for r in res["single"] if r["design"] in OURS and "rt_per_flush" in r]
    if ours:
        counted = max(r["rt_per_flush"] for r in ours)
        exists = max(r["server_per_flush"]["script|exists"] for r in ours)
        if res.get("redis_private"):  # the server's own count: SCRIPT EXISTS is a round trip of its own
            add("at most one Redis round trip per flush", f"worker counts {counted}; the server also saw "
                f"{exists:.2f} SCRIPT EXISTS per flush, so {counted + exists:.2f}", counted + exists <= 1.0)
        else:
            add("at most one Redis round trip per flush (worker's own count; --private-redis checks it)",
                f"max {counted}", None)
    by: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for m in res.get("memory", []):
        by[m["start_method"]][m["workers"]] = m
    for method, d in sorted(by.items()):
        if 1 in d and 8 in d:
            extra = (d[8]["tree_pss_mb"] - d[1]["tree_pss_mb"]) / 7
            add(f"PSS <= 80 MB per additional worker ({method})", f"{extra:.1f} MB", extra <= 80)
    soak = res.get("soak")
    if soak and "pss_growth_second_half_mb" in soak:
        kind = "anonymous memory" if soak.get("anon_first") is not None else "PSS"
        g = soak["anon_growth_second_half_mb" if kind != "PSS" else "pss_growth_second_half_mb"]
        add(f"no {kind} growth over the soak ({soak['seconds']:g} s; the issue asks 600 s)",
            f"{g:+.1f} MB in the second half", abs(g) <= 2.0)
    return out


LABELS = {"ours": "ours", "ours-both": "ours-ccxt, ticker + bid/ask", "ours-baseline": "ours @ baseline",
          "ours-native": "ours-native", "ours-ccxt": "ours-ccxt", "ccxt-only": "ccxt-only",
          "upstream": "upstream pattern", "cryptofeed": "cryptofeed (our callback)",
          "cryptofeed-redis": "cryptofeed (its Redis backend)"}
STREAM_TITLE = {TICKER: "Binance `ticker` stream (24hrTicker)", BOOK: "Binance `bookTicker` stream"}


def report(res: dict[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    m = res["machine"]
    w(f"machine: {m['nproc']} cores {m['cpu']}, {m['mem_gb']} GB, Linux {m['kernel']}; Python {m['python']}, "
      f"ccxt {m['ccxt']}, redis-py {m['redis_py']}, redis-server {m['redis_server']}"
      + (f", cryptofeed {m['cryptofeed']}" if m.get("cryptofeed") else "")
      + f"; load at start {m['loadavg_at_start']}"
      + (f"; Python speed {m['python_speed'][0]} M steps/s at start, {m['python_speed'][1]} at end (best of 3; "
         "a yardstick for comparing runs)" if len(m.get("python_speed") or []) == 2 else ""))
    w(f"command: {res['command']}")
    for n in res.get("notes", []):
        w(f"note: {n}")
    hdr = (f"{'design':17}{'symbols':>8}{'offered':>8}{'sent/s':>9}{'parsed/s':>9}{'ticks/s':>9}{'writes/s':>9}"
           f"{'stale':>7}"
           f"{'conv s':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>9}{'S p99':>8}{'E p99':>8}{'cpu us/t':>9}{'cpu':>6}"
           f"{'RT/tick':>8}{'RT/flush':>9}{'RSS':>6}{'PSS':>6}{'Rds MB/m':>9}{'busy':>6}")
    for stream in STREAMS:
        rows = [r for r in res["single"] + res["sweep"] if r.get("stream", TICKER) == stream]
        if not rows:
            continue
        w("")
        w(f"{STREAM_TITLE[stream]}: one process per design, each fed the same frames; latency = observer receive"
          " - send (ms)")
        w(hdr)
        for r in rows:
            lat = r.get("latency") or {}
            label = (f"sat r{r['round']}" if "round" in r
                     else f"{r['offered'] / 1000:g}k r{r['repeat']}" if "repeat" in r else str(r["offered"]))
            w(f"{r['design']:17}{r['symbols']:>8}{label:>8}{fmt(r['sent_per_s'], 9)}"
              f"{fmt(r.get('parsed_per_s'), 9)}{fmt(r['ticks_per_s'], 9)}"
              f"{fmt(r.get('written_per_s'), 9)}{fmt(r.get('stale'), 7)}{fmt(r.get('converge_s'), 7)}"
              f"{fmt(lat.get('p50'))}{fmt(lat.get('p95'))}{fmt(lat.get('p99'))}{fmt(lat.get('max'), 9)}"
              f"{fmt((lat.get('past_sim') or {}).get('p99'))}"
              f"{fmt((lat.get('frame_E') or {}).get('p99'))}{fmt(r['cpu_us_per_tick'], 9)}{fmt(r['cpu_share'], 6)}"
              f"{fmt(r.get('rt_per_tick'))}{fmt(r.get('rt_per_flush'), 9)}{fmt(r.get('rss'), 6)}{fmt(r.get('pss'), 6)}"
              f"{fmt(r.get('redis_mb_per_min') if 'history_entries' in r else None, 9)}"
              f"{fmt(r.get('machine_busy_cores'), 6)}")
    w("")
    w("  parsed/s: tickers parsed in that process. ticks/s: delivered - ccxt-only: parsed; ours: accepted (each")
    w("  reaches Redis or is superseded by a newer one of its symbol); upstream, cryptofeed: written;")
    w("  cryptofeed-redis: handed to its backend. writes/s: PUBLISHes seen by the observer (cryptofeed-redis: its")
    w("  ZADDs, seen on a MONITOR connection).")
    w("  stale: symbols whose stored last/bid/ask (bookTicker: bid/ask; cryptofeed-redis: its newest ZSET member)")
    w("  != the last sent once the feed stopped (conv s: until 0 or quiescent). S p99: the same latency from the")
    w("  moment the simulator had handed the frame to the kernel (what the simulator itself adds is left out).")
    w("  E p99: the same latency from the frame's E field (ms resolution, reads 0-1 ms high; bookTicker has")
    w("  none). cpu us/t: CPU of that process per parsed ticker, from the window's start until its backlog was")
    w("  drained (what falls behind finishes the window's work later); cpu: its cores in the window; RT: Redis")
    w("  round trips; RSS/PSS MB; Rds MB/m: Redis used_memory growth per minute during the window, for the design")
    w("  that keeps history (the others store one value per symbol); busy: cores busy on the whole machine during")
    w("  the window (everyone's: the noise).")
    spf = [r["server_per_flush"] for r in res["single"] if "server_per_flush" in r]
    if spf:
        where = "this run's private redis-server" if res.get("redis_private") else "the whole shared server"
        w(f"  Server side ({where}), per flush of ours: SCRIPT EXISTS "
          + " ".join(f"{x['script|exists']:.2f}" for x in spf) + "; EVALSHA " + " ".join(f"{x['evalsha']:.2f}"
                                                                                       for x in spf))
        usf = [r for r in res["single"] if r.get("server_us_per_flush") is not None and r["offered"] != "sat"]
        if usf:
            w("  Redis' own time running a flush of ours (INFO commandstats, µs; ticks per flush): " + ", ".join(
                f"{r['design']} {r['stream']} {r['offered']}/s {r['server_us_per_flush']} ({r.get('ticks_per_flush')})"
                for r in usf))
    used = {(r["design"], r["stream"]): r["decoder"] for r in res["single"] if r.get("decoder")}
    if used:
        w("  Decoder each worker reported (health record): " + "; ".join(
            f"{d} {st}: {u['used']}" + (f" ({u['native_share']:.0%} of ticks natively)" if "native_share" in u else "")
            + (f", fallback {u['fallback']!r}" if u.get("fallback") else "")
            + (f", {u['mismatches']} mismatches" if u.get("mismatches") else "") for (d, st), u in used.items()))
    hist = [r for r in res["single"] if r.get("history_entries")]
    if hist:
        last = hist[-1]
        w(f"  cryptofeed-redis keeps every tick: {last['history_entries']} ZSET members for {last['symbols']} symbols "
          f"after its last step ({last['history_entries'] / last['symbols']:.0f} per symbol), Redis growing "
          + ", ".join(f"{r['redis_mb_per_min']} MB/min at {r['offered']}/s" for r in hist if "round" not in r))
    for c in [*res.get("ceilings", []), *res.get("sweep_ceiling", [])]:
        w("")
        w(f"Ceiling, {c.get('stream', TICKER)}, {c['symbols']} symbols (alternating saturation rounds): "
          f"{c.get('design', 'ours')}/ccxt-only ticks/s "
          + ", ".join(f"{x['ours']:.0f}/{x['ccxt_only']:.0f} = {x['ratio']:.2f}" for x in c["rounds"])
          + f" (median {c['median_ratio']:.2f}); per CPU " + ", ".join(f"{x['cpu_ratio']:.2f}" for x in c["rounds"])
          + f" (median {c['median_cpu_ratio']:.2f}: one core = {c.get('design', 'ours')} {c['ours_per_core']}/s, "
          f"ccxt-only {c['ccxt_per_core']}/s); stale at most {c['ours_stale_max']}")
    if res.get("peers"):
        ours = [o for o in OURS if any(o in e["designs"] for e in res["peers"])]
        w("")
        n = max(v.get("rounds", 1) for e in res["peers"] for v in e["designs"].values())
        w(f"Against cryptofeed, {STREAM_TITLE[BOOK]}, {res['params']['symbols']} symbols, one process each "
          "(ratio = ours / that design: below 1 = ours lower)"
          + (f"; a design measured in {n} alternating rounds shows the median of each figure and the most stale"
             if n > 1 else ""))
        w(f"{'offered':>8}  {'design':31}{'p50 ms':>8}{'p99 ms':>9}{'cpu us/t':>9}{'stale':>6}{'ticks/s':>9}  "
          + "  ".join(f"{o + '/this p50 p99 cpu':>27}" for o in ours))
        for e in res["peers"]:
            for d, v in e["designs"].items():
                rs = [e["ratios"].get(f"{o}/{d}") for o in ours]
                cells = ["".join(fmt(f"{x[k]:.2f}x" if x and x[k] is not None else None, 9)
                                 for k in ("p50", "p99", "cpu_us_per_tick")) if d in CRYPTOFEED else " " * 27
                         for x in rs]
                w(f"{e['offered']:>8}  {LABELS[d]:31}{fmt(v['p50'])}{fmt(v['p99'], 9)}{fmt(v['cpu_us_per_tick'], 9)}"
                  f"{fmt(v['stale'], 6)}{fmt(v['ticks_per_s'], 9)}  " + "  ".join(cells))
    if res.get("ratios"):
        w("")
        w("Ratios (same run, side by side)")
        for r in res["ratios"]:
            w("  " + r)
    if res["multi"]:
        w("")
        w("Several workers at once (`tickerctl up`, every worker subscribed to the same simulated venue)")
        w(f"{'workers':>8}{'method':>11}{'offered each':>13}{'aggregate/s':>12}{'stale':>7}{'cpu us/t':>9}  "
          "per worker: ticks/s | p99 ms")
        for mu in res["multi"]:
            for s in mu["steps"]:
                tps = " ".join(f"{p['ticks_per_s']:.0f}" for p in s["per_worker"])
                p99 = " ".join(fmt(p["latency"]["p99"], 0).strip() for p in s["per_worker"])
                cpu = sum(p["cpu_us_per_tick"] for p in s["per_worker"]) / len(s["per_worker"])
                w(f"{mu['workers']:>8}{mu['start_method']:>11}{s['offered_each']!s:>13}"
                  f"{s['aggregate_ticks_per_s']:>12.0f}{s['stale']:>7}{cpu:>9.1f}  {tps} | {p99}")
    if res["memory"]:
        w("")
        w("Memory (MB, /proc/PID/smaps_rollup; tree = supervisor + fork server + workers)")
        w(f"{'method':>11}{'workers':>8}{'tree PSS':>10}{'tree RSS':>10}{'PSS/worker':>11}  per worker: RSS | PSS")
        for mm in res["memory"]:
            rss = " ".join(fmt(x, 0).strip() for x in mm["worker_rss_mb"])
            pss = " ".join(fmt(x, 0).strip() for x in mm["worker_pss_mb"])
            avg = sum(mm["worker_pss_mb"]) / max(len(mm["worker_pss_mb"]), 1)
            w(f"{mm['start_method']:>11}{mm['workers']:>8}{mm['tree_pss_mb']:>10.0f}{mm['tree_rss_mb']:>10.0f}"
              f"{avg:>11.1f}  {rss} | {pss}")
    if res["startup"]:
        w("")
        w("`tickerctl up` -> first tick in Redis (s)")
        for s in res["startup"]:
            per = ", ".join(f"{k.removeprefix(PREFIX + '_')} {v}" for k, v in s["first_tick_s"].items())
            w(f"  {s['start_method']:>11}: all {s['exchanges']} exchanges after {s['all_s']} s ({per})")
    if res.get("soak"):
        s = res["soak"]
        w("")
        rate = f" ({s['ticks_per_s']} ticks/s accepted)" if s.get("ticks_per_s") is not None else ""
        w(f"Soak: one worker at {s['rate']}/s for {s['seconds']} s{rate}: "
          f"PSS {s['pss_first']} -> {s['pss_last']} MB (max {s['pss_max']}; second half "
          f"{s['pss_growth_second_half_mb']:+.1f} MB)"
          + (f"; anonymous {s['anon_first']} -> {s['anon_last']} MB (second half "
             f"{s['anon_growth_second_half_mb']:+.1f} MB)" if s.get("anon_first") is not None else "")
          + f"; PSS/RSS every {s['samples'][1]['t']:g} s: "
          + " ".join(f"{x.get('pss')}/{x.get('rss')}" for x in s["samples"]))
    for p in (res.get("profile") or {}).values():
        w("")
        if "error" in p:
            w(f"Profile: {p['error']}")
            continue
        w(f"Profile of the worker at {p['rate']} offered (py-spy, {p['samples']} samples; self time by the owner of"
          " the innermost non-stdlib frame)")
        w("  " + ", ".join(f"{k} {v}%" for k, v in p["categories"].items()))
        w("  our code, inclusive: " + ", ".join(f"{k} {v}%" for k, v in p["ours_inclusive"].items()))
        w("  ccxt, inclusive: " + ", ".join(f"{k} {v}%" for k, v in p["ccxt_inclusive"].items()))
        for line, pct in p["ours_hot_lines"][:8]:
            w(f"    {pct:5.1f}%  {line}")
    if res.get("plot"):
        w("")
        w(f"Plot: {res['plot']}")
    for title, key in ((f"Targets: beat the peers (one worker, {res['params']['symbols']} symbols; {res.get('primary')}"
                        f" = {decoding_of(res)})", "peer_targets"), ("Targets of issue #6 (one worker, ticker stream)",
                                                                     "targets")):
        if res.get(key):
            w("")
            w(title)
            for t in res[key]:
                mark = {True: "met", False: "MISSED", None: "info"}[t["met"]]
                w(f"  [{mark:>6}] {t['target']}: {t['value']}")
    if res["errors"]:
        w("")
        w("Errors")
        for e in res["errors"]:
            w(f"  {e}")
    return "\n".join(out)


def ratios(res: dict[str, Any]) -> list[str]:
    p = res.get("primary", "ours")
    out = []
    for stream in STREAMS:
        rows = ladder_rows(res, stream)
        for offered in sorted({o for _, o in rows if o != "sat"}):
            ccxt_ = rows.get(("ccxt-only", offered))
            parts = [f"{stream:10} {offered!s:>6}:"]
            for o in OURS:
                if ccxt_ and (r := rows.get((o, offered))):
                    extra = r["cpu_us_per_tick"] - ccxt_["cpu_us_per_tick"]
                    parts.append(f"{o} CPU beyond ccxt-only {extra:+.1f} us/tick;")
            ours, up = rows.get((p, offered)), rows.get(("upstream", offered))
            if ours and up:
                def rx(x: float | None, y: float | None) -> str:
                    return "-" if (v := ratio(x, y)) is None else f"{v:.1f}x"

                lu, lo = up["latency"], ours["latency"]
                parts.append(f"upstream/{p}: stale {up['stale']}/{ours['stale']}, p50 {rx(lu['p50'], lo['p50'])}, "
                             f"p99 {rx(lu['p99'], lo['p99'])}, rate {rx(up['ticks_per_s'], ours['ticks_per_s'])}, "
                             f"CPU/tick {rx(up['cpu_us_per_tick'], ours['cpu_us_per_tick'])}")
            if len(parts) > 1:
                out.append(" ".join(parts))
    return out


def plot(res: dict[str, Any], path: Path) -> str:
    """bench.png: latency p50/p99 and CPU per tick against the offered rate, one row per stream."""
    if not have("matplotlib"):
        return "skipped: matplotlib not installed (pip install -e '.[bench]')"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    colors = {"ours-native": "tab:green", "ours": "tab:green", "ours-ccxt": "tab:olive", "ccxt-only": "tab:gray",
              "upstream": "tab:red", "cryptofeed": "tab:blue", "cryptofeed-redis": "tab:purple"}
    streams = [st for st in STREAMS if any(o != "sat" for _, o in ladder_rows(res, st))]
    if not streams:
        return "skipped: no rates to plot"
    fig, axes = plt.subplots(len(streams), 2, figsize=(13, 4.6 * len(streams)), squeeze=False)
    for i, stream in enumerate(streams):
        rows = ladder_rows(res, stream)
        lat_ax, cpu_ax = axes[i]
        xs_all: set[int] = set()
        for d in DESIGNS:
            mine = sorted((o, r) for (dd, o), r in rows.items() if dd == d and o != "sat")
            if not mine:
                continue
            label = LABELS[d] + (" (ccxt decoding)" if d == "ours" else "")
            color = colors.get(d, "tab:brown")
            x = [o for o, _ in mine]
            xs_all.update(x)
            cpu_ax.plot(x, [r["cpu_us_per_tick"] for _, r in mine], marker="o", color=color, label=label)
            lat = [(o, r) for o, r in mine if (r.get("latency") or {}).get("p99") is not None]
            if lat:
                lx = [o for o, _ in lat]
                lat_ax.plot(lx, [r["latency"]["p99"] for _, r in lat], marker="o", color=color,
                            label=f"{label} p99")
                lat_ax.plot(lx, [r["latency"]["p50"] for _, r in lat], marker=".", ls="--", color=color, alpha=0.7,
                            label=f"{label} p50")
                bad = [(o, r["latency"]["p99"]) for o, r in lat if r.get("stale")]
                if bad:
                    lat_ax.scatter(*zip(*bad, strict=True), marker="x", s=90, color="black", zorder=5)
        for ax in (lat_ax, cpu_ax):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sorted(xs_all), [f"{x / 1000:g}k" for x in sorted(xs_all)])
            ax.xaxis.set_minor_locator(ticker.NullLocator())
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_locator(ticker.NullLocator())
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xlabel("offered ticks/s")
        lat_ax.set_ylabel("ms, observer receive - send")
        lat_ax.set_title(f"{STREAM_TITLE[stream].replace('`', '')}: latency p99 (solid), p50 (dashed); x = stale")
        cpu_ax.set_ylabel("CPU µs per parsed ticker")
        cpu_ax.set_title(f"{STREAM_TITLE[stream].replace('`', '')}: CPU per tick (lower is better)")
        lat_ax.legend(fontsize=7, ncol=2)
        cpu_ax.legend(fontsize=7)
    m = res["machine"]
    fig.suptitle(f"one process per design, {res['params']['symbols']} symbols, same run; {m['nproc']} cores "
                 f"{m['cpu']} (shared); ccxt {m['ccxt']}, cryptofeed {m.get('cryptofeed') or '-'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


# =============================================================================================
# main
# =============================================================================================
def start_redis(runtime: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A throw-away redis-server on a free loopback port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="redis-", dir=runtime)
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
                             str(port), "--save", "", "--appendonly", "no", "--dir", work, "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pdeathsig)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


def parse_rates(text: str) -> list[float]:
    return [SAT if x.strip() == "sat" else float(x) for x in text.split(",") if x.strip()]


def decoder_probe(tmp: Path) -> str:
    """"" when the worker's config accepts `decoder` per exchange, else the loader's one-line refusal."""
    from fullon_ticker_service.config import ConfigError, load

    path = tmp / "decoder-probe.toml"
    path.write_text('[exchanges.bench_probe]\nccxt_id = "binance"\nsymbols = ["BTC/USDT"]\ndecoder = "native"\n')
    try:
        load(path, environ={}, dotenv=None)
    except ConfigError as exc:
        return str(exc)
    return ""


def resolve_designs(a: argparse.Namespace, b: Bench) -> list[str]:
    """The designs this run can measure, with a note for each one it cannot."""
    res = b.results
    wanted = [d.strip() for d in a.designs.split(",") if d.strip()]
    unknown = [d for d in wanted if d not in DESIGNS]
    if unknown:
        raise SystemExit(f"--designs: unknown {unknown} (known: {', '.join(DESIGNS)})")
    refusal = decoder_probe(b.tmp)
    b.decoder = not refusal
    if refusal and any(d in wanted for d in ("ours-native", "ours-ccxt")):
        wanted = list(dict.fromkeys("ours" if d in ("ours-native", "ours-ccxt") else d for d in wanted))
        res["notes"].append("decoder: this worker's config does not know `decoder` yet (" + refusal.split(" (known")[0]
                            + "): ran `ours` once, with its default decoding, instead of ours-native and ours-ccxt")
    if not have("cryptofeed") and any(d in wanted for d in CRYPTOFEED):
        wanted = [d for d in wanted if d not in CRYPTOFEED]
        res["notes"].append("cryptofeed: not installed, its designs skipped (pip install -e '.[bench]')")
    b.primary = next((d for d in OURS if d in wanted), "ours")
    return wanted


async def run(a: argparse.Namespace) -> dict[str, Any]:
    b = Bench(a)
    res = b.results
    res["machine"] = machine()
    res["machine"]["python_speed"] = [python_speed()]
    res["command"] = " ".join([".venv/bin/python", "scripts/bench.py", *sys.argv[1:]])
    res["params"] = {k: v for k, v in vars(a).items() if k != "redis_password"}
    res["redis_private"] = bool(a.private_redis)
    wanted = resolve_designs(a, b)
    res["designs"], res["primary"] = wanted, b.primary
    for n in res["notes"]:
        b.note(n)
    await b.redis.flushdb()
    b.observer = await Child("_observe", ["--host", a.redis_host, "--port", str(a.redis_port), "--db",
                                          str(a.redis_db), "--password", a.redis_password],
                             b.tmp / "observer.log").start()

    async def phase(name: str, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except Exception as exc:
            msg = f"{name}: {type(exc).__name__}: {exc}"
            with open(b.tmp / "errors.log", "a") as f:  # the whole traceback, for --keep
                f.write(f"{msg}\n{traceback.format_exc()}\n")
            b.note("ERROR " + msg + f" ({traceback.extract_tb(exc.__traceback__)[-1].name}, line "
                   f"{traceback.extract_tb(exc.__traceback__)[-1].lineno})")
            res["errors"].append(msg)
            with contextlib.suppress(Exception):
                await b.redis.flushdb()
            return None

    try:
        ours = tuple(d for d in OURS if d in wanted)
        for stream in [x for x in a.streams.split(",") if x.strip()]:
            designs = [d for d in wanted if d in SUPPORTS[stream]]
            if stream == BOOK and a.book_designs:
                designs = [d for d in designs if d in a.book_designs.split(",")]
            if stream == TICKER:
                rates = {d: parse_rates(a.upstream_rates if d == "upstream" else a.rates) for d in designs}
                rounds, in_rounds = a.ceiling_rounds, ("ccxt-only", *ours)
            else:
                rates = {d: parse_rates(a.book_rates) for d in designs}
                rounds, in_rounds = a.book_ceiling_rounds, ("ccxt-only", *ours, "cryptofeed")
            in_rounds = tuple(d for d in in_rounds if d in designs)
            # what the p99 targets are judged on, measured --latency-rounds times: the 10k/s step of
            # ours on ticker; on bookTicker ours against cryptofeed at the rates of that comparison
            if stream == TICKER:
                repeat = {b.primary: [TARGET_RATE]}
            else:
                repeat = {d: [1000.0, 3000.0, TARGET_RATE] for d in (b.primary, *CRYPTOFEED)}
            res["single"] += await phase(f"{stream} x{a.symbols}", b.ladder(
                a.symbols, rates, rounds, stream, in_rounds, repeat)) or []
        for n in [int(x) for x in a.sweep.split(",") if x.strip()]:
            res["sweep"] += await phase(f"sweep x{n}", b.ladder(
                n, {}, a.sweep_rounds, TICKER, ("ccxt-only", b.primary))) or []
        method = "forkserver" if supports_start_method() else ""
        for n in [int(x) for x in a.multi.split(",") if x.strip()]:
            r = await phase(f"multi x{n}", b.multi(n, a.multi_symbols, parse_rates(a.multi_rates), method))
            if r:
                res["multi"].append(r)
                res["memory"].append({"start_method": method or "spawn", **r["memory"]})
        if a.memory:
            methods = ["spawn", "forkserver"] if supports_start_method() else []
            done = {(m["start_method"], m["workers"]) for m in res["memory"]}
            for m in methods:
                for n in [int(x) for x in a.memory.split(",")]:
                    if (m, n) not in done:
                        r = await phase(f"memory {m} x{n}", b.memory_only(n, a.multi_symbols, m))
                        if r:
                            res["memory"].append(r)
            res["memory"].sort(key=lambda m: (m["start_method"], m["workers"]))
        if a.startup:
            venues = a.startup.split(",")
            for m in (a.startup_methods.split(",") if supports_start_method() else [""]):
                r = await phase(f"startup {m}", b.startup(venues, m))
                if r:
                    res["startup"].append(r)
    finally:
        await b.observer.stop()
        await b.redis.flushdb()
        await b.redis.aclose()
    res["machine"]["python_speed"].append(python_speed())
    derive(res)
    res["elapsed_s"] = round(time.monotonic() - b.t0, 1)
    if not a.keep:
        shutil.rmtree(b.tmp, ignore_errors=True)
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        return child_main(sys.argv[1], sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run for CI (seconds): small rates, few symbols")
    p.add_argument("--out", default="", help="directory for bench.json, bench.txt and the raw profile")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--redis-db", type=int, default=11, help="flushed before and after: give the benchmark its own")
    p.add_argument("--redis-password", default="")
    p.add_argument("--private-redis", action="store_true",
                   help="start a redis-server of our own (exact server-side command counts)")
    p.add_argument("--runtime-dir", default="/tmp/tickerctl-bench", help="temp files, tickerctl's pidfile/lock")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--streams", default=f"{TICKER},{BOOK}", help="the Binance streams compared")
    p.add_argument("--rates", default="1000,3000,5000,10000",
                   help="offered ticks/s on the ticker stream ('sat' = as fast as possible)")
    p.add_argument("--book-rates", default="1000,3000,10000", help="offered ticks/s on the bookTicker stream")
    p.add_argument("--designs", default=",".join(d for d in DESIGNS if d not in EXTRA_OURS),
                   help="which single-worker designs to run (`ours`: the worker's default decoder; ours-native / "
                        "ours-ccxt become `ours` when the worker's config has no `decoder` key)")
    p.add_argument("--book-designs", default="", help="designs on bookTicker (default: every one of --designs "
                   "that can consume it)")
    p.add_argument("--upstream-rates", default="1000,3000,5000,10000,sat")
    p.add_argument("--ceiling-rounds", type=int, default=3,
                   help="alternating ccxt-only / ours saturation steps on the ticker stream: the ceiling ratio is "
                        "their median")
    p.add_argument("--latency-rounds", type=int, default=3,
                   help="steps at 10k ticks/s for the design the targets are judged on (the ladder's own step "
                        "and repeats right after it): the p99 target is judged on their median")
    p.add_argument("--book-ceiling-rounds", type=int, default=1,
                   help="the same on bookTicker, with cryptofeed (its callback design) in the rounds")
    p.add_argument("--sweep", default="100,2000", help="other symbol counts (ccxt-only vs ours at saturation)")
    p.add_argument("--sweep-rounds", type=int, default=1)
    p.add_argument("--multi", default="2,4,8", help="numbers of workers run together through tickerctl up")
    p.add_argument("--multi-symbols", type=int, default=100, help="symbols per worker in the multi-worker runs")
    p.add_argument("--multi-rates", default="1000,sat", help="offered ticks/s per worker")
    p.add_argument("--memory", default="1,8", help="worker counts for the start-method memory comparison")
    p.add_argument("--mem-rate", type=float, default=500.0, help="ticks/s per worker while memory is read")
    p.add_argument("--startup", default="binance,okx,bybit,kraken,coinbase", help="venues for the startup timing")
    p.add_argument("--startup-methods", default="forkserver,spawn", help="supervisor start methods to time")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--window", type=float, default=6.0, help="measuring window per step (s)")
    p.add_argument("--drain-timeout", type=float, default=60.0,
                   help="longest wait for a backlog to drain after a step before counting stale symbols")
    p.add_argument("--profile", type=float, default=8.0, help="py-spy seconds on the worker at saturation (0: off)")
    p.add_argument("--profile-rates", default="1000,sat", help="offered rates at which the worker is profiled")
    p.add_argument("--soak", type=float, default=60.0, help="memory soak of one worker (s; 0: off)")
    p.add_argument("--soak-rate", type=float, default=5000.0)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    p.add_argument("--report-from", default="",
                   help="re-render the report, the derived ratios and the plot of a bench.json")
    a = p.parse_args()
    if a.report_from:
        res = orjson.loads(Path(a.report_from).read_bytes())
        for rate, prof in (res.get("profile") or {}).items():  # the raw stacks beside it: summarise again
            raw = Path(a.report_from).parent / f"profile-ours-{rate}.txt"
            if "error" not in prof and raw.is_file():
                res["profile"][rate] = {"rate": rate, **summarise_profile(raw.read_text())}
        derive(res)
        if a.out:
            res["plot"] = plot(res, Path(a.out) / "bench.png")
        text = report(res)
        print(text)
        if a.out:
            (Path(a.out) / "bench.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
            (Path(a.out) / "bench.txt").write_text(text + "\n")
        return
    if a.quick:
        a.symbols, a.rates, a.upstream_rates, a.sweep, a.multi, a.multi_symbols = 20, "300", "300", "", "2", 10
        a.book_rates, a.ceiling_rounds, a.book_ceiling_rounds, a.latency_rounds = "300", 0, 0, 1
        # on bookTicker only what the ticker stream does not already exercise: one of ours, the peers
        a.book_designs = "ours-native,ours,cryptofeed,cryptofeed-redis"
        a.multi_rates, a.memory, a.startup, a.warmup, a.window, a.profile, a.soak = "200", "", "binance,okx", \
            0.5, 1.5, 0, 0
        a.drain_timeout, a.startup_methods = 5.0, "forkserver"
    import uvloop

    server = None
    if a.private_redis:  # a redis-server of our own: exact command counts, no other clients
        server = start_redis(Path(a.runtime_dir))
        a.redis_host, a.redis_port, a.redis_password = "127.0.0.1", server[1], ""
    try:
        res = uvloop.run(run(a))
    finally:
        if server:
            server[0].terminate()
            server[0].wait(10)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        res["plot"] = plot(res, Path(a.out) / "bench.png")
    text = report(res)
    print(text)
    if a.out:
        out = Path(a.out)
        (out / "bench.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
        (out / "bench.txt").write_text(text + "\n")
    if a.quick:
        print(orjson.dumps(res).decode())  # last line: the results, for the smoke test
    sys.exit(1 if res["errors"] else 0)


def child_main(role: str, argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog=f"bench.py {role}")
    p.add_argument("--venues", default="binance:500")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--db", type=int, default=11)
    p.add_argument("--password", default="")
    p.add_argument("--venue", default="binance")
    p.add_argument("--ccxt", default="{}")
    p.add_argument("--markets", default="")
    p.add_argument("--symbols", default="[]")
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--exchange", default=f"{PREFIX}_binance")
    p.add_argument("--stream", default=TICKER, choices=STREAMS)
    p.add_argument("--ws", default="", help="cryptofeed: the simulator's Binance websocket base")
    p.add_argument("--http", default="", help="cryptofeed: the simulator's Binance REST base")
    p.add_argument("--backend", default="callback", choices=("callback", "redis"))
    p.add_argument("--log", default="", help="cryptofeed: its feedhandler log file")
    a = p.parse_args(argv)
    roles = {"_sim": role_sim, "_observe": role_observe, "_ccxt": role_ccxt, "_upstream": role_upstream,
             "_cryptofeed": role_cryptofeed}
    import uvloop

    from fullon_ticker_service import logs

    with contextlib.suppress(Exception):
        logs.setup("WARNING", "trading")
    uvloop.run(roles[role](a))


if __name__ == "__main__":
    main()
