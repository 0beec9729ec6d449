"""scripts/tickerctl.service: parsed and checked against the service's own settings; `systemd-analyze verify`.

There is no systemd running here (no /run/systemd/system), so the unit is verified offline,
not started: `systemd-analyze verify` checks every directive and that ExecStart is executable.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fullon_ticker_service import config
from tests.ops.helpers import ROOT

UNIT = ROOT / "scripts" / "tickerctl.service"
MARGIN = 5.0  # seconds between the supervisor's SIGKILL deadline and systemd's


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order (a key may repeat: Environment=, SystemCallFilter=)."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
            out.setdefault(section, [])
            continue
        key, sep, value = s.partition("=")
        assert sep and section, f"line {n}: {line!r}"
        out[section].append((key.strip(), value.strip()))
    return out


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = [v for k, v in unit[section] if k == key]
    assert len(values) == 1, f"{section}.{key}: {values}"
    return values[0]


def seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0}
    for suffix, factor in units.items():
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def test_unit_stops_like_the_supervisor_expects(unit):
    """simple, SIGTERM to the supervisor only (mixed), stop deadline above stop_timeout, restart on failure."""
    assert one(unit, "Service", "Type") == "simple"
    assert one(unit, "Service", "KillMode") == "mixed"
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    stop = seconds(one(unit, "Service", "TimeoutStopSec"))
    assert stop >= config.SupervisorSettings().stop_timeout + MARGIN, stop
    assert one(unit, "Service", "Restart") == "on-failure"
    # tickerctl up: 2 = another supervisor holds the lock, 3 = configuration error: not worth restarting
    assert set(one(unit, "Service", "RestartPreventExitStatus").split()) == {"2", "3"}
    assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_unit_environment_and_runtime_directory(unit):
    """Config via TICKER_CONFIG and an optional EnvironmentFile; the lock file in the unit's RuntimeDirectory."""
    env = dict(v.split("=", 1) for k, v in unit["Service"] if k == "Environment")
    known = set(config.ENV_KEYS) | config.OTHER_TICKER_ENV | set(config.DB_PARTS)
    assert {k for k in env if k.startswith(("TICKER_", "REDIS_", "DB_", "LOG_"))} <= known
    assert env["TICKER_CONFIG"].startswith("/etc/")
    assert one(unit, "Service", "EnvironmentFile").startswith("-/etc/")
    assert env["XDG_RUNTIME_DIR"] == "/run/" + one(unit, "Service", "RuntimeDirectory")
    assert one(unit, "Service", "ProtectSystem") == "strict"  # hence the runtime directory: the only writable path
    assert one(unit, "Service", "User") not in ("root", "0")


def test_unit_runs_an_existing_command(unit):
    """ExecStart is `<venv>/bin/tickerctl up`, and that command parses in our CLI."""
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "tickerctl" and argv[1:] == ["up"]
    out = subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", *argv[1:], "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_and_exposure(tmp_path):
    """`systemd-analyze verify` accepts every line (no warning at all), with ExecStart pointed at this venv."""
    tickerctl = Path(sys.executable).parent / "tickerctl"
    assert tickerctl.is_file(), tickerctl
    text = UNIT.read_text()
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    local = tmp_path / "fullon-ticker.service"
    local.write_text(text.replace(exec_start, f"ExecStart={tickerctl} up"))
    out = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ours = [ln for ln in (out.stdout + out.stderr).splitlines() if local.name in ln]
    assert ours == [], ours  # unknown keys and unparsable values are only warnings: fail on any
    sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(local)],
                         capture_output=True, text=True, timeout=60)
    if sec.returncode == 0 and "Overall exposure level" in sec.stdout:
        level = float(sec.stdout.split("Overall exposure level for", 1)[1].split(":")[1].split()[0])
        assert level <= 2.0, sec.stdout[-500:]
