"""IV and greeks by Black-76 on the forward implied by put-call parity, for legs a broker sent without them.

The model (as OpenAlgo computes its chains' greeks, https://github.com/marketcalls/openalgo):

* **Forward**: from put-call parity at the ATM strike, ``F = K + e^(rT)·(C − P)`` with the
  legs' last prices; the nearest strike with both legs priced if ATM has not; the spot
  carried at ``r`` when no strike has. The forward carries the index's financing and
  dividends, so no dividend yield is needed.
* **Time**: ACT/365 in calendar time, from ``now`` to the expiry day's F&O session close as the
  NSE calendar the package ships has it (``session_close``: 15:30 IST, 15:40 from 3 Aug 2026,
  https://www.nseindia.com/resources/exchange-communication-circulars); pass ``close`` for another cut-off.
* **Rate**: ``r`` only discounts the premium (the forward comes from prices). Default 0,
  as OpenAlgo: for options weeks from expiry ``e^(-rT)`` differs from 1 by well under 1 %.
  Pass the 91-day T-bill yield for more (``rate=0.065``).
* **Library**: ``vollib`` (https://github.com/vollib/vollib; the ``options`` extra,
  ``vollib==1.0.11``, which brings scipy), whose implied volatility is Peter Jäckel's "Let's be rational".
  Greeks are its analytical Black ones: delta with respect to the forward, theta per
  calendar day, vega per 1 volatility point, as the brokers report them. vollib imports
  scipy (about a second), so it is imported on first use, never at module import.

A leg priced at or below its intrinsic value (no time value) has no IV: its ``iv_pct`` and
greeks stay None except delta, ±1 in the money, as the brokers report such legs.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone

from algocli.options.chain import Leg, OptionChain
from algocli.options.pcr import atm_strike

__all__ = ["DEFAULT_CLOSE", "DEFAULT_RATE", "IST", "black76", "fill_greeks", "implied_forward", "leg_greeks",
           "session_close", "year_fraction"]

IST = timezone(timedelta(hours=5, minutes=30), "IST")
DEFAULT_CLOSE = time(15, 30)
DEFAULT_RATE = 0.0
YEAR_DAYS = 365.0
_MIN_T = 60.0 / (YEAR_DAYS * 86_400)  # one minute: at the close the model has no time left to price


def session_close(day: date) -> time:
    """The F&O session's close on ``day`` (IST) from the shipped NSE calendar (``algocli.market.calendar``);
    15:30 on a day it does not trade (an option never expires then, but the figure stays defined)."""
    from algocli.market.calendar import default_calendar

    session = default_calendar().session(day, "FNO")
    return DEFAULT_CLOSE if session is None else session.close


def year_fraction(now: datetime, expiry: date, close: time | None = None) -> float:
    """ACT/365 years from ``now`` (naive = IST) to ``expiry`` at ``close`` IST (default: that day's
    ``session_close``); never below one minute."""
    if close is None:
        close = session_close(expiry)
    if now.tzinfo is None:
        now = now.replace(tzinfo=IST)
    end = datetime.combine(expiry, close, tzinfo=IST)
    return max((end - now).total_seconds() / (YEAR_DAYS * 86_400), _MIN_T)


def implied_forward(chain: OptionChain, t: float, rate: float = DEFAULT_RATE) -> float:
    """The forward of ``chain``'s expiry from put-call parity (see the module docstring)."""
    atm = atm_strike(chain)
    priced = [r for r in chain.rows if r.ce is not None and r.pe is not None and r.ce.ltp > 0 and r.pe.ltp > 0]
    if atm is None or not priced:
        return chain.spot * math.exp(rate * t)
    row = min(priced, key=lambda r: (abs(r.strike - atm), r.strike))
    return row.strike + math.exp(rate * t) * (row.ce.ltp - row.pe.ltp)


def _vollib():
    """``vollib``'s Black-76 modules, or a one-line error saying how to install them.

    Raises:
        ConfigError: vollib (the ``options`` extra, with scipy) is not installed.
    """
    try:
        from vollib.black import black
        from vollib.black.greeks import analytical
        from vollib.black.implied_volatility import implied_volatility
    except ImportError:
        from algocli.errors import ConfigError

        raise ConfigError("implied volatility and greeks need vollib: pip install -e '.[options]' "
                          "(`make test` installs it)") from None
    return black, analytical, implied_volatility


def black76(flag: str, forward: float, strike: float, t: float, rate: float, sigma: float) -> float:
    """The Black-76 price of a call (``c``) or put (``p``); ``sigma`` a fraction."""
    black, _, _ = _vollib()
    return float(black(flag, forward, strike, t, rate, sigma))


def leg_greeks(right: str, price: float, forward: float, strike: float, t: float,
               rate: float = DEFAULT_RATE) -> dict[str, float | None]:
    """``iv_pct, delta, gamma, theta, vega`` of an option priced ``price`` (``right`` ``CE``/``PE``).

    Returns:
        The five values; all None but delta (±1 in the money, else None) when ``price`` has no
        time value over the discounted intrinsic, or vollib finds no volatility.
    """
    _, analytical, implied_volatility = _vollib()
    flag = "c" if right == "CE" else "p"
    intrinsic = math.exp(-rate * t) * max(0.0, (forward - strike) if flag == "c" else (strike - forward))
    none = {"iv_pct": None, "delta": None, "gamma": None, "theta": None, "vega": None}
    if price <= intrinsic + 1e-9:
        return none | {"delta": (1.0 if flag == "c" else -1.0) if intrinsic > 0 else None}
    try:
        sigma = float(implied_volatility(price, forward, strike, rate, t, flag))
    except Exception:  # vollib raises its own classes for prices outside the no-arbitrage bounds
        return none
    if not math.isfinite(sigma) or sigma <= 0:
        return none
    return {"iv_pct": sigma * 100.0,
            "delta": float(analytical.delta(flag, forward, strike, t, rate, sigma)),
            "gamma": float(analytical.gamma(flag, forward, strike, t, rate, sigma)),
            "theta": float(analytical.theta(flag, forward, strike, t, rate, sigma)),
            "vega": float(analytical.vega(flag, forward, strike, t, rate, sigma))}


def fill_greeks(chain: OptionChain, now: datetime | None = None, *, rate: float = DEFAULT_RATE,
                close: time | None = None, overwrite: bool = False) -> OptionChain:
    """Give every leg without IV and greeks (or every leg, with ``overwrite``) Black-76 ones, in place.

    Args:
        chain: The chain; its legs are updated.
        now: The valuation moment; default the chain's ``fetched_at``.
        rate: Continuously compounded rate that discounts the premium.
        close: The expiry day's cut-off (IST); default its F&O session close (``session_close``).
        overwrite: Replace what the broker sent too.

    Returns:
        ``chain``.
    """
    t = year_fraction(now or chain.fetched_at, chain.expiry, close)
    forward = implied_forward(chain, t, rate)
    for strike, right, leg in chain.legs():
        if overwrite or not leg.has_greeks:
            _set(leg, leg_greeks(right, leg.ltp, forward, strike, t, rate))
    return chain


def _set(leg: Leg, values: dict[str, float | None]) -> None:
    for key, value in values.items():
        setattr(leg, key, value)
