"""`tickerctl`: a thin CLI; each command makes one call into the core."""

from __future__ import annotations

import os
import signal
import sys


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(130)


# Run as a command (not imported by a test or an embedding program): a Ctrl-C while the command is
# still importing or starting ends it without a traceback; `finally` blocks (the demo's cleanup) run.
# First thing, with modules the interpreter has already loaded, so the unguarded window is as short
# as Python's own start-up.
if os.path.basename(sys.argv[0]) in ("tickerctl", "cli.py") and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted)

import asyncio  # noqa: E402 - the imports come after the handler above, on purpose
import contextlib  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from enum import StrEnum  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
import typer  # noqa: E402

from fullon_ticker_service import config, logs  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Real-time crypto tickers from ccxt.pro websockets into Redis (fullon layout).")
db_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL catalog.")
sim_app = typer.Typer(help="The local exchange simulator (run it, or inject faults into a running one).")
app.add_typer(db_app, name="db")
app.add_typer(sim_app, name="sim")

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config (default: $TICKER_CONFIG or config/tickerctl.toml)")


def _settings(path: Path | None) -> config.Settings:
    try:
        s = config.load(path)
    except config.ConfigError as exc:
        typer.echo(f"tickerctl: configuration error: {exc}", err=True)
        raise typer.Exit(3) from None
    logs.setup(s.service.log_level, s.service.log_format)
    return s


@app.command()
def up(cfg: Path | None = ConfigOpt,
       detach: bool = typer.Option(False, "--detach", "-d", help="run in the background (pidfile)")) -> None:
    """Start the supervisor and one worker per active exchange (foreground by default)."""
    from fullon_ticker_service.supervisor import AlreadyRunning, Supervisor

    settings = _settings(cfg)
    if detach:
        _detach(settings, cfg)
        return
    try:
        code = Supervisor(settings).run()
    except AlreadyRunning as exc:
        typer.echo(f"tickerctl: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _detach(settings: config.Settings, cfg: Path | None) -> None:
    """Start `up` in a new session; return once it holds the namespace lock (or say why it failed)."""
    from fullon_ticker_service.supervisor.pidlock import pid_path, running_pid

    log = pid_path(settings).with_suffix(".log")
    args = [sys.executable, "-m", "fullon_ticker_service.cli", "up"] + (["--config", str(cfg)] if cfg else [])
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            typer.echo(f"tickerctl: supervisor exited at once (code {proc.returncode}): {tail[0]} (log {log})",
                       err=True)
            raise typer.Exit(proc.returncode or 1)
        if running_pid(settings) == proc.pid:
            typer.echo(f"supervisor started in the background, pid {proc.pid}; pidfile {pid_path(settings)}; "
                       f"log {log}")
            return
        time.sleep(0.1)
    typer.echo(f"tickerctl: supervisor pid {proc.pid} did not take its lock within 30 s; see {log}", err=True)
    raise typer.Exit(1)


@app.command()
def down(cfg: Path | None = ConfigOpt, timeout: float = typer.Option(20.0, help="seconds before giving up")) -> None:
    """Stop a running supervisor gracefully (SIGTERM, then wait)."""
    from fullon_ticker_service.supervisor.pidlock import pid_alive, running_pid

    settings = _settings(cfg)
    pid = running_pid(settings)
    if pid is None:
        typer.echo("tickerctl: no supervisor is running for this namespace on this host", err=True)
        raise typer.Exit(1)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # it drops its lock just before it exits: "stopped" means the process is gone too
        if running_pid(settings) != pid and not pid_alive(pid):
            typer.echo(f"supervisor {pid} stopped")
            return
        time.sleep(0.1)
    typer.echo(f"tickerctl: supervisor {pid} still running after {timeout:g}s", err=True)
    raise typer.Exit(1)


@app.command()
def ps(cfg: Path | None = ConfigOpt, as_json: bool = typer.Option(False, "--json", help="JSON array"),
       symbols: str = typer.Option(
           "", "--symbols", metavar="EXCHANGE",
           help="one row per symbol of EXCHANGE: last written, exchange time, streams")) -> None:
    """Show every worker: status (judged by what reaches Redis), coverage, write age, last error."""
    from fullon_ticker_service import status

    settings = _settings(cfg)
    where = f"namespace {settings.service.namespace!r} at {logs.mask_secrets(settings.redis.dsn())}"
    if symbols:
        found = _read(settings, lambda: status.symbol_rows(settings, symbols, time.time()))
        if found is None:
            typer.echo(f"tickerctl: no per-symbol table for {symbols!r} in {where} (no owning worker running?)",
                       err=True)
            raise typer.Exit(1)
        typer.echo(orjson.dumps(found).decode() if as_json else status.symbols_text(found))
        return
    sup, records = _read(settings, lambda: status.collect(settings))
    table = status.rows(sup, records, time.time(), settings.service.health_interval)
    if not table:
        refused = _read(settings, lambda: status.diagnose(settings))
        if refused:  # records are missing because they cannot be written: not "nothing runs"
            typer.echo(f"tickerctl: nothing found in {where}, and Redis refuses writes: {refused}", err=True)
            raise typer.Exit(2)
        others = [n for n in _read(settings, lambda: status.namespaces(settings)) if n != settings.service.namespace]
        hint = f"namespaces with records there: {', '.join(others)}" if others else "no namespace has records there"
        typer.echo(f"tickerctl: nothing found in {where}; {hint}", err=True)
        if as_json:
            typer.echo("[]")
        return
    typer.echo(orjson.dumps(status.public(table)).decode() if as_json else status.table_text(table))


@app.command()
def health(cfg: Path | None = ConfigOpt,
           max_age: float = typer.Option(60.0, help="oldest acceptable last write of a running exchange (s)"),
           min_coverage: float = typer.Option(
               1.0, help="share of an exchange's symbols that must be fresh (0-1)")) -> None:
    """Exit 0 when every exchange writes fresh values for its symbols; else 1, one line per problem."""
    from fullon_ticker_service import status

    settings = _settings(cfg)
    sup, records = _read(settings, lambda: status.collect(settings))
    table = status.rows(sup, records, time.time(), settings.service.health_interval)
    suspicious = not sup or sup.get("stopped") or any(r["status"] in ("redis-error", "stale") for r in table)
    redis_problem = _read(settings, lambda: status.diagnose(settings)) if suspicious else ""
    issues = status.problems(table, sup, max_age, min_coverage, redis_problem)
    for line in issues:
        typer.echo(line)
    if issues:
        raise typer.Exit(1)
    typer.echo(f"ok: {len(table)} exchanges running, every symbol fresh")


def _read(settings: config.Settings, read: Any) -> Any:
    """Run a Redis read for the CLI: an unreachable or silent Redis is one line and exit 2."""
    from redis.exceptions import RedisError

    from fullon_ticker_service.redis_client import error_kind

    try:
        return read()
    except (RedisError, OSError) as exc:
        kind = error_kind(exc)
        hint = " (Redis did not answer in time: paused, overloaded or blocked?)" if kind == "timeout" else ""
        typer.echo(f"tickerctl: cannot read Redis at {logs.mask_secrets(settings.redis.dsn())}: "
                   f"{kind}: {' '.join(str(exc).split())}{hint}", err=True)
        raise typer.Exit(2) from None


@app.command()
def metrics(cfg: Path | None = ConfigOpt,
            serve: str = typer.Option("", "--serve", metavar="HOST:PORT",
                                      help="serve Prometheus text on http://HOST:PORT/metrics (loopback unless you "
                                           "say otherwise)")) -> None:
    """Prometheus text from the health records: print once, or serve it."""
    from fullon_ticker_service import metrics as m

    settings = _settings(cfg)
    if not serve:
        typer.echo(m.scrape(settings), nl=False)
        return
    host, _, port = serve.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        typer.echo(f"tickerctl: --serve expects HOST:PORT, got {serve!r}", err=True)
        raise typer.Exit(2) from None
    asyncio.run(_serve_metrics(settings, host.strip("[]") or "127.0.0.1", port_n))


async def _serve_metrics(settings: config.Settings, host: str, port: int) -> None:
    from fullon_ticker_service import metrics as m

    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):  # as PID 1 in a container nothing else would stop us
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    with contextlib.suppress(asyncio.CancelledError):
        await m.serve(settings, host, port)


@app.command()
def worker(exchange: str, symbols: list[str] = typer.Argument(None), cfg: Path | None = ConfigOpt) -> None:
    """Run one exchange worker in the foreground (debugging)."""
    from fullon_ticker_service.launch import WorkerSpec
    from fullon_ticker_service.worker import run_process

    settings = _settings(cfg)
    syms = tuple(symbols or ()) or settings.exchange(exchange).symbols
    raise typer.Exit(run_process(WorkerSpec(exchange, syms, settings)))


@db_app.command("init")
def db_init(cfg: Path | None = ConfigOpt,
            seed: Path | None = typer.Option(
                None, "--seed", help="TOML catalog to seed (\\[exchanges.X] symbols=\\[...])"),
            notify: bool = typer.Option(
                False, "--notify", help="also install NOTIFY triggers, so changes apply at once rather than at "
                                        "the next poll (`tickerctl db notify off` removes them)")) -> None:
    """Create fullon's catalog tables where missing (existing tables are never altered); seed them.

    One line per action. Exit 3: configuration (or seed file) error; 2: database error."""
    from fullon_ticker_service import catalog

    settings = _settings(cfg)
    try:  # the seed file is read before anything is written
        seeded = catalog.read_seed(seed) if seed is not None else None
    except config.ConfigError as exc:
        typer.echo(f"tickerctl: configuration error: {logs.mask_secrets(str(exc))}", err=True)
        raise typer.Exit(3) from None
    _db_run(settings, lambda conn: catalog.db_init(conn, seeded, settings.database.admin_mail, notify=notify))


class NotifyAction(StrEnum):
    on = "on"
    off = "off"
    status = "status"


@db_app.command("notify")
def db_notify(action: NotifyAction = typer.Argument(..., metavar="on|off|status",
                                                    help="on: install the triggers; off: remove them; "
                                                         "status: show where they are"),
              cfg: Path | None = ConfigOpt) -> None:
    """The optional NOTIFY triggers on fullon's catalog tables (without them the supervisor polls)."""
    from fullon_ticker_service import catalog

    settings = _settings(cfg)
    run = {NotifyAction.on: catalog.notify_on, NotifyAction.off: catalog.notify_off,
           NotifyAction.status: catalog.notify_status}[action]
    _db_run(settings, run)


def _db_run(settings: config.Settings, action: Callable[[Any], Iterable[str]]) -> None:
    """Run a `db` action, echoing its lines as they come; errors are one masked line and an exit
    code (3 configuration, 2 database), never a traceback."""
    from fullon_ticker_service import catalog

    if not settings.database.enabled:
        typer.echo("tickerctl: configuration error: no database configured (set DATABASE_URL or DB_HOST...)",
                   err=True)
        raise typer.Exit(3)
    try:
        with catalog.connect(settings) as conn:
            for line in action(conn):
                typer.echo(line)
    except config.ConfigError as exc:
        typer.echo(f"tickerctl: configuration error: {logs.mask_secrets(str(exc))}", err=True)
        raise typer.Exit(3) from None
    except Exception as exc:
        lines = [line.strip() for line in logs.mask_secrets(str(exc)).splitlines() if line.strip()]
        where = logs.mask_secrets(settings.database.url)
        typer.echo(f"tickerctl: database error ({where}): {lines[0] if lines else type(exc).__name__}", err=True)
        raise typer.Exit(2) from None


@sim_app.callback(invoke_without_command=True)
def sim(ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", help="bind address (loopback)"),
        port: int = typer.Option(8765),
        exchanges: str = typer.Option("", help="comma list (default: every simulated venue)"),
        symbols: int = typer.Option(20, help="symbols per exchange"),
        rate: float = typer.Option(50.0, help="ticks/s per exchange")) -> None:
    """Run the exchange simulator in the foreground."""
    if ctx.invoked_subcommand is not None:
        return
    from fullon_ticker_service.proctitle import set_title
    from fullon_ticker_service.sim.server import VENUES, SimExchange, serve

    set_title(f"simulator :{port}")
    logs.setup("INFO", "trading", component="sim")
    names = [e.strip() for e in exchanges.split(",") if e.strip()] or list(VENUES)
    try:
        specs = [SimExchange(e, symbols, rate) for e in names]
        asyncio.run(serve(specs, host, port))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        typer.echo(f"tickerctl sim: {exc}", err=True)
        raise typer.Exit(3) from None
    except OSError as exc:  # the port is taken, or the address is not ours
        typer.echo(f"tickerctl sim: cannot listen on {host}:{port}: {exc.strerror or exc} "
                   f"(another simulator or demo? use --port)", err=True)
        raise typer.Exit(2) from None


@sim_app.command("fault")
def sim_fault(action: str = typer.Argument(..., help="close|stall|resume|malformed|refuse|rate|skew|mute|nan|negative|"
                                                     "zero|crossed|older"),
              exchange: str = typer.Option(..., "--exchange", "-e"),
              count: int = typer.Option(1), seconds: float | None = typer.Option(
                  None, help="stall/refuse/mute: how long (default until resume); skew: the clock offset (0 restores)"),
              rate: float | None = typer.Option(None),
              symbol: str | None = typer.Option(None, help="mute: which symbol"),
              url: str = typer.Option("http://127.0.0.1:8765")) -> None:
    """Inject a fault into a running simulator."""
    import urllib.request

    body = orjson.dumps({"exchange": exchange, "action": action, "count": count, "seconds": seconds, "rate": rate,
                         "symbol": symbol})
    req = urllib.request.Request(f"{url}/_sim/control", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            typer.echo(r.read().decode())
    except Exception as exc:
        typer.echo(f"tickerctl sim fault: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def demo(port: int = typer.Option(8765, help="the simulator's port; the demo's own Redis listens on the next one"),
         cfg: Path | None = typer.Option(
             None, "--config", "-c", help="catalog (default: config/demo.toml for port 8765, else generated)")) -> None:
    """The simulator, a redis-server of the demo's own and the supervisor (Ctrl-C stops all three).

    The demo never writes into a Redis that may hold real prices: whatever REDIS_* the environment
    or a `.env` says, it starts its own redis-server on 127.0.0.1:PORT+1 and writes only there."""
    from fullon_ticker_service import demo as run

    raise typer.Exit(run.main(port, cfg))


if __name__ == "__main__":
    app()
