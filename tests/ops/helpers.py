"""Helpers of the ops tests: run scripts/check_health, parse the Prometheus text format, PID namespaces."""

from __future__ import annotations

import asyncio
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

from fullon_ticker_service import config
from tests.supervisor.helpers import env
from tests.supervisor.helpers import running as running  # the shared helper, re-exported for tests/ops

ROOT = Path(__file__).resolve().parents[2]
CHECK_HEALTH = ROOT / "scripts" / "check_health"


def check_health(cfg: Path, *args: str) -> tuple[int, str]:
    """Run scripts/check_health with this interpreter (the one the package is installed in)."""
    out = subprocess.run([sys.executable, str(CHECK_HEALTH), "-c", str(cfg), *args], env=env(),
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout + out.stderr


def settings(cfg: Path) -> config.Settings:
    """The settings a process started with `-c cfg` and the test environment sees."""
    return config.load(cfg, environ=env(), dotenv=None)


async def acheck_health(cfg: Path, *args: str) -> tuple[int, str]:
    """check_health in a thread: the simulator shares the test's event loop and must keep serving."""
    return await asyncio.to_thread(check_health, cfg, *args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Prometheus text exposition format (version 0.0.4), parsed strictly ----------------------
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def _value(text: str) -> float:
    if text in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[text]
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise AssertionError(f"bad sample value {text!r}")
    return float(text)


def parse_exposition(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """(type per family, value per (name, labels)); AssertionError on anything malformed.

    Checks: every family has one HELP and one TYPE before its samples; samples of a counter or
    gauge carry the family's name; counters end in `_total` and are >= 0; no series twice.
    """
    assert text.endswith("\n"), "the exposition must end with a newline"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in helps, f"line {n}: {line!r}"
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helps and name not in types, f"line {n}: TYPE without HELP or twice: {line!r}"
            assert kind in ("counter", "gauge", "untyped", "summary", "histogram"), line
            types[name] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"line {n}: not a sample: {line!r}"
            name, _, body, value = m.groups()
            assert name in types, f"line {n}: sample before its TYPE: {line!r}"
            labels: list[tuple[str, str]] = []
            pos = 0
            while body and pos < len(body):
                lm = _LABEL.match(body, pos)
                assert lm, f"line {n}: bad labels {body!r}"
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
            key = (name, frozenset(labels))
            assert key not in samples, f"line {n}: duplicate series {line!r}"
            samples[key] = _value(value)
            if types[name] == "counter":
                assert name.endswith("_total") and samples[key] >= 0, line
    return types, samples


def series(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# --- processes and PID namespaces -------------------------------------------------------------
def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None when it is gone."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return rest[0], int(rest[1])


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := proc_stat(int(d.name))) and st[1] == pid:
            out.append(int(d.name))
    return out


def pid_ns(pid: int) -> str | None:
    try:
        return str(Path(f"/proc/{pid}/ns/pid").readlink())
    except OSError:
        return None


def ns_members(ns: str) -> dict[int, int]:
    """Every process in PID namespace `ns`: host pid -> pid inside the namespace."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or pid_ns(int(d.name)) != ns:
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                out[int(d.name)] = int(line.split()[-1])
    return out
