"""What every native decoder shares: the market tables built from ccxt's `markets_by_id`, the
"never raise" contract, and the frame-in / ticks-out interface."""

from __future__ import annotations

from typing import Any

import orjson

from fullon_ticker_service.native._compat import average_precision

# One decoded ticker: ("ticker" | "bidask", the key ccxt stores it under, the ccxt ticker dict).
# "ticker" is what ccxt keeps in `exchange.tickers`, "bidask" what it keeps in `exchange.bidsasks`.
Tick = tuple[str, str, dict[str, Any]]

TICKER = "ticker"
BIDASK = "bidask"


class MarketInfo:
    """What a decoder needs of one ccxt market, computed once."""

    __slots__ = ("contract_size", "inverse", "market", "precision", "spot", "symbol", "type")

    def __init__(self, market: dict[str, Any], tick_precision: bool) -> None:
        self.market = market
        self.symbol: str = market["symbol"]
        if not isinstance(self.symbol, str):
            raise TypeError("market symbol must be a string")
        self.type = market.get("type")
        self.spot = market.get("spot") is True
        self.inverse = market.get("inverse")
        self.contract_size = market.get("contractSize")
        self.precision = average_precision(market, tick_precision)


class Decoder:
    """Base class. A decoder maps one websocket frame, exactly as ccxt's client receives it, to the
    tickers ccxt would store for it, or None when the frame is not one it decodes (then ccxt must
    handle it: acks, pongs, errors, other channels, unknown markets, anything unexpected).

    `decode()` never raises. Markets come from ccxt's own `markets_by_id` (id -> list of market
    dicts, spot first), so symbol resolution follows ccxt's, including ids shared by several
    market types.
    """

    exchange_ids: tuple[str, ...] = ()

    def __init__(self, markets_by_id: dict[str, list[dict[str, Any]]] | None, *,
                 tick_precision: bool = True, datetime: bool = False, lean: bool = False) -> None:
        self.tick_precision = tick_precision
        self.datetime = datetime  # also compute ccxt's `datetime` string (costs ~1 µs a ticker)
        # lean: a ticker may carry only `compare.USED_FIELDS` (what the fullon tick is made of),
        # each exactly ccxt's value; what only ccxt's other fields need (average, vwap, sizes,
        # high/low...) is not computed. Binance's 24hrTicker and bookTicker, OKX's and Bybit's
        # tickers do so; the other channels give full tickers either way.
        self.lean = lean
        self.source: Any = None
        self.set_markets(markets_by_id)

    @classmethod
    def from_exchange(cls, exchange: Any, **kwargs: Any) -> Decoder:
        """A decoder for a ccxt exchange with markets loaded (`load_markets()` or `set_markets()`)."""
        kwargs.setdefault("tick_precision", bool(exchange.is_tick_precision()))
        return cls(exchange.markets_by_id, **kwargs)

    def set_markets(self, markets_by_id: dict[str, list[dict[str, Any]]] | None) -> None:
        self.source = markets_by_id
        self._by_id: dict[str, list[dict[str, Any]]] = dict(markets_by_id or {})
        self._resolved: dict[tuple[str, str | None], MarketInfo | None] = {}

    def resolve(self, market_id: str | None, market_type: str | None) -> MarketInfo | None:
        """ccxt's `safe_market(market_id, None, None, market_type)` for a known id; None where ccxt
        would return a placeholder market (unknown id, no type match) or raise (ambiguous id without
        a type, market missing the type key) - the decoder then leaves the frame to ccxt."""
        key = (market_id, market_type)  # type: ignore[assignment]
        try:
            return self._resolved[key]  # type: ignore[index]
        except KeyError:
            pass
        info: MarketInfo | None = None
        markets = self._by_id.get(market_id) if market_id is not None else None
        if not markets:
            return None  # unknown ids are not cached: a stream of odd ids must not grow memory
        try:
            if len(markets) == 1:
                info = MarketInfo(markets[0], self.tick_precision)
            elif market_type is not None:
                for m in markets:
                    if m[market_type] is True:
                        info = MarketInfo(m, self.tick_precision)
                        break
        except Exception:
            info = None
        self._resolved[key] = info  # type: ignore[index]
        return info

    # the interface ------------------------------------------------------------------------------
    def decode(self, msg: Any, client: Any = None) -> list[Tick] | None:
        """Tickers for one parsed frame (what ccxt's client hands `handle_message`), or None.

        `client` is ccxt's ws Client (or any object with `url` and `subscriptions`): some of ccxt's
        choices depend on the connection (Binance spot vs futures URL, Bybit spot URL, whether a
        watch_order_book shares the channel)."""
        try:
            return self._decode(msg, client)
        except Exception:
            return None

    def decode_raw(self, raw: str | bytes, client: Any = None) -> list[Tick] | None:
        """Tickers for one frame as received (text or bytes), or None (not JSON, not decodable)."""
        try:
            msg = orjson.loads(raw)
        except Exception:
            return None
        return self.decode(msg, client)

    def prelude(self, msg: Any, client: Any = None) -> list[Any]:
        """Frames to hand ccxt *before* a frame this decoder declined, so that ccxt's per-symbol
        state (which missed every frame the decoder consumed) is what it would have been. Only
        stateful channels need it (Bybit order books); the default is none."""
        return []

    def _decode(self, msg: Any, client: Any) -> list[Tick] | None:
        raise NotImplementedError


def client_url(client: Any) -> str:
    url = getattr(client, "url", None)
    return url if isinstance(url, str) else ""


def client_subscriptions(client: Any) -> Any:
    subs = getattr(client, "subscriptions", None)
    return subs if subs is not None else {}
