"""Dhan option chains and expiry lists, as ``algocli.options`` models.

* Chain: ``POST /v2/optionchain`` ``{"UnderlyingScrip": 13, "UnderlyingSeg": "IDX_I",
  "Expiry": "YYYY-MM-DD"}`` → ``{"data": {"last_price", "oc": {"<strike, 6 decimals>":
  {"ce": {...}, "pe": {...}}}}, "status"}`` (https://dhanhq.co/docs/v2/option-chain/).
* Expiries: ``POST /v2/optionchain/expirylist`` → ``{"data": ["YYYY-MM-DD", ...]}``.
* Limit: "one unique request every 3 seconds" per user; both routes draw from one
  ``RateLimiter`` of one call per ``CHAIN_SPACING`` seconds per client id, shared by the
  whole process (the expiry list counts too, as third-party clients found).

Traps: ``oc`` is an object keyed by strike strings in no promised order (sorted here);
``implied_volatility`` is in percent (some clients multiply it by 100 again); a leg may be
missing or ``{}``. The official SDK wraps the answer once more (``{"status", "remarks",
"data": <answer>}``, so its chain is at ``res["data"]["data"]["oc"]``): ``parse_chain`` and
``parse_expiries`` take either shape.
"""

from __future__ import annotations

from datetime import date, datetime

from algocli.adapters.dhan.http import DhanRest
from algocli.broker.ratelimit import RateLimiter
from algocli.domain.hrn import derivative_hrn, normalise
from algocli.errors import BrokerError, UsageError
from algocli.options.chain import Leg, OptionChain, StrikeRow, option_symbol
from algocli.options.fields import number as _num
from algocli.options.fields import optional as _opt
from algocli.options.greeks import IST

__all__ = ["CHAIN_PATH", "CHAIN_SPACING", "EXPIRY_PATH", "UNDERLYINGS", "chain_limiter", "fetch_chain",
           "fetch_expiries", "parse_chain", "parse_expiries", "underlying_ids", "underlying_name"]

CHAIN_PATH = "/optionchain"
EXPIRY_PATH = "/optionchain/expirylist"
CHAIN_SPACING = 3.05  # "one unique request every 3 seconds", with a little room for clock jitter
# Dhan's ids of the index underlyings in IDX_I (https://dhanhq.co/docs/v2/option-chain/, the scrip master).
UNDERLYINGS = {"NSE:NIFTY 50": (13, "IDX_I"), "NSE:NIFTY BANK": (25, "IDX_I"),
               "NSE:NIFTY FIN SERVICE": (27, "IDX_I"), "BSE:SENSEX": (51, "IDX_I")}
_LIMITERS: dict[str, RateLimiter] = {}


def chain_limiter(client_id: str) -> RateLimiter:
    """The process-wide limiter of one Dhan client's option-chain calls."""
    found = _LIMITERS.get(client_id)
    if found is None:
        found = _LIMITERS[client_id] = RateLimiter(((1, CHAIN_SPACING),))
    return found


def underlying_name(underlying: str) -> str | None:
    """Our name of an index in ``UNDERLYINGS`` from our name, a short alias (``NSE:NIFTY``,
    ``NSE:BANKNIFTY``) or its Dhan id (``IDX_I:13``); None for anything else."""
    from algocli.instruments.brokers import index_name

    exchange, sep, rest = normalise(underlying).partition(":")
    name = f"{exchange}:{index_name(rest)}" if sep else ""
    if name in UNDERLYINGS:
        return name
    ident = (rest.strip(), exchange.strip())
    return next((n for n, (i, seg) in UNDERLYINGS.items() if (str(i), seg) == ident), None)


def underlying_ids(underlying: str) -> tuple[int, str]:
    """``NSE:NIFTY 50`` (or ``NSE:NIFTY``) → ``(13, "IDX_I")``; a Dhan id ``NSE_EQ:2885`` → ``(2885, "NSE_EQ")``.

    Raises:
        UsageError: Neither an index Dhan lists nor a ``SEGMENT:ID``.
    """
    found = UNDERLYINGS.get(underlying_name(underlying) or "")
    if found is not None:
        return found
    segment, _, ident = underlying.partition(":")
    if segment in ("IDX_I", "NSE_EQ", "BSE_EQ", "MCX_COMM") and ident.isdigit():
        return int(ident), segment
    raise UsageError(f"no Dhan option chain known for {underlying!r}; use one of {', '.join(UNDERLYINGS)} or a "
                     "Dhan id (NSE_EQ:2885)")


def _unwrap(payload: object) -> object:
    """The broker's ``data``, whether from the raw answer or the SDK's wrapper around it."""
    data = payload.get("data") if isinstance(payload, dict) else payload
    if isinstance(data, dict) and "oc" not in data and "data" in data:
        data = data["data"]  # the SDK's {"status", "remarks", "data": {"data": ...}}
    return data


def _leg(raw: object, name: str) -> Leg | None:
    if not isinstance(raw, dict) or not raw:
        return None
    greeks = raw.get("greeks") if isinstance(raw.get("greeks"), dict) else {}
    iv = _opt(raw, "implied_volatility")
    prev_volume = _opt(raw, "previous_volume")
    leg = Leg(str(raw.get("security_id", "")), name, ltp=_num(raw, "last_price"),
              prev_close=_num(raw, "previous_close_price"), volume=int(_num(raw, "volume")),
              oi=int(_num(raw, "oi")), prev_oi=int(_num(raw, "previous_oi")), bid=_num(raw, "top_bid_price"),
              bid_qty=int(_num(raw, "top_bid_quantity")), ask=_num(raw, "top_ask_price"),
              ask_qty=int(_num(raw, "top_ask_quantity")), delta=_opt(greeks, "delta"),
              prev_volume=None if prev_volume is None else int(prev_volume), avg_price=_opt(raw, "average_price"))
    if iv:  # percent already; 0 or missing means not computable
        leg.iv_pct, leg.gamma, leg.theta, leg.vega = iv, _opt(greeks, "gamma"), _opt(greeks, "theta"), \
            _opt(greeks, "vega")
    return leg


def parse_chain(payload: object, underlying: str, expiry: date, fetched_at: datetime | None = None) -> OptionChain:
    """An option-chain answer (raw, or as the SDK returns it) as an ``OptionChain``.

    Raises:
        BrokerError: The answer has no ``oc`` object.
    """
    data = _unwrap(payload)
    if not isinstance(data, dict) or not isinstance(data.get("oc"), dict):
        raise BrokerError("Dhan option chain: the answer has no data.oc object")
    exchange, symbol = option_symbol(underlying)
    rows = []
    for key, legs in data["oc"].items():
        try:
            strike = float(key)
        except ValueError:
            continue
        legs = legs if isinstance(legs, dict) else {}
        rows.append(StrikeRow(strike, _leg(legs.get("ce"), derivative_hrn(exchange, symbol, expiry, "CE", strike)),
                              _leg(legs.get("pe"), derivative_hrn(exchange, symbol, expiry, "PE", strike))))
    return OptionChain("dhan", normalise(underlying), expiry, _num(data, "last_price"),
                       fetched_at or datetime.now(IST), rows)


def parse_expiries(payload: object) -> list[date]:
    """An expiry-list answer (raw, or as the SDK returns it) as ascending dates."""
    data = _unwrap(payload)
    out = set()
    for text in data if isinstance(data, list) else []:
        try:
            out.add(date.fromisoformat(str(text)[:10]))
        except ValueError:
            continue
    return sorted(out)


def _body(underlying: str) -> dict:
    scrip, segment = underlying_ids(underlying)
    return {"UnderlyingScrip": scrip, "UnderlyingSeg": segment}


async def fetch_expiries(client: DhanRest, underlying: str, client_id: str) -> list[date]:
    """The live expiries of ``underlying``, nearest first."""
    return parse_expiries(await client.request("POST", EXPIRY_PATH, _body(underlying),
                                               limiter=chain_limiter(client_id)))


async def fetch_chain(client: DhanRest, underlying: str, expiry: date, client_id: str, *,
                      name: str | None = None) -> OptionChain:
    """Every strike of ``underlying``'s ``expiry`` (waits for the 3-second slot); the chain and its
    contracts are named after ``name``, else our name of the index (``IDX_I:13`` → ``NSE:NIFTY 50``).

    Raises:
        FeedAuthError: Dhan refused the token.
        BrokerError: Dhan refused the request, kept failing, or sent no strikes.
    """
    body = _body(underlying) | {"Expiry": expiry.isoformat()}
    chain = parse_chain(await client.request("POST", CHAIN_PATH, body, limiter=chain_limiter(client_id)),
                        name or underlying_name(underlying) or underlying, expiry)
    if not chain.rows:
        raise BrokerError(f"Dhan sent no strikes for {underlying} expiring {expiry.isoformat()}")
    return chain
