"""The supervisor's state machine, tick by tick, with a fake process table and a fake clock.

No subprocess is started: `FakeLauncher` hands out `FakeChild` objects the test makes beat, report,
hang or exit. The cluster side is the real one (lease scripts on the shared test Redis, its own
namespace), so leases, placement and handover decisions are the production code's.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from fullon_ticker_service import config, keys
from fullon_ticker_service.launch import EXIT_CONFIG, EXIT_FENCED, WorkerSpec
from fullon_ticker_service.supervisor import Supervisor
from fullon_ticker_service.supervisor.cluster import Cluster
from fullon_ticker_service.supervisor.slot import Status
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB

NS = "sm"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeChild:
    """A worker process as the supervisor sees it; the test decides what it does."""

    spec: WorkerSpec
    pid: int
    started_at: float
    stopping_since: float | None = None
    last_beat: float | None = None
    reported: str = ""
    status: str = ""
    error: str = ""
    exitcode: int | None = None  # None = alive
    ignores_sigterm: bool = False  # a wedged loop, SIGSTOP
    signals: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    _said: list[tuple[str, str]] = field(default_factory=list)

    # the test's side
    def say(self, status: str, error: str = "") -> None:
        self._said.append((status, error))

    def exit(self, code: int) -> None:
        self.exitcode = code

    # the supervisor's side
    def alive(self) -> bool:
        return self.exitcode is None

    def terminate(self, now: float) -> None:
        self.stopping_since = self.stopping_since or now
        self.signals.append("TERM")
        if not self.ignores_sigterm and self.exitcode is None:
            self.exitcode = 0

    def overdue(self, now: float, timeout: float) -> bool:
        return (self.stopping_since is not None and now - self.stopping_since > timeout and self.alive()
                and "KILL" not in self.signals)

    def kill(self, now: float) -> None:
        self.signals.append("KILL")
        self.exitcode = -signal.SIGKILL

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def receive(self, now: float) -> None:
        for status, error in self._said:  # a worker that says "error" has started and runs, failing
            phase = "running" if status in ("running", "error") else status
            self.last_beat, self.reported, self.status, self.error = now, phase, status, error
        self._said.clear()

    def fileno(self) -> int | None:
        return None

    def reap(self) -> int | None:
        return self.exitcode

    def join(self, timeout: float) -> None:
        pass


class FakeLauncher:
    forks = True

    def __init__(self) -> None:
        self.children: list[FakeChild] = []

    def spawn(self, spec: WorkerSpec, now: float) -> FakeChild:
        child = FakeChild(spec, 10_000 + len(self.children), now)
        self.children.append(child)
        return child

    def of(self, exchange: str) -> list[FakeChild]:
        return [c for c in self.children if c.spec.exchange == exchange]

    def last(self, exchange: str) -> FakeChild:
        return self.of(exchange)[-1]


@pytest.fixture
def r():
    c = redis.Redis(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB)
    c.flushdb()
    yield c
    c.flushdb()
    c.close()


def write(path: Path, exchanges: dict[str, list[str]], supervisor: str = "", extra: dict[str, str] | None = None,
          host_id: str = "h1") -> Path:
    lines = ["[service]", f'namespace = "{NS}"', "[redis]", f'host = "{SHARED_REDIS_HOST}"',
             f"port = {SHARED_REDIS_PORT}", f"db = {TEST_REDIS_DB}", "[cluster]", f'host_id = "{host_id}"',
             "lease_ttl = 30.0", "host_ttl = 30.0", "[supervisor]",
             supervisor or "restart_base = 1.0\nrestart_cap = 1.0\nmax_crashes = 3\nstop_timeout = 10.0\n"
                           "heartbeat_timeout = 30.0\nstart_grace = 60.0"]
    for name, symbols in exchanges.items():
        lines += [f"[exchanges.{name}]", "symbols = [" + ", ".join(f'"{s}"' for s in symbols) + "]",
                  (extra or {}).get(name, "")]
    path.write_text("\n".join(lines) + "\n")
    return path


def make(cfg: Path) -> tuple[Supervisor, FakeLauncher, Clock]:
    settings = config.load(cfg, environ={}, dotenv=None)
    launcher, clock = FakeLauncher(), Clock()
    sup = Supervisor(settings, launcher=launcher, cluster=Cluster(settings), clock=clock)
    sup.cluster.join()
    return sup, launcher, clock


def tick(sup: Supervisor, clock: Clock, seconds: float = 0.5) -> None:
    clock.advance(seconds)
    assert not sup.step()


def test_crash_backoff_respawn_then_parked_after_max_crashes(tmp_path, r):
    """Exit 1 -> backoff (restart scheduled within the policy's delay) -> respawned with restarts+1;
    more than max_crashes crashes in the window -> parked failed, not respawned."""
    sup, launcher, clock = make(write(tmp_path / "c.toml", {"binance": ["BTC/USDT"]}))
    tick(sup, clock)
    slot = sup.slots["binance"]
    first = launcher.last("binance")
    assert slot.status == Status.STARTING and first.spec.lease  # started as the owner, with a lease
    first.say("running")
    tick(sup, clock)
    assert slot.status == Status.RUNNING

    first.say("error", "NetworkError: boom")
    first.exit(1)
    tick(sup, clock)
    assert slot.status == Status.BACKOFF and slot.last_error == "NetworkError: boom"
    assert 0.5 <= slot.start_at - clock() <= 1.0  # restart_base 1 s, half jitter
    tick(sup, clock, 1.0)
    assert len(launcher.of("binance")) == 2 and slot.restarts == 1 and slot.status == Status.STARTING

    for _ in range(3):  # crashes 2, 3, 4 inside the window: the 4th is over max_crashes = 3
        launcher.last("binance").exit(1)
        tick(sup, clock)
        tick(sup, clock, 1.0)
    assert slot.status == Status.FAILED and slot.proc is None
    tick(sup, clock, 100)
    assert len(launcher.of("binance")) == 4  # parked: never respawned


def test_config_error_is_parked_at_once_and_a_catalog_change_retries(tmp_path, r):
    """Exit 3 parks at once; a changed symbol list gives the exchange another start."""
    sup, launcher, clock = make(write(tmp_path / "c.toml", {"binance": ["BTC/USDT"]}))
    tick(sup, clock)
    launcher.last("binance").say("error", "none of the symbols is listed")
    launcher.last("binance").exit(EXIT_CONFIG)
    tick(sup, clock)
    assert sup.slots["binance"].status == Status.FAILED
    assert sup.slots["binance"].last_error == "none of the symbols is listed"
    sup.source.settings = config.load(write(tmp_path / "c.toml", {"binance": ["ETH/USDT"]}), environ={}, dotenv=None)
    sup.source.refresh()
    tick(sup, clock)
    assert len(launcher.of("binance")) == 2 and launcher.last("binance").spec.symbols == ("ETH/USDT",)


def test_hung_worker_is_killed_after_the_heartbeat_timeout(tmp_path, r):
    """No beat within start_grace -> killed; beats that stop for heartbeat_timeout -> killed, then restarted."""
    sup, launcher, clock = make(write(tmp_path / "c.toml", {"okx": ["BTC/USDT"]}))
    tick(sup, clock)
    silent = launcher.last("okx")
    tick(sup, clock, 59)
    assert silent.signals == []
    tick(sup, clock, 2)  # 61 s without a first beat (start_grace 60)
    assert silent.signals == ["KILL"] and "no heartbeat for 6" in sup.slots["okx"].last_error
    tick(sup, clock)  # reaped: a crash, backoff
    tick(sup, clock, 1.0)
    beating = launcher.last("okx")
    beating.say("running")
    tick(sup, clock)  # its one beat is heard
    tick(sup, clock, 29)
    assert beating.signals == []
    tick(sup, clock, 2)  # 31 s since its last beat (heartbeat_timeout 30)
    assert beating.signals == ["KILL"]


@pytest.mark.parametrize("reason", ["supervisor stop", "catalog removal", "reload", "placement"])
def test_every_stop_reason_gets_the_same_deadline(tmp_path, r, reason):
    """A worker that ignores SIGTERM is SIGKILLed once stop_timeout (10 s) has passed, whoever asked it to
    stop: the supervisor's own stop, the catalog, a reload that changed its settings, or placement."""
    cfg = write(tmp_path / "c.toml", {"binance": ["BTC/USDT"], "okx": ["BTC/USDT"]})
    sup, launcher, clock = make(cfg)
    tick(sup, clock)
    for c in launcher.children:
        c.ignores_sigterm = True
        c.say("running")
    tick(sup, clock)
    child = launcher.last("binance")
    if reason == "supervisor stop":
        sup.signals.append(signal.SIGTERM)
    elif reason == "catalog removal":
        sup.source.settings = config.load(write(cfg, {"okx": ["BTC/USDT"]}), environ={}, dotenv=None)
        sup.source.refresh()
    elif reason == "reload":
        write(cfg, {"binance": ["BTC/USDT"], "okx": ["BTC/USDT"]}, extra={"binance": "stale_after = 7.0"})
        sup.signals.append(signal.SIGHUP)
    else:  # a second host with room joins and wins binance in the placement, its standby armed
        other = Cluster(config.load(write(tmp_path / "o.toml", {}, host_id="h2"), environ={}, dotenv=None))
        other.join()
        r.set(keys.armed(NS, "binance", "h2"), b'{"status":"armed","updated_at":9e9}')
        r.set(keys.armed(NS, "okx", "h2"), b'{"status":"running","updated_at":9e9}')  # a standby of the version before
    tick(sup, clock)
    if reason == "placement":
        stopped = [c for c in launcher.children if "TERM" in c.signals]
        assert len(stopped) == 1, "placement should move exactly h2's fair share (1 of 2)"
        child = stopped[0]
    assert child.signals == ["TERM"] and sup.slots[child.spec.exchange].status == Status.STOPPING
    tick(sup, clock, 9.0)
    assert child.signals == ["TERM"]  # within the deadline: still asked nicely
    clock.advance(1.5)
    sup.step()
    assert child.signals == ["TERM", "KILL"]


def test_reload_restarts_only_the_worker_whose_settings_changed(tmp_path, r):
    """SIGHUP with one exchange's settings changed: that worker stops, and once gone a new one starts
    with the new settings; the other worker is untouched."""
    cfg = write(tmp_path / "c.toml", {"binance": ["BTC/USDT"], "okx": ["BTC/USDT"]})
    sup, launcher, clock = make(cfg)
    tick(sup, clock)
    for c in launcher.children:
        c.say("running")
    tick(sup, clock)
    write(cfg, {"binance": ["BTC/USDT"], "okx": ["BTC/USDT"]}, extra={"binance": "stale_after = 7.0"})
    sup.signals.append(signal.SIGHUP)
    tick(sup, clock)  # binance asked to stop (the fake exits on SIGTERM)
    tick(sup, clock)  # reaped as stopped, restarted with the new settings
    assert len(launcher.of("okx")) == 1 and launcher.of("okx")[0].signals == []
    assert len(launcher.of("binance")) == 2
    assert launcher.last("binance").spec.settings.exchange("binance").stale_after == 7.0
    assert sup.slots["binance"].restarts == 1


def test_symbols_change_is_sent_to_the_running_worker(tmp_path, r):
    """A changed symbol list goes over the worker's pipe; nothing restarts."""
    cfg = write(tmp_path / "c.toml", {"binance": ["BTC/USDT"]})
    sup, launcher, clock = make(cfg)
    tick(sup, clock)
    sup.source.settings = config.load(write(cfg, {"binance": ["BTC/USDT", "ETH/USDT"]}), environ={}, dotenv=None)
    sup.source.refresh()
    tick(sup, clock)
    assert launcher.last("binance").sent == [{"symbols": ["BTC/USDT", "ETH/USDT"]}]
    assert len(launcher.of("binance")) == 1


def test_fenced_exit_is_re_evaluated_at_once_and_a_standby_gets_the_lease(tmp_path, r):
    """Exit 5 (lease lost) -> no backoff: the lease is held elsewhere, so a standby starts; when the
    holder releases, the standby is sent the lease and becomes the owner."""
    sup, launcher, clock = make(write(tmp_path / "c.toml", {"binance": ["BTC/USDT"]}))
    tick(sup, clock)
    owner = launcher.last("binance")
    r.set(keys.lease(NS, "binance"), "99:h2:1")  # another host took the exchange
    owner.exit(EXIT_FENCED)
    tick(sup, clock)
    standby = launcher.last("binance")
    assert standby is not owner and standby.spec.standby and not standby.spec.lease
    standby.say("running")
    tick(sup, clock)
    assert sup.slots["binance"].status == Status.STANDBY
    r.delete(keys.lease(NS, "binance"))  # the other host released it
    tick(sup, clock)
    assert standby.sent and "lease" in standby.sent[-1] and sup.slots["binance"].status == Status.STARTING
    standby.say("running")
    tick(sup, clock)
    assert sup.slots["binance"].status == Status.RUNNING


def test_an_exchange_removed_while_down_has_its_prices_deleted_at_start(tmp_path, r):
    """kraken was collected in this namespace once (its fence key stays), left the catalog while no
    supervisor ran and nobody has written it since (times from 1970): at start its prices are
    deleted, under its lease. Left alone: an exchange this namespace never collected (no fence key:
    someone else's, bitfinex), one still in the catalog (okx), and one someone still writes (htx: a
    time from now, e.g. another host collecting a subset). A lease another holder still has defers
    the deletion to a later tick (gate)."""
    for ex in ("kraken", "okx", "gate", "bitfinex", "htx"):
        r.hset(keys.tickers(ex), "BTC/USDT", b"{}")
        r.set(keys.ticker_time(ex, "BTC/USDT"), b"1")
    r.set(keys.ticker_time("kraken", "ETH/USDT"), b"1")  # a ticker_time left without its hash field
    r.set(keys.ticker_time("htx", "ETH/USDT"), repr(time.time()))
    for ex, token in (("kraken", 4), ("okx", 2), ("gate", 1), ("htx", 3)):
        r.set(keys.fence(NS, ex), token)
    r.set(keys.lease(NS, "gate"), b"1:elsewhere:1", px=60_000)  # gate's lease: held by another host
    sup, launcher, clock = make(write(tmp_path / "c.toml", {"okx": ["BTC/USDT"]}))
    tick(sup, clock)
    assert not r.exists(keys.tickers("kraken"), keys.ticker_time("kraken", "BTC/USDT"),
                        keys.ticker_time("kraken", "ETH/USDT"))
    assert r.hget(keys.tickers("okx"), "BTC/USDT") == b"{}"  # in the catalog: kept
    assert r.hget(keys.tickers("gate"), "BTC/USDT") == b"{}"  # lease held elsewhere: not yet
    assert r.hget(keys.tickers("bitfinex"), "BTC/USDT") == b"{}"  # not ours
    assert r.hget(keys.tickers("htx"), "BTC/USDT") == b"{}" and r.exists(keys.ticker_time("htx", "BTC/USDT"))
    assert not r.exists(keys.lease(NS, "kraken"))  # the lease taken for the deletion is given back
    r.delete(keys.lease(NS, "gate"))
    tick(sup, clock)
    assert not r.exists(keys.tickers("gate"), keys.ticker_time("gate", "BTC/USDT"))
    assert len(launcher.of("kraken")) == 0 and len(launcher.of("gate")) == 0


def test_a_standby_counts_as_armed_by_a_fresh_announcement_only(tmp_path, r):
    """`Cluster.armed`, which a handover waits for: a fresh `armed` announcement (or `running`, what a
    standby of the version before wrote, for a fleet mid-upgrade); not a stale one, another word, or none."""
    cluster = Cluster(config.load(write(tmp_path / "c.toml", {}), environ={}, dotenv=None))
    key, now = keys.armed(NS, "binance", "h2"), time.time()
    for status, age, armed in (("armed", 0.0, True), ("running", 0.0, True), ("armed", 60.0, False),
                               ("stopped", 0.0, False), ("starting", 0.0, False)):
        r.set(key, f'{{"status": "{status}", "updated_at": {now - age}, "interval": 0.5}}')
        assert cluster.armed("binance", "h2") is armed, (status, age)
    r.delete(key)
    assert cluster.armed("binance", "h2") is False
