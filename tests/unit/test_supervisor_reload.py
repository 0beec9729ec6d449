"""SIGHUP's configuration reload: a host's capacity applies live; host id and TTLs need a restart."""

from __future__ import annotations

from pathlib import Path

from fullon_ticker_service import config
from fullon_ticker_service.supervisor import Supervisor


def _write(path: Path, cluster: str) -> Path:
    path.write_text(f'[service]\nnamespace = "reload"\n[cluster]\n{cluster}\n')
    return path


def test_capacity_applies_live_the_rest_of_cluster_does_not(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "c.toml", 'host_id = "a"\ncapacity = 2\nlease_ttl = 5.0')
    sup = Supervisor(config.load(cfg, environ={}, dotenv=None))
    try:
        _write(cfg, 'host_id = "b"\ncapacity = 7\nlease_ttl = 9.0')
        sup._reload_config()
        assert sup.settings.cluster.capacity == 7  # in the next heartbeat's host record
        assert sup.cluster._record()["capacity"] == 7
        assert (sup.settings.cluster.host_id, sup.settings.cluster.lease_ttl) == ("a", 5.0)  # needs a restart
    finally:
        sup.cluster.close()
