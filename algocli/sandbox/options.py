"""Option chains and expiries in Upstox's and Dhan's wire formats, built from the replayed bars.

Routes (added by ``add_routes``):

* Upstox ``GET /v2/option/chain?instrument_key=<underlying>&expiry_date=YYYY-MM-DD``
  (https://upstox.com/developer/api-documentation/get-pc-option-chain): ``data[]`` one
  element per strike, ascending, with the per-strike ``pcr`` Upstox sends (put OI / call OI
  at that strike, 4 decimals; 0 when the call OI is 0). An expiry with no contract is HTTP
  400 ``UDAPI1088`` (the real code is not documented).
* Upstox ``GET /v2/option/contract?instrument_key=<underlying>[&expiry_date=]``
  (https://upstox.com/developer/api-documentation/get-option-contracts): one row per live
  contract; the live expiries are their distinct ``expiry`` values.
* Dhan ``POST /v2/optionchain`` ``{"UnderlyingScrip", "UnderlyingSeg", "Expiry"}`` and
  ``POST /v2/optionchain/expirylist`` (https://dhanhq.co/docs/v2/option-chain/): ``oc``
  keyed by the strike with six decimals. Both need the ``access-token`` and ``client-id``
  headers; unknown keys in the body (the SDK adds ``dhanClientId``) are ignored. One request
  per ``min_interval`` (3 s) per client across both routes, else HTTP 429 ``DH-904``.

``algocli.sandbox.option_history`` adds the historical option routes (Dhan's rolling
options, Upstox's expired contracts and market PCR) on the same state.

What a chain holds at the replay clock ``now`` (the historical routes' clock): each
contract's bars whose last tick has been replayed. ``ltp`` is the last such close, ``volume``
the sum over today's bars, ``oi`` the last bar's, ``prev_close``/``prev_oi``/``prev_volume``
the previous session's last close, last OI and volume (on the data's first day: its first
bar's open and OI, and no volume). The spot is the underlying's last replayed close. IV and
greeks are Black-76 on the parity forward (``algocli.options.greeks``); a leg without time
value is sent as the brokers send it: ``iv 0``, ``delta ±1``, the other greeks 0. Bid and
ask are one tick either side of the last price. Live contracts are those expiring on or
after the clock's IST date.

The replay clock runs ahead of a client that cannot keep up with a fast replay (``--speed 0``),
so a client may say the exchange time it is at in the ``X-Sandbox-Time`` header (UTC ns; our
own paper and live runs against the sandbox do, ``algocli.options.broker_source``): the chain
and expiry routes then answer as of the earlier of that time and the replay clock, which is
what the brokers answer a client living at that moment. Without the header: the replay clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import parse_qs

import numpy as np
from aiohttp import web

from algocli.domain.session import ist_date, ist_midnight_ns
from algocli.errors import ConfigError
from algocli.instruments.model import Instrument
from algocli.options.broker_source import SANDBOX_CLOCK_HEADER
from algocli.options.chain import Leg, OptionChain, StrikeRow, option_symbol
from algocli.options.greeks import IST, fill_greeks
from algocli.sandbox.history import HISTORY_KEY, HistorySandbox, _dhan_error, _replayed_count, _upstox_error

__all__ = ["DHAN_CHAIN_PATH", "DHAN_EXPIRY_PATH", "OPTIONS_KEY", "OptionsSandbox", "UPSTOX_CHAIN_PATH",
           "UPSTOX_CONTRACT_PATH", "add_routes"]

UPSTOX_CHAIN_PATH = "/v2/option/chain"
UPSTOX_CONTRACT_PATH = "/v2/option/contract"
DHAN_CHAIN_PATH = "/v2/optionchain"
DHAN_EXPIRY_PATH = "/v2/optionchain/expirylist"
_GREEKS = ("delta", "gamma", "theta", "vega")


class NoChain(Exception):
    """Nothing to serve: the message says why."""


@dataclass
class OptionsSandbox:
    """State of the option routes, on the app as ``app[OPTIONS_KEY]``.

    Attributes:
        history: The historical routes' state: the bars, the replay clock and the token rule.
        instruments: Every listed instrument (underlyings and contracts).
        min_interval: Least seconds between two Dhan option requests of one client.
        requests: ``(path, request)`` per call: the JSON body (Dhan) or the query (Upstox).
    """

    history: HistorySandbox
    instruments: Sequence[Instrument]
    min_interval: float = 3.0
    requests: list[tuple[str, dict]] = field(default_factory=list)
    _last_call: dict[str, float] = field(default_factory=dict)

    def underlying(self, *, upstox_key: str | None = None, dhan_id: str | None = None) -> Instrument | None:
        for inst in self.instruments:
            if inst.option_type is None and ((upstox_key and inst.upstox_key.upper() == upstox_key.upper())
                                             or (dhan_id and inst.dhan_id == dhan_id)):
                return inst
        return None

    def contracts(self, underlying: Instrument, day: date) -> list[Instrument]:
        """The live options (expiring on or after ``day``) on ``underlying``."""
        exchange, symbol = option_symbol(underlying.hrn)
        return [i for i in self.instruments if i.option_type is not None and i.exchange == exchange
                and i.symbol.upper() == symbol and i.expiry is not None and i.expiry >= day]

    def now(self, request: web.Request | None = None) -> int:
        """The replay clock, or the client's ``X-Sandbox-Time`` when that is earlier (module docstring)."""
        now = self.history.clock()
        now = time.time_ns() if now is None else now
        said = request.headers.get(SANDBOX_CLOCK_HEADER, "") if request is not None else ""
        return min(now, int(said)) if said.isdigit() else now

    def chain(self, underlying: Instrument, expiry: date, now: int | None = None
              ) -> tuple[OptionChain, dict[str, Instrument]]:
        """The chain at ``now`` (default the replay clock), and its legs' instruments by name.

        Raises:
            NoChain: No contract of that expiry, or nothing replayed yet.
        """
        now = self.now() if now is None else now
        listed = [i for i in self.contracts(underlying, ist_date(now)) if i.expiry == expiry]
        if not listed:
            raise NoChain(f"no {underlying.hrn} contracts expire on {expiry.isoformat()}")
        spot = self._quote(underlying.dhan_id, now)
        if spot is None:
            raise NoChain(f"no {underlying.hrn} price replayed yet")
        rows: dict[float, StrikeRow] = {}
        by_name = {}
        for inst in listed:
            quote = self._quote(inst.dhan_id, now)
            if quote is None:
                continue
            row = rows.setdefault(float(inst.strike or 0.0), StrikeRow(float(inst.strike or 0.0)))
            leg = Leg(inst.hrn, inst.hrn, **quote)
            leg.bid, leg.ask = max(leg.ltp - inst.tick_size, 0.0), leg.ltp + inst.tick_size
            leg.bid_qty = leg.ask_qty = inst.lot_size * (1 + int(row.strike) // 50 % 7) * 10
            setattr(row, inst.option_type.lower(), leg)
            by_name[inst.hrn] = inst
        moment = datetime.fromtimestamp(now / 1e9, IST)
        chain = OptionChain("sandbox", underlying.hrn, expiry, spot["ltp"], moment, list(rows.values()))
        try:
            return fill_greeks(chain), by_name
        except ConfigError:  # vollib (the options extra) is not installed: a chain without greeks
            return chain, by_name

    def _quote(self, instrument: str, now: int) -> dict | None:
        bars = self.history.bars.get(instrument)
        if bars is None:
            return None
        n = _replayed_count(bars, now)
        if n == 0:
            return None
        ts = np.asarray(bars.ts, dtype=np.int64)
        day_lo = int(np.searchsorted(ts, ist_midnight_ns(ist_date(now))))
        prev_lo = int(np.searchsorted(ts, ist_midnight_ns(ist_date(int(ts[day_lo - 1]))))) if day_lo else 0
        oi = bars.oi
        last_oi = 0 if oi is None else int(oi[n - 1])
        today = slice(min(day_lo, n), n)
        return {"ltp": float(bars.close[n - 1]), "volume": int(np.sum(bars.volume[today])), "oi": last_oi,
                "prev_close": float(bars.close[day_lo - 1] if day_lo else bars.open[0]),
                "prev_oi": 0 if oi is None else int(oi[day_lo - 1] if day_lo else oi[0]),
                "prev_volume": int(np.sum(bars.volume[prev_lo:day_lo])) if day_lo else 0}

    def throttled(self, client: str) -> bool:
        """True when ``client`` asked less than ``min_interval`` ago (a refused call does not count)."""
        now = time.monotonic()
        last = self._last_call.get(client)
        if last is not None and now - last < self.min_interval:
            return True
        self._last_call[client] = now
        return False


OPTIONS_KEY = web.AppKey("options", OptionsSandbox)


def add_routes(app: web.Application, instruments: Sequence[Instrument], *, dhan: bool = True,
               upstox: bool = True) -> OptionsSandbox | None:
    """Mount the option routes on ``app`` (after the historical routes, whose bars and clock they read).

    Returns:
        Their state (also ``app[OPTIONS_KEY]``), or None when the app has no historical routes.
    """
    history = app.get(HISTORY_KEY)
    if history is None:
        return None
    state = app[OPTIONS_KEY] = OptionsSandbox(history, list(instruments))
    if upstox:
        app.router.add_get(UPSTOX_CHAIN_PATH, _upstox_chain)
        app.router.add_get(UPSTOX_CONTRACT_PATH, _upstox_contracts)
    if dhan:
        app.router.add_post(DHAN_CHAIN_PATH, _dhan_chain)
        app.router.add_post(DHAN_EXPIRY_PATH, _dhan_expiries)
    from algocli.sandbox import option_history  # rolling and expired option candles, historical PCR

    option_history.add_routes(app, dhan=dhan, upstox=upstox)
    return state


def _expiry(text: object) -> date | None:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        return None


def _greeks(leg: Leg) -> dict[str, float]:
    """The leg's greeks as the brokers send them: zeros, and delta ±1 in the money, when not computable."""
    out = {g: float(getattr(leg, g) or 0.0) for g in _GREEKS}
    out["iv"] = float(leg.iv_pct or 0.0)
    return out


# --- Upstox ----------------------------------------------------------------------------------

def _upstox_request(request: web.Request) -> tuple[OptionsSandbox, dict[str, str], Instrument] | web.Response:
    state = request.app[OPTIONS_KEY]
    # parse_qs decodes the SDK's form encoding ("Nifty+50"), which a %20-only decoder would not
    query = {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}
    state.requests.append((request.path, query))
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    if not state.history.token_ok(token):
        return _upstox_error(401, "UDAPI100050", "Invalid token used to access API")
    key = query.get("instrument_key", "")
    inst = state.underlying(upstox_key=key) if key else None
    if inst is None:
        return _upstox_error(400, "UDAPI100011", f"Invalid instrument key: {key!r}")
    return state, query, inst


async def _upstox_chain(request: web.Request) -> web.Response:
    got = _upstox_request(request)
    if isinstance(got, web.Response):
        return got
    state, query, underlying = got
    expiry = _expiry(query.get("expiry_date"))
    if expiry is None:
        return _upstox_error(400, "UDAPI1088", "expiry_date must be YYYY-MM-DD")
    try:
        chain, listed = state.chain(underlying, expiry, state.now(request))
    except NoChain as exc:
        return _upstox_error(400, "UDAPI1088", str(exc))
    data = []
    for row in chain.rows:
        item = {"expiry": expiry.isoformat(), "strike_price": row.strike, "underlying_key": underlying.upstox_key,
                "underlying_spot_price": chain.spot,
                "pcr": round(row.pe.oi / row.ce.oi, 4) if row.ce and row.pe and row.ce.oi > 0 else 0}
        for side, name in (("ce", "call_options"), ("pe", "put_options")):
            leg = getattr(row, side)
            if leg is not None:
                item[name] = _upstox_leg(leg, listed[leg.name])
        data.append(item)
    return web.json_response({"status": "success", "data": data})


def _upstox_leg(leg: Leg, inst: Instrument) -> dict:
    return {"instrument_key": inst.upstox_key,
            "market_data": {"ltp": leg.ltp, "volume": leg.volume, "oi": float(leg.oi), "close_price": leg.prev_close,
                            "bid_price": leg.bid, "bid_qty": leg.bid_qty, "ask_price": leg.ask,
                            "ask_qty": leg.ask_qty, "prev_oi": float(leg.prev_oi)},
            "option_greeks": _greeks(leg)}


async def _upstox_contracts(request: web.Request) -> web.Response:
    got = _upstox_request(request)
    if isinstance(got, web.Response):
        return got
    state, query, underlying = got
    wanted = _expiry(query["expiry_date"]) if query.get("expiry_date") else None
    rows = [_contract_row(i, underlying) for i in state.contracts(underlying, ist_date(state.now(request)))
            if wanted is None or i.expiry == wanted]
    return web.json_response({"status": "success", "data": rows})


def _contract_row(inst: Instrument, underlying: Instrument) -> dict:
    strike = float(inst.strike or 0.0)
    expiry = inst.expiry
    return {"name": inst.symbol, "segment": "NSE_FO" if inst.exchange == "NSE" else "BSE_FO",
            "exchange": inst.exchange, "expiry": expiry.isoformat(), "instrument_key": inst.upstox_key,
            "exchange_token": inst.token,
            "trading_symbol": f"{inst.symbol} {strike:g} {inst.option_type} {expiry:%d %b %y}".upper(),
            "tick_size": round(inst.tick_size * 100, 4), "lot_size": inst.lot_size,
            "instrument_type": inst.option_type, "freeze_quantity": float(inst.freeze_quantity or 0),
            "underlying_key": underlying.upstox_key,
            "underlying_type": "INDEX" if underlying.kind == "INDEX" else "EQUITY",
            "underlying_symbol": inst.symbol, "strike_price": strike, "minimum_lot": inst.lot_size,
            "weekly": False}


# --- Dhan ------------------------------------------------------------------------------------

async def _dhan_request(request: web.Request) -> tuple[OptionsSandbox, Instrument, dict] | web.Response:
    state = request.app[OPTIONS_KEY]
    try:
        body = await request.json()
    except ValueError:
        body = None
    state.requests.append((request.path, body if isinstance(body, dict) else {}))
    token = request.headers.get("access-token")
    if not state.history.token_ok(token):
        return _dhan_error(401, "DH-901", "Invalid_Authentication", "Client ID or user generated access token "
                                                                    "is invalid or expired.")
    client = request.headers.get("client-id")
    if not client:
        return _dhan_error(400, "DH-905", "Input_Exception", "client-id header is required for option chain")
    if state.throttled(client):
        return _dhan_error(429, "DH-904", "Rate_Limit", "Too many requests on server from single user breaching "
                                                        "rate limits. Option chain: one request every 3 seconds.")
    if not isinstance(body, dict) or not isinstance(body.get("UnderlyingScrip"), int):
        return _dhan_error(400, "DH-905", "Input_Exception", "UnderlyingScrip (int) and UnderlyingSeg are required")
    inst = state.underlying(dhan_id=f"{body.get('UnderlyingSeg')}:{body['UnderlyingScrip']}")
    if inst is None:
        return _dhan_error(400, "DH-907", "Data_Error", "no option chain for this underlying")
    return state, inst, body


async def _dhan_expiries(request: web.Request) -> web.Response:
    got = await _dhan_request(request)
    if isinstance(got, web.Response):
        return got
    state, underlying, _ = got
    expiries = sorted({i.expiry for i in state.contracts(underlying, ist_date(state.now(request)))})
    return web.json_response({"data": [e.isoformat() for e in expiries], "status": "success"})


async def _dhan_chain(request: web.Request) -> web.Response:
    got = await _dhan_request(request)
    if isinstance(got, web.Response):
        return got
    state, underlying, body = got
    expiry = _expiry(body.get("Expiry"))
    if expiry is None:
        return _dhan_error(400, "DH-905", "Input_Exception", "Expiry must be YYYY-MM-DD, one of the expiry list")
    try:
        chain, listed = state.chain(underlying, expiry, state.now(request))
    except NoChain as exc:
        return _dhan_error(400, "DH-907", "Data_Error", str(exc))
    oc = {}
    for row in chain.rows:
        strike = {}
        for side in ("ce", "pe"):
            leg = getattr(row, side)
            if leg is not None:
                strike[side] = _dhan_leg(leg, listed[leg.name])
        oc[f"{row.strike:.6f}"] = strike
    return web.json_response({"data": {"last_price": chain.spot, "oc": oc}, "status": "success"})


def _dhan_leg(leg: Leg, inst: Instrument) -> dict:
    greeks = _greeks(leg)
    iv = greeks.pop("iv")
    return {"average_price": leg.ltp, "greeks": greeks, "implied_volatility": iv, "last_price": leg.ltp,
            "oi": leg.oi, "previous_close_price": leg.prev_close, "previous_oi": leg.prev_oi,
            "previous_volume": leg.prev_volume or 0, "security_id": int(inst.dhan_id.partition(":")[2]),
            "top_ask_price": leg.ask, "top_ask_quantity": leg.ask_qty, "top_bid_price": leg.bid,
            "top_bid_quantity": leg.bid_qty, "volume": leg.volume}
