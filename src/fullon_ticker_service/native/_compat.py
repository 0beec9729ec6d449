"""ccxt-equivalent value handling (pure): what ccxt 4.5.90's helpers return for the same input.

Written from the behaviour of ccxt's `Exchange.safe_string` / `safe_integer*` / `omit_zero` /
`parse_number` / `safe_ticker` and `Precise` (ccxt/base/exchange.py, ccxt/base/precise.py), so
that a ticker computed here equals, field for field, the one ccxt stores. Where ccxt raises
(e.g. `Precise("NaN")` -> ValueError), these raise too: the decoders catch it and hand the frame
to ccxt, which then behaves exactly as without the decoder.

Numbers that ccxt derives with `Precise` (change, percentage, average, vwap, inverse volumes) are
kept here as exact `(integer, decimals)` pairs, value = integer * 10**-decimals, and turned into
a float only at the end. ccxt turns `str(Precise)` into a float with `float()`, which is the
correctly rounded value of that exact decimal; `int / int` in CPython is correctly rounded too,
so both give the same float.
"""

from __future__ import annotations

from typing import Any

# A ticker value on its way to `safe_ticker`: a raw string from the frame (already through
# safe_string: non-empty), an exact decimal pair computed like Precise, or None.
Val = str | tuple[int, int] | None

_POW10 = [10**i for i in range(64)]


def _p10(n: int) -> int:
    return _POW10[n] if n < 64 else 10**n


# --- dict access (Exchange.safe_string & co) ---------------------------------------------------

def ss(d: Any, k: Any) -> str | None:
    """safe_string: non-empty str as is, int/float (exact types, not bool) as str(), else None."""
    try:
        v = d[k]
    except Exception:
        return None
    t = type(v)
    if t is str:
        return v if v != "" else None
    if t is float or t is int:
        return str(v)
    return None


def ss2(d: Any, k1: Any, k2: Any) -> str | None:
    v = ss(d, k1)
    return v if v is not None else ss(d, k2)


def si(d: Any, k: Any) -> int | None:
    """safe_integer: int(float(value)); any error -> None."""
    try:
        return int(float(d[k]))
    except Exception:
        return None


def si2(d: Any, k1: Any, k2: Any) -> int | None:
    try:
        return int(float(d[k1]))
    except Exception:
        try:
            return int(float(d[k2]))
        except Exception:
            return None


def sin(d: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """safe_integer_n: the first value that is not None/'' decides; only ValueError/TypeError are
    caught (an OverflowError, e.g. "inf", propagates as it does in ccxt)."""
    for k in keys:
        v = d.get(k)
        if v is not None and v != "":
            try:
                return int(float(v))
            except (ValueError, TypeError):
                return None
    return None


def sf(d: Any, k: Any) -> float | None:
    """safe_float."""
    try:
        return float(d[k])
    except Exception:
        return None


# --- Precise-equivalent exact decimals -----------------------------------------------------------

def dec(v: str | tuple[int, int]) -> tuple[int, int]:
    """The exact value of a number string, parsed as Precise parses it (raises where it raises)."""
    if type(v) is tuple:
        return v  # type: ignore[return-value]
    s: str = v  # type: ignore[assignment]
    mod = 0
    if "e" in s or "E" in s:
        s, m = s.lower().split("e")
        mod = int(m)
    i = s.find(".")
    if i > -1:
        return int(s.replace(".", "")), len(s) - i - 1 - mod
    return int(s), -mod


def add(a: Val, b: Val) -> tuple[int, int] | None:
    if a is None or b is None:
        return None
    ai, ad = dec(a)
    bi, bd = dec(b)
    if ad == bd:
        return ai + bi, ad
    if ad > bd:
        return ai + bi * _p10(ad - bd), ad
    return ai * _p10(bd - ad) + bi, bd


def sub(a: Val, b: Val) -> tuple[int, int] | None:
    if a is None or b is None:
        return None
    ai, ad = dec(a)
    bi, bd = dec(b)
    if ad == bd:
        return ai - bi, ad
    if ad > bd:
        return ai - bi * _p10(ad - bd), ad
    return ai * _p10(bd - ad) - bi, bd


def mul(a: Val, b: Val) -> tuple[int, int] | None:
    if a is None or b is None:
        return None
    ai, ad = dec(a)
    bi, bd = dec(b)
    return ai * bi, ad + bd


def div(a: Val, b: Val, precision: int = 18) -> tuple[int, int] | None:
    """Precise.string_div: truncated toward zero at `precision` decimals; None for a zero divisor
    (checked before the dividend is parsed, as ccxt does)."""
    if a is None or b is None:
        return None
    bi, bd = dec(b)
    if bi == 0:
        return None
    ai, ad = dec(a)
    distance = precision - ad + bd
    if distance == 0:
        num = ai
    elif distance < 0:
        num = ai // _p10(-distance)
    else:
        num = ai * _p10(distance)
    q, r = divmod(num, bi)
    if q < 0 and r:
        q += 1
    return q, precision


def dec_str(t: tuple[int, int]) -> str:
    """Precise.__str__ of an exact pair (used only where float division would overflow)."""
    i, d = t
    digits = str(i)
    if digits == "0":
        return "0"
    stripped = digits.rstrip("0")
    d -= len(digits) - len(stripped)
    digits = stripped
    sign = ""
    if digits[0] == "-":
        sign, digits = "-", digits[1:]
    if d <= 0:
        return sign + digits + "0" * (-d)
    n = len(digits)
    if n > d:
        return sign + digits[: n - d] + "." + digits[n - d:]
    return sign + "0." + "0" * (d - n) + digits


def to_float(t: tuple[int, int]) -> float:
    i, d = t
    try:
        if d <= 0:
            return float(i * _p10(-d))
        return i / _p10(d)
    except OverflowError:
        return float(dec_str(t))


# --- omit_zero / parse_number ------------------------------------------------------------------

def oz(v: Val) -> Val:
    """omit_zero: None for None, '' and numeric zero; a non-numeric string is kept as is."""
    if v is None:
        return None
    if type(v) is tuple:
        return None if v[0] == 0 else v  # type: ignore[index]
    if v == "":
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except Exception:
        return v
    return None if f == 0 else v


def pn(v: Val) -> float | None:
    """parse_number with ccxt's default `number = float`: None on anything float() refuses."""
    if v is None:
        return None
    if type(v) is tuple:
        return to_float(v)  # type: ignore[arg-type]
    try:
        return float(v)  # type: ignore[arg-type]
    except Exception:
        return None


def pnz(v: str | None) -> float | None:
    """parse_number(omit_zero(v)) for a raw string (or None) - the common bid/ask/high/low case."""
    if v is None:
        return None
    try:
        f = float(v)
    except Exception:
        return None  # omit_zero keeps it, parse_number then refuses it
    return None if f == 0 else f


def pstr(v: str | None) -> float | None:
    """safe_number on a value that is already a safe_string result."""
    if v is None:
        return None
    try:
        return float(v)
    except Exception:
        return None


def precision_from_string(s: str) -> int:
    """Exchange.precision_from_string."""
    if "e" in s or "E" in s:
        idx = s.find("e")
        if idx == -1:
            idx = s.find("E")
        return -int(s[idx + 1:])
    dot = s.find(".")
    if dot == -1:
        return 0
    return len(s[dot + 1:].rstrip("0"))


def average_precision(market: Any, tick_precision: bool) -> int:
    """The `precision` safe_ticker uses for `average` with this market (18 unless TICK_SIZE mode
    and the market has a price precision)."""
    if not tick_precision:
        return 18
    mp = market.get("precision") if isinstance(market, dict) else None
    if not isinstance(mp, dict):
        return 18
    p = ss(mp, "price")
    return 18 if p is None else precision_from_string(p)


# --- safe_ticker -------------------------------------------------------------------------------

def safe_ticker(out: dict[str, Any], high: Val, low: Val, bid: Val, bid_vol: Val, ask: Val,
                ask_vol: Val, vwap: Val, open_: Val, close: Val, prev_close: Val, change: Val,
                percentage: Val, average: Val, base_vol: Val, quote_vol: Val, mark: Val,
                index: Val, precision: int) -> dict[str, Any]:
    """Exchange.safe_ticker for a ticker whose string fields are given (each already a safe_string
    result, or an exact pair computed by the caller). Adds the 18 numeric keys to `out`, which
    holds symbol/timestamp/(datetime)/info, and returns it."""
    o = oz(open_)
    c = oz(close)
    ch = change
    p = oz(percentage)
    a = oz(average)
    if vwap is None:
        vwap = div(oz(quote_vol), base_vol)
    if ch is not None:
        if c is None and a is not None:
            c = add(a, div(ch, "2"))
        if o is None and c is not None:
            o = sub(c, ch)
    elif p is not None:
        if c is None and a is not None:
            open_add_close = mul(a, "2")
            denominator = add("2", div(p, "100"))
            calc_open = o if o is not None else div(open_add_close, denominator)
            c = mul(calc_open, add("1", div(p, "100")))
        if o is None and c is not None:
            o = div(c, add("1", div(p, "100")))
    if ch is None:
        if c is not None and o is not None:
            ch = sub(c, o)
        elif c is not None and p is not None:
            ch = mul(div(p, "100"), div(c, "100"))
        elif o is not None and p is not None:
            ch = mul(o, div(p, "100"))
    if o is not None:
        if p is None and ch is not None:
            p = mul(div(ch, o), "100")
        if c is None and ch is not None:
            c = add(o, ch)
        if c is None and a is not None:
            c = sub(mul(a, "2"), o)
        if a is None and c is not None:
            a = div(add(o, c), "2", precision)
    close_parsed = pn(oz(c))
    out["bid"] = pn(oz(bid))
    out["bidVolume"] = pn(bid_vol)
    out["ask"] = pn(oz(ask))
    out["askVolume"] = pn(ask_vol)
    out["high"] = pn(oz(high))
    out["low"] = pn(oz(low))
    out["open"] = pn(oz(o))
    out["close"] = close_parsed
    out["last"] = close_parsed
    out["change"] = pn(ch)
    out["percentage"] = pn(p)
    out["average"] = pn(a)
    out["vwap"] = pn(vwap)
    out["baseVolume"] = pn(base_vol)
    out["quoteVolume"] = pn(quote_vol)
    out["previousClose"] = pn(prev_close)
    out["indexPrice"] = pn(index)
    out["markPrice"] = pn(mark)
    return out


def quote_only_ticker(out: dict[str, Any], bid: str | None, bid_vol: str | None, ask: str | None,
                      ask_vol: str | None) -> dict[str, Any]:
    """safe_ticker when only bid/ask and their sizes are known (every derivation is None)."""
    out["bid"] = pnz(bid)
    out["bidVolume"] = pstr(bid_vol)
    out["ask"] = pnz(ask)
    out["askVolume"] = pstr(ask_vol)
    for k in ("high", "low", "open", "close", "last", "change", "percentage", "average", "vwap",
              "baseVolume", "quoteVolume", "previousClose", "indexPrice", "markPrice"):
        out[k] = None
    return out


# --- fast-path conversions ------------------------------------------------------------------------
# Fast paths handle the usual frame (every value a non-empty numeric string) and must give exactly
# what the generic path gives; anything else raises and the caller takes the generic path.

def f_(v: Any) -> float | None:
    """safe_number of an optional field whose value must be a str (or absent)."""
    if v is None:
        return None
    if type(v) is not str:
        raise TypeError("not a string")
    return float(v)  # '' and non-numbers raise


def fz(v: Any) -> float | None:
    """parse_number(omit_zero(v)) of an optional str field."""
    if v is None:
        return None
    if type(v) is not str:
        raise TypeError("not a string")
    f = float(v)
    return None if f == 0 else f


ONE_HUNDRED = (100, 0)
TWO = (2, 0)


def _plain(s: str) -> tuple[int, int]:
    """dec() of a plain decimal string (no exponent), without the exponent checks."""
    i = s.find(".")
    if i > -1:
        return int(s.replace(".", "")), len(s) - i - 1
    return int(s), 0


def mid_average(o: str, c: str, precision: int) -> float:
    """pn(Precise.string_div(string_add(o, c), '2', precision)) for two numeric strings."""
    if "e" in o or "E" in o or "e" in c or "E" in c:
        return to_float(div(add(o, c), TWO, precision))  # type: ignore[arg-type]
    oi, od = _plain(o)
    ci, cd = _plain(c)
    if od == cd:
        s, d = oi + ci, od
    elif od > cd:
        s, d = oi + ci * _p10(od - cd), od
    else:
        s, d = oi * _p10(cd - od) + ci, cd
    if precision > d and d >= 0:
        # exact: s * 10**(precision - d) is even, so the truncated quotient is s / (2 * 10**d)
        try:
            return s / (2 * _p10(d))
        except OverflowError:
            pass
    return to_float(div((s, d), TWO, precision))  # type: ignore[arg-type]


def vwap_of(quote_vol: Any, base_vol: Any) -> float | None:
    """pn(Precise.string_div(omit_zero(quote_vol), base_vol)) for str-or-None volumes."""
    if quote_vol is None or base_vol is None:
        return None
    if type(quote_vol) is not str or type(base_vol) is not str:
        raise TypeError("not a string")
    if float(quote_vol) == 0:
        return None
    q = div(quote_vol, base_vol)
    return None if q is None else to_float(q)


def derive_from_open(close: str, open_: str, precision: int) -> tuple[float, float | None, float]:
    """safe_ticker's change, percentage and average when only close and open (both non-zero
    numeric strings) are known: change = close - open, percentage = change / open * 100 (the
    division truncated at 18 decimals), average = (open + close) / 2 (at `precision`)."""
    if "e" in close or "E" in close or "e" in open_ or "E" in open_:
        return _derive_generic(close, open_, precision)
    ci, cd = _plain(close)
    oi, od = _plain(open_)
    if cd == od:
        d = cd
    elif cd > od:
        d = cd
        oi_at = oi * _p10(cd - od)
        return _derive_aligned(ci, oi_at, oi, od, d, close, open_, precision)
    else:
        d = od
        ci = ci * _p10(od - cd)
    return _derive_aligned(ci, oi, oi, od, d, close, open_, precision)


def _derive_aligned(c: int, o_at: int, oi: int, od: int, d: int, close: str, open_: str,
                    precision: int) -> tuple[float, float | None, float]:
    """c, o_at: close and open at d decimals; oi/od: open as parsed."""
    if d > 18 or oi == 0:
        return _derive_generic(close, open_, precision)
    ch = c - o_at
    try:
        change = ch / _p10(d)
        q, r = divmod(ch * _p10(18 - d + od), oi)
        if q < 0 and r:
            q += 1
        pct = q / _p10(16)  # (q, 18) * 100
        s = c + o_at
        average = s / (2 * _p10(d)) if precision > d else to_float(div((s, d), TWO, precision))  # type: ignore[arg-type]
    except OverflowError:
        return _derive_generic(close, open_, precision)
    return change, pct, average


def _derive_generic(close: str, open_: str, precision: int) -> tuple[float, float | None, float]:
    ch = sub(close, open_)
    pct = mul(div(ch, open_), ONE_HUNDRED)
    return to_float(ch), (None if pct is None else to_float(pct)), to_float(div(add(open_, close), TWO, precision))  # type: ignore[arg-type]


def vwap_fast(quote_vol: Any, base_vol: Any) -> float | None:
    """vwap_of() for plain decimal strings, with fewer steps."""
    if quote_vol is None or base_vol is None:
        return None
    if type(quote_vol) is not str or type(base_vol) is not str:
        raise TypeError("not a string")
    if "e" in quote_vol or "E" in quote_vol or "e" in base_vol or "E" in base_vol:
        return vwap_of(quote_vol, base_vol)
    if float(quote_vol) == 0:
        return None
    bi, bd = _plain(base_vol)
    if bi == 0:
        return None
    qi, qd = _plain(quote_vol)
    distance = 18 - qd + bd
    num = qi * _p10(distance) if distance >= 0 else qi // _p10(-distance)
    q, r = divmod(num, bi)
    if q < 0 and r:
        q += 1
    try:
        return q / _p10(18)
    except OverflowError:
        return to_float((q, 18))
