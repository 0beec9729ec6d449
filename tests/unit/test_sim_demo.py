"""sim/demo.py: the committed demo config is exactly what the simulator generates, and it loads."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fullon_ticker_service import config
from fullon_ticker_service.sim.demo import demo_toml
from fullon_ticker_service.sim.server import VENUES

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.toml"
VENUE_IDS = {"binance", "okx", "bybit", "kraken", "hyperliquid", "coinbase",
             "binanceusdm", "binancecoinm", "gate", "krakenfutures", "kucoin"}


def test_committed_demo_toml_matches_generator() -> None:
    """config/demo.toml equals demo_toml() byte for byte (regenerate with `python -m ...sim.demo`)."""
    assert DEMO.read_text() == demo_toml()


def test_demo_config_loads_with_every_simulated_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    """config.load accepts config/demo.toml and it catalogs every simulated exchange."""
    monkeypatch.chdir(ROOT)
    s = config.load("config/demo.toml", environ={}, dotenv=None)
    assert set(s.exchanges) == VENUE_IDS == set(VENUES)
    assert s.service.namespace == "ticker_demo" and s.service.health_interval == 2.0
    for name, ex in s.exchanges.items():
        assert len(ex.symbols) == 20 and all(config.valid_symbol(sym) for sym in ex.symbols), name
        assert ex.markets == f"http://127.0.0.1:8765/{name}/markets"
        assert ex.ccxt["urls"], name
        assert (ex.stale_after, ex.reconnect_delay) == (10.0, 1.0), name  # from [defaults]


def test_demo_ccxt_urls_point_at_the_simulator() -> None:
    """Every URL in the demo's ccxt overrides is on the simulator's loopback host and port."""
    doc = tomllib.loads(DEMO.read_text())

    def urls(node: object) -> list[str]:
        if isinstance(node, dict):
            return [u for v in node.values() for u in urls(v)]
        return [node] if isinstance(node, str) and "://" in node else []

    found = urls({name: ex["ccxt"] for name, ex in doc["exchanges"].items()})
    assert len(found) >= len(VENUE_IDS)
    assert all(u.split("://", 1)[1].startswith("127.0.0.1:8765/") for u in found), found


def test_demo_toml_other_host_port_round_trips(tmp_path: Path) -> None:
    """demo_toml for another host/port and symbol count is valid config pointing there."""
    path = tmp_path / "demo.toml"
    path.write_text(demo_toml(host="10.1.2.3", port=9000, symbols=3))
    s = config.load(path, environ={}, dotenv=None)
    assert set(s.exchanges) == VENUE_IDS
    assert s.exchanges["kraken"].markets == "http://10.1.2.3:9000/kraken/markets"
    assert all(len(ex.symbols) == 3 for ex in s.exchanges.values())
    assert "127.0.0.1" not in path.read_text()


def test_mixed_venues_hold_several_market_types() -> None:
    """bybit (spot/linear/inverse), gate (spot/USDT/BTC-settled) and krakenfutures (perpetuals and
    futures, linear and inverse) list symbols of several kinds in the demo."""
    doc = tomllib.loads(DEMO.read_text())
    kinds = {name: {("spot" if ":" not in s else "future" if "-" in s.split(":")[1] else "swap",
                     s.split(":")[1].split("-")[0] if ":" in s else None)
                    for s in ex["symbols"]} for name, ex in doc["exchanges"].items()}
    assert kinds["bybit"] == {("spot", None), ("swap", "USDT"), ("swap", "BTC"), ("swap", "ETH"), ("swap", "SOL"),
                              ("swap", "XRP")}
    assert {k for k, _ in kinds["gate"]} == {"spot", "swap"} and ("swap", "BTC") in kinds["gate"]
    assert {k for k, _ in kinds["krakenfutures"]} == {"swap", "future"}
    assert {("swap", "USD"), ("swap", "BTC"), ("future", "BTC"), ("future", "USD")} <= kinds["krakenfutures"]
