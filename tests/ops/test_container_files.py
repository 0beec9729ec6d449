"""Dockerfile, .dockerignore and docker-compose.yml, checked without a container engine.

What is checked: the structure Docker and Compose rely on, that every setting the files pass is
one the service reads and accepts (`config.load`), that every command they run parses in our
CLI, and that the compose `db-init` command really initialises a PostgreSQL catalog. Compose's own
validation of the file is test_compose_config.py. Building the image and running it is
`make container-test` (scripts/container-test), run by hand: docs/deployment.md has its results.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML: a dev dependency of the tests

from fullon_ticker_service import config
from tests.ops.helpers import ROOT

DOCKER_DEFAULT_STOP_TIMEOUT = 10.0  # seconds `docker stop` waits before SIGKILL unless told otherwise
MARGIN = 3.0  # seconds between the supervisor's own SIGKILL deadline and Docker's
IMAGE = "fullon-ticker:local"
PG_ADMIN = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- parsing ---------------------------------------------------------------------------------
def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continuation line"
    return out


def final_stage(ins: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                out[key] = value
    return out


def baked_config(ins: list[tuple[str, str]], path: str) -> str:
    """The TOML text the image's `printf '%s\\n' LINE... > path` writes."""
    run = next(args for w, args in ins if w == "RUN" and f"> {path}" in args)
    words = shlex.split(run)
    start = words.index("printf")
    end = words.index(">", start)
    assert words[start + 1] == "%s\\n" and words[end + 1] == path, words[start:end + 2]
    return "\n".join(words[start + 2:end]) + "\n"


def duration(text: str) -> float:
    """A compose duration: 20s, 1m30s, 500ms."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def interpolate(value: str) -> str:
    """Compose `${VAR:-default}` with nothing set in the environment: the default."""
    assert "$" not in re.sub(r"\$\{[A-Z_]+:-[^}]*\}", "", value), f"unsupported interpolation in {value!r}"
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns we use: the last matching rule wins, a rule
    matching a parent directory matches everything under it, `**/x` matches x at any depth."""
    candidates = [path] + [str(p) for p in Path(path).parents if str(p) != "."]
    result = False
    for rule in rules:
        neg = rule.startswith("!")
        pattern = rule[1:] if neg else rule
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(Path(c).name, pattern[3:]) for c in candidates)
        else:
            hit = any(fnmatch.fnmatchcase(c, pattern) for c in candidates)
        if hit:
            result = not neg
    return result


def tickerctl_help(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`tickerctl ARGS --help`: exits 0 only if the command exists and every option given parses."""
    return subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", *args, "--help"],
                          capture_output=True, text=True, timeout=30)


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(ROOT / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run our image."""
    return {n: s for n, s in compose["services"].items() if s.get("image") == IMAGE}


def effective_argv(service: dict[str, Any], dockerfile: list[tuple[str, str]]) -> list[str]:
    """What the container runs: entrypoint (the service's, else the image's) + command (no CMD in the image)."""
    stage = final_stage(dockerfile)
    assert not [a for w, a in stage if w == "CMD"], "the image has a CMD: update this test"
    entry = service.get("entrypoint") or exec_form(next(a for w, a in stage if w == "ENTRYPOINT"))
    return list(entry) + list(service.get("command") or [])


# --- Dockerfile ------------------------------------------------------------------------------
def test_dockerfile_builds_offline():
    """No `# syntax=` parser directive: with one, BuildKit first fetches that frontend image from a
    registry, and the build fails on any builder without one (offline, air-gapped, a local mirror)."""
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.IGNORECASE | re.MULTILINE), "a `# syntax=` directive"


def test_dockerfile_shape(dockerfile):
    """python:3.11-slim, non-root numeric USER, exec-form `tickerctl up`, SIGTERM, a HEALTHCHECK."""
    froms = [a for w, a in dockerfile if w == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms), froms
    stage = final_stage(dockerfile)
    users = [a for w, a in stage if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and (not gid or int(gid) >= 1000), users
    assert re.search(rf"useradd .*--uid {uid}\b", " ".join(a for w, a in stage if w == "RUN")), "USER not created"
    entry = [a for w, a in stage if w == "ENTRYPOINT"]
    assert len(entry) == 1 and exec_form(entry[0]) == ["tickerctl", "up"]
    assert [a for w, a in stage if w == "STOPSIGNAL"] == ["SIGTERM"]
    checks = [a for w, a in stage if w == "HEALTHCHECK"]
    assert len(checks) == 1 and " CMD " in f" {checks[0]} "
    # Docker reserves exit code 2 of a probe; `tickerctl health` uses 2 for "Redis unreachable"
    assert exec_form(checks[0].split(" CMD ", 1)[1])[-1].endswith("|| exit 1")
    assert "pip install" in " ".join(a for w, a in dockerfile if w == "RUN")


def test_image_settings_are_read_by_the_service(dockerfile, tmp_path):
    """Every ENV the image sets for the service is a known name, and its baked config loads."""
    env = env_of(final_stage(dockerfile))
    service_env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "PIP_"))}
    known = set(config.ENV_KEYS) | config.OTHER_TICKER_ENV | set(config.DB_PARTS)
    assert set(service_env) <= known, set(service_env) - known
    toml = tmp_path / "baked.toml"
    toml.write_text(baked_config(dockerfile, service_env["TICKER_CONFIG"]))
    s = config.load(None, environ={**service_env, "TICKER_CONFIG": str(toml)}, dotenv=None)
    assert s.source == str(toml) and s.service.log_format == "json"
    # the supervisor's SIGKILL deadline falls inside a plain `docker stop` (10 s), with room to exit
    assert s.supervisor.stop_timeout + MARGIN <= DOCKER_DEFAULT_STOP_TIMEOUT, s.supervisor.stop_timeout
    # ... also with a config file of the user's mounted over the image's (no [supervisor] in it)
    mine = tmp_path / "mine.toml"
    mine.write_text('[service]\nnamespace = "mine"\n')
    s = config.load(None, environ={**service_env, "TICKER_CONFIG": str(mine)}, dotenv=None)
    assert s.supervisor.stop_timeout + MARGIN <= DOCKER_DEFAULT_STOP_TIMEOUT, s.supervisor.stop_timeout


def test_image_commands_exist_in_the_cli(dockerfile):
    """The ENTRYPOINT and the HEALTHCHECK's command parse in tickerctl, with their options."""
    stage = final_stage(dockerfile)
    entry = exec_form(next(a for w, a in stage if w == "ENTRYPOINT"))
    probe = exec_form(next(a for w, a in stage if w == "HEALTHCHECK").split(" CMD ", 1)[1])
    assert probe[:2] == ["sh", "-c"]
    health = shlex.split(probe[2].split("||")[0])
    for argv in (entry, health):
        assert argv[0] == "tickerctl", argv
        out = tickerctl_help(argv[1:])
        assert out.returncode == 0, (argv, out.stdout + out.stderr)


def test_dockerignore_sends_what_the_build_copies_and_no_secrets(dockerfile):
    """Every COPY source is in the build context; .env, .venv, .git, tests and caches are not."""
    rules = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    sources = []
    for word, args in dockerfile:
        if word == "COPY" and "--from=" not in args:
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            sources += words[:-1]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not ignored(src, rules), f"COPY {src}: excluded by .dockerignore"
    for path in ("src/fullon_ticker_service/cli.py", "src/fullon_ticker_service/sim/venues/okx.py",
                 "src/fullon_ticker_service/metrics.py"):
        assert not ignored(path, rules), path
    for path in (".env", ".venv/bin/python", ".git/HEAD", "tests/conftest.py", "config/tickerctl.toml",
                 "src/fullon_ticker_service/__pycache__/cli.cpython-311.pyc",
                 "src/fullon_ticker_service.egg-info/PKG-INFO"):
        assert ignored(path, rules), path


# --- docker-compose.yml ----------------------------------------------------------------------
def test_compose_structure(compose, ours):
    """Healthchecked redis/postgres, a one-shot db-init, the ticker after all three, a long enough grace."""
    services = compose["services"]
    assert {"redis", "postgres", "db-init", "ticker"} <= set(services)
    assert {"db-init", "ticker", "metrics"} == set(ours)
    for name in ("redis", "postgres"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert "pgdata" in compose["volumes"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            assert src in compose["volumes"] or (ROOT / src).exists(), (name, vol)
    init = services["db-init"]
    assert init["restart"] == "no" and init["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    ticker = services["ticker"]
    assert ticker["depends_on"] == {"redis": {"condition": "service_healthy"},
                                    "postgres": {"condition": "service_healthy"},
                                    "db-init": {"condition": "service_completed_successfully"}}
    assert ticker.get("stop_signal", "SIGTERM") == "SIGTERM" and "entrypoint" not in ticker
    # enough for the default stop_timeout too (a mounted config without [supervisor] stop_timeout)
    grace = duration(ticker["stop_grace_period"])
    assert grace >= config.SupervisorSettings().stop_timeout + MARGIN * 2, grace
    assert services["metrics"]["profiles"] == ["metrics"]
    assert services["metrics"]["init"] is True and services["ticker"]["init"] is False  # see docs/deployment.md
    for port in services["metrics"]["ports"]:
        assert port.startswith("127.0.0.1:"), port  # no exporter on every interface of the host


def test_compose_environment_is_read_and_accepted_by_the_service(compose, ours, dockerfile, tmp_path):
    """Each variable compose passes is one config.py reads, and together they load: Redis and PostgreSQL wired."""
    known = set(config.ENV_KEYS) | config.OTHER_TICKER_ENV | set(config.DB_PARTS)
    image_env = {k: v for k, v in env_of(final_stage(dockerfile)).items() if not k.startswith(("PYTHON", "PIP_"))}
    baked = tmp_path / "baked.toml"
    baked.write_text(baked_config(dockerfile, image_env["TICKER_CONFIG"]))
    for name, svc in ours.items():
        env = {k: interpolate(str(v)) for k, v in svc["environment"].items()}
        assert set(env) <= known, (name, set(env) - known)
        s = config.load(None, environ={**image_env, **env, "TICKER_CONFIG": str(baked)}, dotenv=None)
        assert (s.redis.host, s.redis.port, s.redis.db) == ("redis", 6379, 0), name
        assert s.database.url == "postgresql://fullon:fullon@postgres:5432/fullon", name
        assert s.database.url.split("@")[0].split(":")[-1] == \
            interpolate(compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])


@pytest.mark.parametrize("service", ["db-init", "ticker", "metrics"])
def test_compose_commands_exist_in_the_cli(service, ours, dockerfile):
    """What each container runs (entrypoint + command) is a tickerctl command whose options parse."""
    argv = effective_argv(ours[service], dockerfile)
    assert argv[0] == "tickerctl", argv
    out = tickerctl_help(argv[1:])
    assert out.returncode == 0, (argv, out.stdout + out.stderr)


def test_compose_db_init_command_initialises_a_real_catalog(ours, dockerfile, tmp_path):
    """db-init's exact command and environment against a fresh PostgreSQL database: twice (idempotent)."""
    import psycopg

    svc = ours["db-init"]
    mounts = {v.split(":")[1]: str((ROOT / v.split(":")[0]).resolve()) for v in svc["volumes"]}
    argv = [mounts.get(a, a) for a in effective_argv(svc, dockerfile)]  # the seed file, from the repository
    image_env = {k: v for k, v in env_of(final_stage(dockerfile)).items() if not k.startswith(("PYTHON", "PIP_"))}
    baked = tmp_path / "baked.toml"
    baked.write_text(baked_config(dockerfile, image_env["TICKER_CONFIG"]))
    name = f"ops_dbinit_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TICKER_", "REDIS_", "DB_", "DATABASE_"))}
    env.update(image_env)
    env.update({k: interpolate(str(v)) for k, v in svc["environment"].items()})
    env.update({"TICKER_CONFIG": str(baked), "DATABASE_URL": url})  # compose's host `postgres` is 127.0.0.1 here
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        outs = [subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", *argv[1:]], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60) for _ in range(2)]
        for out in outs:
            assert out.returncode == 0, out.stdout + out.stderr
        assert "tables present" in outs[0].stdout and "trigger on" in outs[0].stdout, outs[0].stdout
        assert "seeded 2 exchanges, 5 new symbols" in outs[0].stdout, outs[0].stdout
        assert "seeded 2 exchanges, 0 new symbols" in outs[1].stdout, outs[1].stdout
        with psycopg.connect(url) as conn:
            rows = conn.execute("""SELECT c.name, s.symbol FROM symbols s JOIN cat_exchanges c USING (cat_ex_id)""")
            stored = set(rows.fetchall())
        seed = config.load(mounts["/etc/tickerctl/seed.toml"], environ={}, dotenv=None)
        assert stored == {(ex, sym) for ex, es in seed.exchanges.items() for sym in es.symbols}
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
