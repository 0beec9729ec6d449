"""`tickerctl up` as PID 1 of its own PID namespace, as in a container (`unshare --pid --fork --mount-proc`).

PID 1 is special: signals without a handler are ignored, orphans of the namespace are
reparented to it, and when it exits the kernel kills every other process of the namespace.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from fullon_ticker_service import keys
from tests.conftest import eventually
from tests.ops.helpers import children, ns_members, pid_ns, proc_stat, running
from tests.supervisor.helpers import NAMESPACE, alive, env, write_config

STOP_TIMEOUT = 8.0  # write_config's supervisor.stop_timeout


def _pid_namespace_unavailable() -> str | None:
    """Why this machine cannot give a test its own PID namespace, or None when it can.

    Creating one needs CAP_SYS_ADMIN: containers and CI runners usually lack it, and then
    `unshare` fails at once ("Operation not permitted"). One quick probe decides, instead of
    every test timing out waiting for a namespace that never appears.
    """
    if shutil.which("unshare") is None:
        return "unshare (util-linux) not installed"
    try:
        out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                             capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return "`unshare --pid --fork --mount-proc true` did not finish within 5 s"
    except OSError as exc:
        return f"unshare cannot run: {exc}"
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return (f"cannot create a PID namespace here (needs CAP_SYS_ADMIN, which containers and CI "
                f"runners usually lack): {why}")
    return None


_UNAVAILABLE = _pid_namespace_unavailable()
pytestmark = pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or "")


class Namespace:
    """`tickerctl up -c cfg` as PID 1 of a new PID namespace; `init` is its host pid."""

    def __init__(self, cfg: Path, log: Path) -> None:
        with open(log, "ab") as out:
            self.unshare = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc",
                 sys.executable, "-m", "fullon_ticker_service.cli", "up", "-c", str(cfg)],
                env=env(), stdout=out, stderr=subprocess.STDOUT)
        self.log = log
        self.init = 0
        self.ns = ""

    async def started(self) -> None:
        self.init = await eventually(lambda: next(iter(children(self.unshare.pid)), None), 10, 0.02,
                                     "unshare's child (the namespace's PID 1)")
        self.ns = await eventually(lambda: pid_ns(self.init), 5, 0.02, "its PID namespace")
        assert self.ns != pid_ns(os.getpid()), "unshare did not create a PID namespace"
        assert ns_members(self.ns).get(self.init) == 1, "the supervisor is not PID 1 of its namespace"

    def stop(self) -> None:
        """Cleanup: SIGKILL to PID 1 takes the whole namespace with it."""
        if self.unshare.poll() is None:
            if self.init and alive(self.init):
                os.kill(self.init, signal.SIGKILL)
            try:
                self.unshare.wait(10)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait(5)


def _config(sim, tmp_path: Path, names: tuple[str, ...]) -> Path:
    cfg = write_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n)} for n in names})
    # a 2 s health interval: the workers' final `stopped` records (TTL 3x) outlive the checks below
    cfg.write_text(cfg.read_text().replace("health_interval = 0.5", "health_interval = 2.0"))
    return cfg


async def test_pid1_sigterm_stops_workers_gracefully_and_leaves_nothing(sim, redis_db, tmp_path):
    """SIGTERM to the namespace's PID 1: exit 0 within the deadline, workers wrote `stopped`, no process left."""
    names = ("binance", "okx")
    cfg = _config(sim, tmp_path, names)
    ns = Namespace(cfg, tmp_path / "up.log")
    try:
        await ns.started()
        rows = await eventually(lambda: running(cfg, names), 60, 0.3, "2 running workers (ps --json)")
        members = ns_members(ns.ns)
        worker_pids = {rows[n]["pid"] for n in names}  # pids as the workers see them: inside the namespace
        workers = [host for host, inside in members.items() if inside in worker_pids]
        assert len(workers) == 2, (members, rows)

        t0 = time.monotonic()
        os.kill(ns.init, signal.SIGTERM)
        await eventually(lambda: ns.unshare.poll() is not None, STOP_TIMEOUT + 5, 0.05, "PID 1 exit")
        elapsed = time.monotonic() - t0
        assert ns.unshare.returncode == 0, ns.log.read_text()[-3000:]
        assert elapsed < STOP_TIMEOUT, f"graceful stop took {elapsed:.1f}s (the SIGKILL deadline is {STOP_TIMEOUT}s)"

        for name in names:  # written by each worker itself on its way out: not killed by the kernel
            raw = await redis_db.get(keys.health(NAMESPACE, name))
            assert raw is not None and orjson.loads(raw)["status"] == "stopped", (name, raw)
        (state_key,) = await redis_db.keys(keys.supervisor_state_pattern(NAMESPACE))  # one host
        state = orjson.loads(await redis_db.get(state_key))
        assert state["stopped"] is True and state["pid"] == 1
        assert await redis_db.hlen(keys.process_active()) == 0
        assert ns_members(ns.ns) == {}, "processes of the namespace survived its PID 1"
        assert not any(alive(p) for p in workers)
        assert "did not stop in time" not in ns.log.read_text()
    finally:
        ns.stop()


@pytest.mark.skipif(shutil.which("nsenter") is None, reason="nsenter (util-linux) not installed")
async def test_pid1_reaps_orphans_of_its_namespace(sim, redis_db, tmp_path):
    """A process orphaned inside the namespace is reparented to PID 1, which must reap it (no zombie)."""
    cfg = _config(sim, tmp_path, ("okx",))
    ns = Namespace(cfg, tmp_path / "up.log")
    try:
        await ns.started()
        await eventually(lambda: running(cfg, ("okx",)), 60, 0.3, "okx running (ps --json)")
        # sh enters the namespace, starts `sleep` and exits at once: `sleep` is orphaned inside it
        await asyncio.to_thread(subprocess.run, ["nsenter", "--target", str(ns.init), "--pid", "--",
                                                 "sh", "-c", "sleep 1.5 & exit 0"], check=True, timeout=10)

        def orphan() -> int | None:
            for host in ns_members(ns.ns):
                st = proc_stat(host)
                try:
                    comm = Path(f"/proc/{host}/comm").read_text().strip()
                except OSError:
                    continue
                if st and st[1] == ns.init and comm == "sleep":
                    return host
            return None

        pid = await eventually(orphan, 5, 0.02, "the orphaned sleep reparented to PID 1")
        await eventually(lambda: proc_stat(pid) is None, 5, 0.05,
                         f"the orphan {pid} reaped (state now {proc_stat(pid)}: Z = zombie, not reaped)")
        assert ns.unshare.poll() is None
        assert await running(cfg, ("okx",)), "the supervisor stopped collecting after reaping"
        os.kill(ns.init, signal.SIGTERM)
        await eventually(lambda: ns.unshare.poll() is not None, STOP_TIMEOUT + 5, 0.05, "PID 1 exit")
        assert ns.unshare.returncode == 0, ns.log.read_text()[-3000:]
    finally:
        ns.stop()
