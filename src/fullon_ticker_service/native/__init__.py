"""Native decoders for the busiest ticker streams: what ccxt stores, value for value, 4-8x cheaper.

What it is
----------
`BinanceDecoder` (binance, binanceus, binanceusdm, binancecoinm: `24hrTicker`, `24hrMiniTicker`,
`bookTicker`), `OkxDecoder` (`tickers`, `bbo-tbt`) and `BybitDecoder` (`tickers.*` snapshot +
delta, `orderbook.1.*`) turn one websocket frame into the list of `(stream, symbol, ticker)` that
ccxt 4.5.90 would store for it: stream "ticker" = what ccxt puts in `exchange.tickers[symbol]`,
"bidask" = `exchange.bidsasks[symbol]`; `ticker` is ccxt's unified ticker dict, value for value
(same symbol resolution from ccxt's `markets_by_id`, same string->number rules, same
`safe_ticker` derivations of change/percentage/average/vwap, same None rules). By design the
tickers carry no `datetime` (pass `datetime=True` to get ccxt's string) and Bybit level-1 bid/ask
tickers carry no `info` (ccxt's is its OrderBook object). Anything a decoder does not recognise,
or where ccxt would do something else (acks, pongs, errors, other channels, unknown or ambiguous
markets, values ccxt would raise on such as "NaN" in a Precise computation, a watch_order_book
sharing the channel) gives None: ccxt must handle that frame. `decode()` never raises.

    decoder = build_decoder(exchange)            # markets loaded or set on the exchange
    ticks = decoder.decode_raw(text, client)     # -> [("ticker", "BTC/USDT", {...}), ...] | None

`lean=True` (what the worker uses): a ticker may carry only `USED_FIELDS`, the fields the fullon
tick is made of, each still exactly ccxt's value; Binance's 24hrTicker and bookTicker, OKX's tickers
(and the bid/ask ccxt takes from them) and Bybit's tickers then skip the rest (a float() per field,
ccxt's Precise average and vwap were most of their cost), taking a frame only where ccxt's Precise
arithmetic could not raise. Bybit's lean tickers keep `info`: it is the merge base of the next delta.
Binance's miniTicker, OKX's bbo-tbt and Bybit's orderbook.1 give full tickers either way.

Where ccxt parses a frame (ccxt 4.5.90, ccxt/async_support/base/ws/client.py)
--------------------------------------------------------------------------------
- `Client.receive_loop` (l.190-226) reads aiohttp messages, drains aiohttp's buffer
  (l.195-200) and calls `self.handle_message(message)` for each (l.200, l.218).
- `Client.handle_message` (l.337-373) handles PING/PONG/CLOSE/ERROR itself (websocket pings are
  answered at l.355-358, pongs stamp `lastPong` at l.359-360) and passes TEXT `message.data` (a
  str) and BINARY data (after gunzip/inflate) to `self.handle_text_or_binary_message(data)`
  (l.342-350).
- `Client.handle_text_or_binary_message` (l.324-335) decodes bytes, parses the text with
  `json_parser.loads` (orjson when importable, l.5-15) when it starts with '{' or '['
  (`is_json_encoded_object`, functions.py l.16-22), and calls
  `self.on_message_callback(self, decoded)` (l.335).
- `on_message_callback` is `exchange.handle_message`, bound when the client is created in
  `Exchange.client(url)` (async_support/base/exchange.py l.432-458, l.437/l.453); the
  exchange's `handle_message` routes to `handle_ticker` & co, which parse and store into
  `exchange.tickers` / `exchange.bidsasks` and resolve the watch futures.

So the raw text is visible before ccxt parses it in exactly one place that every frame goes
through: `handle_text_or_binary_message`. Wrapping `exchange.handle_message` would come after
ccxt's parse (the frame would be parsed twice or our decoder would take ccxt's dict - fine, but
no earlier); wrapping `on_message_callback` is the same point. Wrapping the client's method lets
us parse once and decide.

How `install()` hooks it
------------------------
`install(exchange, decoder, on_tick, shadow_every=0, on_mismatch=None)`:
1. replaces `exchange.client` (an instance attribute over the bound method) by a wrapper that
   hooks every client ccxt creates from then on, and hooks the clients that already exist;
2. hooking a client sets an instance attribute `handle_text_or_binary_message` over the class
   method. For a text frame starting with '{'/'[' it parses once with ccxt's own parser and asks
   the decoder: decoded -> the tickers are stored where ccxt would store them (`store=True`) and
   given to `on_tick(stream, symbol, ticker)`; ccxt never sees the frame. Declined -> the parsed
   frame goes to `client.on_message_callback(client, msg)`, i.e. exactly where ccxt's own method
   would have sent it (no second parse). Everything else - binary frames, non-JSON text such as
   OKX's "pong", verbose clients, a parse error - goes to ccxt's original method untouched.
   Connection, subscriptions, acks, errors, pings/pongs, reconnection: all still ccxt's.
3. `shadow_every=N`: one decoded frame in N is also given to ccxt (freshly parsed) after the
   exchange's ticker caches are rewound to the state before the frame, then ccxt's stored result
   is compared field by field (`compare.diff`); a difference or a ccxt exception calls
   `on_mismatch(Mismatch(stream, symbol, ours, theirs, fields, error, frame))`.
4. `guard=True` (opt-in): an exception ccxt raises on a frame the decoder passed on (e.g. "NaN"
   in a Binance 24hrTicker: `Precise` raises ValueError, which ccxt 4.5.90 lets out of
   `after_interrupt`, client.py l.218, so `receive_loop` is never rescheduled and the socket goes
   silent) is caught and counted instead. Off by default: without it, ccxt behaves as before.
5. `Installation.uninstall()` removes every instance attribute: ccxt is back as it was.

What the decoders mirror (ccxt 4.5.90, line numbers in the installed package)
-----------------------------------------------------------------------------
- base/exchange.py: safe_string l.708, safe_integer l.750, safe_integer_n l.951 (+ its key list
  lookup), omit_zero l.2092, parse_number l.2083 (`number = float`, l.327), set_markets l.4256
  (`markets_by_id` keeps the raw market dicts, spot first), safe_ticker l.4955, safe_market
  l.6141, precision_from_string l.1863; base/precise.py (string_add/sub/mul/div, div truncating
  at 18 decimals).
- pro/binance.py: handle_message l.5297, handle_tickers_and_bids_asks l.2552 (market type from
  the unique market, else `/stream` URL -> spot, else contract; `is_spot_url` l.228),
  parse_ws_ticker l.2339.
- pro/okx.py: handle_message l.2409 (+ handle_error_message l.2365), handle_ticker l.548,
  handle_bid_ask l.633, parse_ws_bid_ask l.686, handle_order_book l.1356 (bbo-tbt: l.1480-1495);
  async_support/okx.py parse_ticker l.2216.
- pro/bybit.py: handle_message l.2402 (+ handle_error_message l.2303), handle_ticker l.469
  (delta merge over `tickers[symbol]['info']`), handle_order_book l.951, parse_ws_bid_ask l.644;
  async_support/bybit.py parse_ticker l.2414. OrderBook.reset / OrderBookSide.storeArray in
  async_support/base/ws/order_book.py, order_book_side.py; Exchange.aggregate l.1305.

Consequences to know:
- Decoded frames resolve no ccxt future: a `watch_tickers()` awaiting data stays pending (until
  the connection fails, when it raises as usual - keep it as the connection sentinel; shadowed
  frames do resolve it). `exchange.tickers`/`bidsasks` stay current (`store=True`).
- `on_tick` runs inside ccxt's receive callback (synchronous): keep it short; its exceptions are
  caught and counted so they cannot stop ccxt's receive loop.
- Bybit deltas merge into the previous ticker's `info`. The decoder keeps that state in
  `exchange.tickers` itself (install sets `decoder.store = exchange`), the dict ccxt merges into,
  so frames left to ccxt and frames decoded here share one state. Bybit level-1 books: Bybit
  sends snapshots only; if a delta ever comes, `decoder.prelude()` first replays the last decoded
  snapshot to ccxt so its order book is right.
- `client.last_message_at` (set in `Client.handle_message` before our hook) still counts every
  frame, so staleness forensics are unaffected.
"""

from __future__ import annotations

from typing import Any

from fullon_ticker_service.native.base import BIDASK, TICKER, Decoder, Tick
from fullon_ticker_service.native.binance import BinanceDecoder
from fullon_ticker_service.native.bybit import BybitDecoder
from fullon_ticker_service.native.compare import USED_FIELDS, diff, same
from fullon_ticker_service.native.hook import Installation, Mismatch, Stats, install
from fullon_ticker_service.native.okx import OkxDecoder

DECODERS: dict[str, type[Decoder]] = {
    i: cls for cls in (BinanceDecoder, OkxDecoder, BybitDecoder) for i in cls.exchange_ids
}


def supported(exchange_id: str) -> bool:
    return exchange_id in DECODERS


def build_decoder(exchange: Any, **kwargs: Any) -> Decoder:
    """The decoder for a ccxt exchange instance (KeyError for an exchange without one)."""
    return DECODERS[exchange.id].from_exchange(exchange, **kwargs)


__all__ = [
    "BIDASK", "DECODERS", "TICKER", "USED_FIELDS", "BinanceDecoder", "BybitDecoder", "Decoder",
    "Installation", "Mismatch", "OkxDecoder", "Stats", "Tick", "build_decoder", "diff", "install",
    "same", "supported",
]
