"""scripts/container-test and scripts/fresh-test without running a container (that is `make container-test`
and `make fresh-test`, by hand): they parse, and where no engine can run they say so in one line and exit 0."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.ops.helpers import ROOT

SCRIPTS = ["container-test", "fresh-test"]


@pytest.mark.parametrize("name", [*SCRIPTS, "container-lib.sh"])
def test_script_parses(name):
    out = subprocess.run(["bash", "-n", str(ROOT / "scripts" / name)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_engine_is_one_line_and_a_skip(name, tmp_path: Path):
    """docker without a daemon and a podman that cannot run, no engine-setup beside the repository: SKIP, exit 0."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("docker", "podman"):
        (fake / tool).write_text("#!/bin/sh\necho \"$0: cannot connect\" >&2\nexit 1\n")
        (fake / tool).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CONTAINERS_CONF", "DOCKER_HOST")}
    env.update(PATH=f"{fake}:{os.environ['PATH']}", SHARED_CONTAINER=str(tmp_path / "no-shared"),
               FRESH_TEST_LOGDIR=str(tmp_path / "logs"))
    out = subprocess.run([str(ROOT / "scripts" / name)], capture_output=True, text=True, timeout=60, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: SKIP: no container engine can run here: "), out.stdout
    assert "docker: no daemon answers" in lines[0] and "podman: 'podman info' failed" in lines[0], lines[0]
    assert not (tmp_path / "logs").exists()  # nothing started, nothing written
