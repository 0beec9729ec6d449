"""The supervisor: one worker process per exchange this host owns, kept matching the catalog.

A short tick (`TICK` s, woken early by signals and catalog NOTIFYs) does, in order:
dispatch signals -> heartbeat this host and read the live hosts and lease holders -> reap
exited workers (restart policy) -> kill workers whose heartbeat stopped -> refresh the catalog
when due -> place the exchanges over the live hosts (placement.py) and reconcile desired vs.
running -> publish state.

Several hosts: an exchange placed here is started with its lease (lease.py) when the lease is
free, or as a standby (connected, holding ticks, not writing) while another host still holds it;
that host stops its worker once our standby is armed, and we pass the lease to the standby the
moment it is released. One host alone owns everything.
Signal handlers only record the signal. Restarts are scheduled (`start_at`), never slept.
Workers start from a fork server with ccxt preloaded (or `spawn`, see `worker_context`): they
inherit no sockets, DB connections or event-loop state, and they exit by themselves when this
process disappears (their control pipe reaches EOF).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import multiprocessing
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import redis as redis_sync
from loguru import logger

from fullon_ticker_service import catalog as cat
from fullon_ticker_service import health, keys, lease
from fullon_ticker_service.backoff import delay
from fullon_ticker_service.config import Settings
from fullon_ticker_service.launch import EXIT_FENCED, WorkerSpec, spawn_target
from fullon_ticker_service.placement import place
from fullon_ticker_service.policy import RestartPolicy, RestartState, after_exit
from fullon_ticker_service.redis_client import make_sync_redis

TICK = 0.5
HANDOVER_POLL = 0.01  # how often a lease our standby waits for is looked at (one MGET)


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class Slot:
    """One exchange under supervision."""

    name: str
    symbols: tuple[str, ...]
    status: str = "idle"  # idle, starting, standby, running, backoff, stopping, stopped, failed
    proc: Any = None  # multiprocessing.Process
    control: Connection | None = None
    started_at: float = 0.0  # monotonic
    start_at: float = 0.0  # monotonic time of the next (re)start
    restarts: int = 0
    restart: RestartState = field(default_factory=RestartState)
    last_error: str = ""
    stopping_since: float = 0.0
    lease: str = ""  # the lease value our worker writes under; '' = none (a standby, or not ours)


def worker_context(method: str) -> Any:
    """The multiprocessing context workers start from; both give a fresh interpreter state.

    `spawn` execs a new interpreter per worker (each imports ccxt itself, ~110 MB private).
    `forkserver` execs one server that imports ccxt.pro once (`preload.py`, heap frozen) and forks
    each worker from it, so the imported modules' pages are shared copy-on-write between workers.
    Neither inherits the supervisor's sockets, database connections or event loop.
    """
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["fullon_ticker_service.preload"])
    return ctx


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/tickerctl-{os.getuid()}"
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def host_id(settings: Settings) -> str:
    return settings.cluster.host_id or socket.gethostname()


def lock_path(settings: Settings) -> Path:
    """One supervisor per Redis namespace and host id on a machine: the lock file is keyed by all."""
    r = settings.redis
    key = hashlib.sha1(f"{r.host}:{r.port}:{r.db}:{r.url}:{r.sentinels}:{r.sentinel_service}:"
                       f"{settings.service.namespace}:{host_id(settings)}".encode()).hexdigest()[:12]
    return runtime_dir() / f"tickerctl-{settings.service.namespace}-{key}.lock"


def pid_path(settings: Settings) -> Path:
    return lock_path(settings).with_suffix(".pid")


def running_pid(settings: Settings) -> int | None:
    """The pid of the supervisor holding this namespace's lock on this host, or None.

    The lock, not the pidfile, is the truth: a pidfile left by a killed supervisor names a pid
    that may since belong to another process, and must never be signalled.
    """
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


class Supervisor:
    def __init__(self, settings: Settings, policy: RestartPolicy | None = None,
                 target: Any = spawn_target, catalog: cat.Catalog | None = None,
                 catalog_conn: Connection | None = None) -> None:
        self.settings = settings
        self.policy = policy or _policy(settings)
        self.stop_timeout = settings.supervisor.stop_timeout
        self.target = target
        self.fixed_catalog = catalog  # the embedding API: a catalog that does not come from a source
        self.catalog_conn = catalog_conn  # ...and its updates (TickerDaemon.process_ticker)
        self.slots: dict[str, Slot] = {}
        self.signals: list[int] = []
        self.stopping = False
        self.stop_deadline = 0.0
        self.ctx = worker_context(settings.supervisor.start_method)
        self.log = logger.bind(component="supervisor")
        self.redis = make_sync_redis(settings.redis)
        self.pg: Any = None
        self.next_catalog_at = 0.0
        self.catalog_attempt = 0
        self.catalog: cat.Catalog | None = None
        self.catalog_problems: set[str] = set()
        self.host = socket.gethostname()
        self.host_id = host_id(settings)
        self.ns = settings.service.namespace
        self.instance = f"{self.host}:{os.getpid()}:{time.time():.6f}"
        self.started_at = time.time()
        self.live_hosts: dict[str, dict[str, Any]] = {}  # host id -> its record, from the last beat
        self.owners: dict[str, str] = {}  # exchange -> lease value, read every tick
        self.desired: dict[str, str | None] = {}  # exchange -> host id (placement.py)
        self._cluster_ok = False  # this tick's view of hosts and leases is current
        self._handover_logged: set[str] = set()
        self._lock_fd: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._redis_ok_since = time.monotonic()  # heartbeat ages count from here after an outage
        self._redis_down_at: float | None = None  # set while Redis is unreachable (said once)
        self._clean_exit = True

    # --- lifecycle --------------------------------------------------------------------------
    def acquire_lock(self) -> None:
        path = lock_path(self.settings)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(f"another supervisor (pid {other}) already runs for namespace "
                                 f"{self.settings.service.namespace!r} on this Redis; not starting") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        pid_path(self.settings).write_text(f"{os.getpid()}\n")

    def release_lock(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(pid_path(self.settings).read_text()) == os.getpid():
                pid_path(self.settings).unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- hosts and leases --------------------------------------------------------------------
    def _host_record(self) -> dict[str, Any]:
        return {"instance": self.instance, "hostname": self.host, "pid": os.getpid(),
                "capacity": self.settings.cluster.capacity, "started_at": self.started_at,
                "updated_at": time.time()}

    def join(self) -> None:
        """Register this host id. Another live supervisor using the id refuses us, unless it is a dead
        process of this machine (killed before it could leave). With Redis unreachable we start and
        register once Redis answers (see `heartbeat`)."""
        ttl = int(self.settings.cluster.host_ttl * 1000)
        try:
            ok, found = lease.beat(self.redis, self.ns, self.host_id, self._host_record(), ttl)
            if not ok:
                other = found[self.host_id]
                if other.get("hostname") == self.host and not pid_alive(int(other.get("pid") or 0)):
                    ok, found = lease.beat(self.redis, self.ns, self.host_id, self._host_record(), ttl, force=True)
        except (redis_sync.RedisError, OSError) as exc:
            self.log.warning(f"cannot register host {self.host_id!r} (Redis: {_one_line(exc)}); registering "
                             f"once Redis answers")
            return
        if not ok:
            other = found[self.host_id]
            raise AlreadyRunning(f"another supervisor (pid {other.get('pid')} on {other.get('hostname')}) already "
                                 f"runs as host {self.host_id!r} for namespace {self.ns!r} on this Redis; not "
                                 f"starting (give each host its own cluster.host_id / TICKER_HOST_ID)")
        self.live_hosts = found

    def heartbeat(self) -> None:
        """Renew this host, read the live hosts and every exchange's lease holder (one view per tick)."""
        self._cluster_ok = False
        try:
            ok, found = lease.beat(self.redis, self.ns, self.host_id, self._host_record(),
                                   int(self.settings.cluster.host_ttl * 1000))
            names = sorted(set(self.catalog or ()) | set(self.slots))
            owners = lease.owners(self.redis, self.ns, names)
        except (redis_sync.RedisError, OSError) as exc:
            self._redis_unreachable(exc)
            return
        if self._redis_down_at is not None:  # back (maybe empty): nobody is judged on the outage
            self.log.info(f"Redis reachable again after {time.monotonic() - self._redis_down_at:.1f}s")
            self._redis_down_at = None
            self._redis_ok_since = time.monotonic()
        if not ok:
            if not self.stopping:
                self.log.error(f"another supervisor registered as host {self.host_id!r} (we were paused, cut "
                               f"off, or started while Redis was down); stopping our workers")
                self._clean_exit = False
                self.begin_stop()
            return
        self.live_hosts, self.owners, self._cluster_ok = found, owners, True

    def _capacities(self) -> dict[str, int]:
        out = {h: int(rec.get("capacity") or 0) for h, rec in self.live_hosts.items()}
        out.setdefault(self.host_id, self.settings.cluster.capacity)
        return out

    def _acquire(self, slot: Slot) -> bool:
        """Take the exchange's lease if it is free, or held by an earlier instance of this host id
        (which is dead: we hold the id). True when `slot.lease` is ours now."""
        cur = self.owners.get(slot.name, "")
        replace = cur if cur and lease.holder(cur)[1] == self.host_id and cur != slot.lease else ""
        try:
            ok, value = lease.acquire(self.redis, self.ns, slot.name, self.host_id, os.getpid(),
                                      int(self.settings.cluster.lease_ttl * 1000), replace)
        except (redis_sync.RedisError, OSError) as exc:
            self.log.warning(f"{slot.name}: lease not acquired (Redis: {_one_line(exc)})")
            return False
        self.owners[slot.name] = value
        if ok:
            slot.lease = value
            self.log.info(f"{slot.name}: acquired the lease (token {lease.token(value)})")
        return ok

    def _release(self, slot: Slot) -> None:
        if slot.lease:
            with contextlib.suppress(redis_sync.RedisError, OSError):
                if lease.release(self.redis, self.ns, slot.name, slot.lease):
                    self.log.info(f"{slot.name}: released the lease (token {lease.token(slot.lease)})")
            if self.owners.get(slot.name) == slot.lease:
                del self.owners[slot.name]
            slot.lease = ""

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns 0 when every worker stopped cleanly."""
        self.acquire_lock()
        try:
            self.join()
        except AlreadyRunning:
            self.release_lock()
            raise
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        self.log.info(f"supervisor pid {os.getpid()} starting; catalog from "
                      f"{'PostgreSQL' if self.settings.database.enabled and self.fixed_catalog is None else 'config'}")
        try:
            while True:
                self._dispatch_signals()
                self.heartbeat()
                self.reap()
                self.reap_orphans()
                self._sweep_stopping()
                if self.stopping:
                    if self._stopped_all():
                        break
                    self._enforce_stop_deadline()
                else:
                    self.check_heartbeats()
                    self.refresh_catalog()
                    self.reconcile()
                self.publish()
                self._sleep(self._next_wait())
        finally:
            self._kill_all()
            self._clear_state()
            for slot in self.slots.values():
                self._release(slot)
            with contextlib.suppress(redis_sync.RedisError, OSError):
                lease.leave(self.redis, self.ns, self.host_id, self.instance)
            with contextlib.suppress(Exception):
                self.redis.close()
            if self.pg is not None:
                with contextlib.suppress(Exception):
                    self.pg.close()
            self.release_lock()
        self.log.info("supervisor stopped")
        return 0 if self._clean_exit else 1

    def _next_wait(self) -> float:
        """Sleep one tick, or less when a restart is due sooner (so short backoffs keep their jitter)."""
        now = time.monotonic()
        due = [s.start_at - now for s in self.slots.values() if s.status == "backoff" and s.proc is None]
        return max(0.01, min([TICK, *due]))

    def _sleep(self, seconds: float) -> None:
        """`_wait`, but while one of our standbys waits for a lease held elsewhere, look at that lease
        every HANDOVER_POLL and wake the moment it is released: the handover gap is this poll plus
        one flush, not a supervisor tick."""
        waiting = [s.name for s in self.slots.values()
                   if s.status == "standby" and not s.lease and self.desired.get(s.name) == self.host_id]
        if not waiting:
            self._wait(seconds)
            return
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.stopping:
            self._wait(min(left, HANDOVER_POLL))
            try:
                if len(lease.owners(self.redis, self.ns, waiting)) < len(waiting):
                    return  # one was released: the next iteration's heartbeat sees it and we acquire
            except (redis_sync.RedisError, OSError):
                return

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _dispatch_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                if self.stopping:
                    self.log.warning("second stop signal: killing workers now")
                    self.stop_deadline = 0.0
                else:
                    self.begin_stop()
            elif sig == signal.SIGHUP:
                self.log.info("SIGHUP: re-reading the configuration and the catalog")
                self.next_catalog_at = 0.0
                if self.fixed_catalog is None:
                    self._reload_config()

    def _reload_config(self) -> None:
        """Apply a re-read config file: the catalog (when it comes from the file), exchange settings
        and restart policy. A worker whose connection settings changed is restarted; Redis, namespace
        and database settings need a restart of the supervisor (said in one line)."""
        from fullon_ticker_service import config

        old = self.settings
        try:
            new = config.load(old.source if old.source.endswith(".toml") else None)
        except config.ConfigError as exc:
            self.log.error(f"SIGHUP: configuration not reloaded, keeping the running one: {exc}")
            return
        fixed = [k for k in ("redis", "database", "service") if getattr(new, k) != getattr(old, k)]
        if dataclasses.replace(new.cluster, capacity=old.cluster.capacity) != old.cluster:
            fixed.append("cluster")  # all but capacity: capacity applies live (it is in our heartbeat)
        if fixed:
            self.log.warning(f"SIGHUP: [{'], ['.join(fixed)}] changed; restart the supervisor to apply them")
        self.settings = dataclasses.replace(new, redis=old.redis, database=old.database, service=old.service,
                                            cluster=dataclasses.replace(old.cluster, capacity=new.cluster.capacity))
        self.policy = _policy(self.settings)
        self.stop_timeout = self.settings.supervisor.stop_timeout
        for name, slot in self.slots.items():
            if _connection(old, name) != _connection(self.settings, name) and self._alive(slot):
                self.log.info(f"{name}: exchange settings changed; restarting its worker")
                self._terminate(slot)

    def begin_stop(self) -> None:
        self.log.info(f"stopping {sum(1 for s in self.slots.values() if self._alive(s))} worker(s)")
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.stop_timeout
        for slot in self.slots.values():
            self._terminate(slot)

    def _wait(self, seconds: float) -> None:
        fds = [self._wake_r]
        if self.pg is not None:
            fds.append(self.pg.fileno())
        if self.catalog_conn is not None:
            fds.append(self.catalog_conn.fileno())
        with contextlib.suppress(InterruptedError, OSError, ValueError):
            ready, _, _ = select.select(fds, [], [], seconds)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
            if self.pg is not None and self.pg.fileno() in ready:
                self._drain_notifies()
            if self.catalog_conn is not None and self.catalog_conn.fileno() in ready:
                self._read_catalog_conn()

    # --- workers ----------------------------------------------------------------------------
    def spawn_worker(self, slot: Slot) -> None:
        parent_end, child_end = self.ctx.Pipe(duplex=False)
        # a forked worker's parent is the fork server: it watches its control pipe (EOF) instead
        parent = os.getpid() if self.ctx.get_start_method() == "spawn" else None
        spec = WorkerSpec(slot.name, slot.symbols, self.settings, parent_pid=parent, lease=slot.lease,
                          standby=not slot.lease, host_id=self.host_id)
        proc = self.ctx.Process(target=self.target, args=(spec, parent_end), name=f"tick-{slot.name}", daemon=False)
        proc.start()
        parent_end.close()
        slot.proc, slot.control = proc, child_end
        slot.started_at = time.monotonic()
        slot.status = "starting" if slot.lease else "standby"
        role = f"token {lease.token(slot.lease)}" if slot.lease else "standby: another host still holds the lease"
        self.log.info(f"{slot.name}: started worker pid {proc.pid} ({len(slot.symbols)} symbols, {role})")

    def reap(self) -> None:
        now = time.monotonic()
        for slot in self.slots.values():
            proc = slot.proc
            if proc is None or proc.is_alive():
                continue
            proc.join(0)
            code = proc.exitcode
            uptime = now - slot.started_at
            slot.proc = None
            if slot.control is not None:
                slot.control.close()
                slot.control = None
            if code == EXIT_FENCED:  # another worker holds the lease: re-evaluate now, no backoff
                slot.lease, slot.status = "", "idle"
                slot.last_error = "lease lost to another writer; its writes were refused"
                self.log.warning(f"{slot.name}: worker exited: {slot.last_error}")
                continue
            if slot.status == "stopping" or self.stopping:
                self._release(slot)  # the worker released it after its final flush; this covers a kill
                slot.status = "stopped"
                if code not in (0, None):
                    self._clean_exit = False
                self.log.info(f"{slot.name}: worker exited ({code})")
                continue
            slot.last_error = self._worker_error(slot) or _exit_reason(code)
            decision = after_exit(slot.restart, self.policy, code, uptime, now)
            slot.status = decision.status
            if decision.start_at is not None:
                slot.start_at = decision.start_at
            if decision.status == "failed":
                self.log.error(f"{slot.name}: parked as failed: {decision.reason}; last error: {slot.last_error}")
            else:
                self.log.warning(f"{slot.name}: {decision.reason}")

    def reap_orphans(self) -> None:
        """As PID 1 (a container without an init) we adopt orphans: reap the dead ones nobody waits for.

        Our own children (spawned workers, the fork server, multiprocessing's resource tracker)
        are left to multiprocessing, which waits for them itself.
        """
        if os.getpid() != 1:
            return
        ours = {s.proc.pid for s in self.slots.values() if s.proc is not None} | _multiprocessing_helpers()
        for pid in _zombie_children():
            if pid not in ours:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def _record_key(self, slot: Slot) -> str:
        """Where the slot's worker reports: the exchange's health record, or its standby record."""
        return keys.health(self.ns, slot.name) if slot.lease else keys.armed(self.ns, slot.name, self.host_id)

    def _worker_error(self, slot: Slot) -> str:
        with contextlib.suppress(Exception):
            raw = self.redis.get(self._record_key(slot))
            if raw:
                return str(orjson.loads(raw).get("last_error") or "")
        return ""

    def _redis_unreachable(self, exc: BaseException) -> None:
        if self._redis_down_at is None:  # one line when it starts, one when it ends (heartbeat)
            self._redis_down_at = time.monotonic()
            self.log.error(f"Redis unreachable ({_one_line(exc)}); workers keep collecting, but our "
                           f"leases lapse after {self.settings.cluster.lease_ttl:g}s without renewal and "
                           f"other hosts may then take our exchanges over")

    def check_heartbeats(self) -> None:
        """Kill a worker whose event loop stopped writing its health record (hung loop)."""
        if self._redis_down_at is not None:
            return  # cannot tell a hung worker from a Redis outage: judge nobody
        now_m, now = time.monotonic(), time.time()
        for slot in self.slots.values():
            if not self._alive(slot) or slot.status == "stopping":
                continue
            try:
                raw = self.redis.get(self._record_key(slot))
            except (redis_sync.RedisError, OSError) as exc:
                self._redis_unreachable(exc)
                return
            since_redis = now_m - self._redis_ok_since
            rec = health.decode(slot.name, raw, now, self.settings.service.health_interval)
            if rec.pid == slot.proc.pid and (rec.raw or {}).get("host_id", self.host_id) != self.host_id:
                rec = health.decode(slot.name, None)  # another host's worker with the same pid
            if rec.pid == slot.proc.pid and rec.status in ("running", "error"):
                slot.status = "running" if slot.lease else "standby"
                if rec.status == "error" and rec.last_error:
                    slot.last_error = rec.last_error
                age = min(now - rec.updated_at, since_redis)
            else:
                age = min(now_m - slot.started_at, since_redis)  # not reported yet, or the record was lost
                if age < self.policy.start_grace:
                    continue
            limit = self.policy.heartbeat_timeout if rec.pid == slot.proc.pid else self.policy.start_grace
            if age > limit:
                slot.last_error = f"no heartbeat for {age:.0f}s; killed"
                self.log.error(f"{slot.name}: {slot.last_error}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.proc.pid, signal.SIGKILL)

    def reconcile(self) -> None:
        if self.catalog is None:
            return
        now = time.monotonic()
        if self._cluster_ok:
            current = {ex: lease.holder(v)[1] for ex, v in self.owners.items()}
            self.desired = place(self.catalog, self._capacities(), current)
        for name, symbols in self.catalog.items():
            mine = self.desired.get(name) == self.host_id
            slot = self.slots.get(name)
            if slot is None:
                if not mine:
                    continue
                slot = self.slots[name] = Slot(name, symbols)
            if symbols != slot.symbols:
                slot.symbols = symbols
                if self._alive(slot) and slot.control is not None:
                    with contextlib.suppress(OSError, ValueError):
                        slot.control.send(symbols)
                        self.log.info(f"{slot.name}: sent {len(symbols)} symbols to the worker")
                elif slot.status == "failed":
                    slot.status, slot.start_at, slot.restart = "backoff", now, RestartState()
            if self._alive(slot):
                if slot.status != "stopping":
                    self._steer(slot, mine)
                continue
            if not mine:  # placed on another host: hand the lease back, forget the slot
                self._release(slot)
                del self.slots[name]
                continue
            if slot.status == "failed" or (slot.status == "backoff" and now < slot.start_at):
                continue
            if not self._cluster_ok and not slot.lease:
                continue  # cannot tell who holds the lease while Redis is unreachable
            if not slot.lease:
                self._acquire(slot)
            if slot.status in ("backoff", "stopped"):
                slot.restarts += 1
            self.spawn_worker(slot)
        for name, slot in list(self.slots.items()):
            if name not in self.catalog:
                if self._alive(slot):
                    if slot.status != "stopping":
                        self.log.info(f"{name}: no longer active; stopping its worker")
                        self._terminate(slot)
                else:
                    self._release(slot)
                    del self.slots[name]

    def _steer(self, slot: Slot, mine: bool) -> None:
        """A live worker: pass a standby the lease when it frees up; stop a standby no longer wanted;
        hand an owned exchange placed elsewhere over once the new host's standby is armed."""
        if not slot.lease:
            if not mine:
                self.log.info(f"{slot.name}: placed on {self.desired.get(slot.name)}; stopping our standby")
                self._terminate(slot)
            elif self._acquire(slot) and slot.control is not None:
                with contextlib.suppress(OSError, ValueError):
                    slot.control.send({"lease": slot.lease})
                slot.status = "starting"
            return
        target = self.desired.get(slot.name)
        if mine or target is None:
            self._handover_logged.discard(slot.name)
            return
        try:
            raw = self.redis.get(keys.armed(self.ns, slot.name, target))
        except (redis_sync.RedisError, OSError):
            return
        if health.decode(slot.name, raw).status == health.RUNNING:
            self.log.info(f"{slot.name}: handing over to host {target} (its standby is armed)")
            self._handover_logged.discard(slot.name)
            self._terminate(slot)
        elif slot.name not in self._handover_logged:
            self._handover_logged.add(slot.name)
            self.log.info(f"{slot.name}: placed on host {target}; collecting until its standby is armed")

    def _terminate(self, slot: Slot) -> None:
        if self._alive(slot):
            slot.status = "stopping"
            slot.stopping_since = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.proc.pid, signal.SIGTERM)
        elif slot.status in ("backoff", "starting"):
            slot.status = "stopped"

    @staticmethod
    def _alive(slot: Slot) -> bool:
        return slot.proc is not None and slot.proc.is_alive()

    def _stopped_all(self) -> bool:
        return not any(self._alive(s) for s in self.slots.values())

    def _sweep_stopping(self) -> None:
        """Every worker asked to stop gets `stop_timeout`, whoever asked it (the catalog, placement, a
        reload): then SIGKILL. Before, only a catalog removal had this deadline, so a wedged worker
        told to restart by SIGHUP or to move by placement stayed `stopping` forever."""
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.status == "stopping" and self._alive(slot) and now - slot.stopping_since > self.stop_timeout:
                self.log.error(f"{slot.name}: did not stop within {self.stop_timeout:g}s; SIGKILL")
                slot.stopping_since = now - self.stop_timeout + 5  # again in 5 s if it survives
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.proc.pid, signal.SIGKILL)

    def _enforce_stop_deadline(self) -> None:
        if time.monotonic() >= self.stop_deadline:
            for slot in self.slots.values():
                if self._alive(slot):
                    self.log.error(f"{slot.name}: did not stop in time; SIGKILL")
                    self._clean_exit = False
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(slot.proc.pid, signal.SIGKILL)
            self.stop_deadline = time.monotonic() + 5

    def _kill_all(self) -> None:
        for slot in self.slots.values():
            if self._alive(slot):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.proc.pid, signal.SIGKILL)
                slot.proc.join(5)

    # --- catalog ----------------------------------------------------------------------------
    def refresh_catalog(self) -> None:
        now = time.monotonic()
        if now < self.next_catalog_at:
            return
        if self.fixed_catalog is not None:
            self._set_catalog(self.fixed_catalog)
            self.next_catalog_at = float("inf")
            return
        if not self.settings.database.enabled:
            self._set_catalog(cat.from_config(self.settings))
            self.next_catalog_at = float("inf")  # until SIGHUP
            return
        try:
            if self.pg is None:
                self.pg = cat.connect(self.settings)
                self.pg.execute(f"LISTEN {cat.CHANNEL}")
            catalog, problems = cat.load_pg(self.pg, self.settings)
            for p in sorted(set(problems) - self.catalog_problems):  # each once, not at every poll
                self.log.error(f"catalog: {p}")
            self.catalog_problems = set(problems)
            self._set_catalog(catalog)
            self.catalog_attempt = 0
            self.next_catalog_at = now + self.settings.database.poll_interval
        except Exception as exc:
            self.catalog_attempt += 1
            wait = delay(self.catalog_attempt, 1.0, 30.0)
            state = "keeping the last catalog" if self.catalog is not None else "no catalog yet"
            self.log.error(f"catalog from PostgreSQL failed ({_one_line(exc)}); {state}; retry in {wait:.1f}s")
            if self.pg is not None:
                with contextlib.suppress(Exception):
                    self.pg.close()
            self.pg = None
            self.next_catalog_at = now + wait

    def _read_catalog_conn(self) -> None:
        try:
            while self.catalog_conn is not None and self.catalog_conn.poll():
                self.fixed_catalog = {k: tuple(v) for k, v in self.catalog_conn.recv().items()}
                self.next_catalog_at = 0.0
        except (EOFError, OSError):  # the embedding process is gone: stop like on SIGTERM
            self.catalog_conn = None
            if not self.stopping:
                self.log.error("embedding process is gone; stopping")
                self.begin_stop()

    def _drain_notifies(self) -> None:
        try:
            for _ in self.pg.notifies(timeout=0, stop_after=1000):
                self.next_catalog_at = 0.0
        except Exception as exc:
            self.log.error(f"catalog listener lost ({_one_line(exc)})")
            with contextlib.suppress(Exception):
                self.pg.close()
            self.pg = None
            self.next_catalog_at = 0.0

    def _set_catalog(self, catalog: cat.Catalog) -> None:
        if catalog != self.catalog:
            self.log.info(f"catalog: {len(catalog)} exchanges, {sum(len(v) for v in catalog.values())} symbols")
        self.catalog = catalog

    # --- state for `tickerctl ps` -------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "host": self.host, "host_id": self.host_id, "pid": os.getpid(), "updated_at": time.time(),
            "stopping": self.stopping, "capacity": self.settings.cluster.capacity,
            "live_hosts": sorted(self.live_hosts),
            "unplaced": sorted(e for e, h in self.desired.items() if h is None),
            "exchanges": {
                s.name: {"status": s.status, "pid": s.proc.pid if s.proc is not None else None,
                         "restarts": s.restarts, "symbols": len(s.symbols), "last_error": s.last_error,
                         "host_id": self.host_id, "token": lease.token(s.lease) if s.lease else None,
                         "next_start_in": round(max(0.0, s.start_at - now), 2) if s.status == "backoff" else None}
                for s in self.slots.values()
            },
        }

    def publish(self) -> None:
        with contextlib.suppress(redis_sync.RedisError, OSError):
            self.redis.set(keys.supervisor_state(self.ns, self.host_id), orjson.dumps(self.state()),
                           px=int(max(3.0, TICK * 6) * 1000))

    def _clear_state(self) -> None:
        with contextlib.suppress(redis_sync.RedisError, OSError):
            self.redis.set(keys.supervisor_state(self.ns, self.host_id),
                           orjson.dumps({**self.state(), "stopping": True, "stopped": True}), ex=3600)


def _policy(settings: Settings) -> RestartPolicy:
    sv = settings.supervisor
    return RestartPolicy(sv.restart_base, sv.restart_cap, sv.stable_after, sv.max_crashes, sv.crash_window,
                         sv.heartbeat_timeout, sv.start_grace)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"worker killed by signal {signal.Signals(-code).name}"
    return f"worker exited with code {code}"


def _connection(settings: Settings, name: str) -> Any:
    """An exchange's settings apart from its symbols (those are applied live, without a restart)."""
    return dataclasses.replace(settings.exchange(name), symbols=())


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


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
