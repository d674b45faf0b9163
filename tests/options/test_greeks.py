"""Black-76 IV and greeks against a hand-worked example, and the parity forward."""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest

from algocli.options.chain import Leg, OptionChain, StrikeRow
from algocli.options.greeks import IST, black76, fill_greeks, implied_forward, leg_greeks, year_fraction


def _n(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# Hand-worked: F = K = 100, T = 0.5, r = 5 %, sigma = 20 %.
# d1 = sigma*sqrt(T)/2 = 0.0707107, d2 = -0.0707107, N(d1) = 0.5281866, discount e^-0.025 = 0.9753099
# call = 0.9753099 * 100 * (N(d1) - N(d2)) = 0.9753099 * 100 * 0.0563732 = 5.49814
F, K, T, R, SIGMA = 100.0, 100.0, 0.5, 0.05, 0.20
CALL = 5.4981


def test_price_and_greeks_match_the_hand_worked_example():
    assert black76("c", F, K, T, R, SIGMA) == pytest.approx(CALL, abs=1e-3)
    got = leg_greeks("CE", black76("c", F, K, T, R, SIGMA), F, K, T, R)
    d1 = SIGMA * math.sqrt(T) / 2
    phi = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    disc = math.exp(-R * T)
    assert got["iv_pct"] == pytest.approx(20.0, abs=1e-6)
    assert got["delta"] == pytest.approx(disc * _n(d1), abs=1e-6)  # 0.51514, with respect to the forward
    assert got["gamma"] == pytest.approx(disc * phi / (F * SIGMA * math.sqrt(T)), abs=1e-6)
    assert got["vega"] == pytest.approx(disc * F * phi * math.sqrt(T) / 100, abs=1e-6)  # per vol point
    annual_theta = -disc * F * phi * SIGMA / (2 * math.sqrt(T)) + R * CALL
    assert got["theta"] == pytest.approx(annual_theta / 365, abs=1e-4)  # per calendar day
    put = leg_greeks("PE", black76("p", F, K, T, R, SIGMA), F, K, T, R)
    assert put["iv_pct"] == pytest.approx(20.0, abs=1e-6) and put["delta"] == pytest.approx(got["delta"] - disc)


def test_a_leg_without_time_value_has_no_iv_but_keeps_its_delta():
    deep = leg_greeks("CE", 20.0, 120.0, 100.0, 0.01, 0.0)
    assert deep == {"iv_pct": None, "delta": 1.0, "gamma": None, "theta": None, "vega": None}
    assert leg_greeks("PE", 0.0, 120.0, 100.0, 0.01)["delta"] is None  # out of the money, no price


def test_year_fraction_is_act_365_to_the_expiry_close_ist():
    assert year_fraction(datetime(2024, 6, 26, 15, 30), date(2024, 6, 27)) == pytest.approx(1 / 365)
    assert year_fraction(datetime(2024, 6, 27, 16, 0, tzinfo=IST), date(2024, 6, 27)) > 0  # floored at a minute


def test_forward_from_parity_and_fill_greeks_recovers_the_volatility():
    t = year_fraction(datetime(2024, 6, 20, 10, 0), date(2024, 6, 27))
    fwd = 23_512.0
    rows = []
    for k in (23_400.0, 23_500.0, 23_600.0):
        rows.append(StrikeRow(k, Leg("c", "c", ltp=round(black76("c", fwd, k, t, 0.0, 0.15), 2)),
                              Leg("p", "p", ltp=round(black76("p", fwd, k, t, 0.0, 0.15), 2))))
    chain = OptionChain("test", "NSE:NIFTY 50", date(2024, 6, 27), 23_480.0,
                        datetime(2024, 6, 20, 10, 0, tzinfo=IST), rows)
    assert implied_forward(chain, t) == pytest.approx(fwd, abs=0.02)
    fill_greeks(chain)
    assert chain.rows[1].ce.iv_pct == pytest.approx(15.0, abs=0.05)
    assert chain.rows[1].pe.delta == pytest.approx(chain.rows[1].ce.delta - 1, abs=1e-3)


def test_without_vollib_greeks_are_a_one_line_error_naming_the_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['vollib'] = None\n"
            "from algocli.errors import ConfigError\n"
            "from algocli.options.greeks import black76\n"
            "try:\n    black76('c', 100.0, 100.0, 0.5, 0.0, 0.2)\n"
            "except ConfigError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ("implied volatility and greeks need vollib: pip install -e '.[options]' "
                                   "(`make test` installs it)")


def _call(fwd: float, k: float, t: float, sigma: float) -> float:
    """Black-76 call at rate 0, by the formula."""
    d1 = (math.log(fwd / k) + sigma * sigma * t / 2) / (sigma * math.sqrt(t))
    return fwd * _n(d1) - k * _n(d1 - sigma * math.sqrt(t))


def test_time_runs_to_the_1540_fno_close_from_august_2026():
    minute = 1 / (365 * 1440)
    # NSE's calendar as shipped: the F&O close is 15:40 from 2026-08-03, 15:30 before
    assert year_fraction(datetime(2026, 9, 29, 15, 25), date(2026, 9, 29)) == pytest.approx(15 * minute)
    assert year_fraction(datetime(2026, 7, 28, 15, 25), date(2026, 7, 28)) == pytest.approx(5 * minute)
    now, expiry, fwd = datetime(2026, 9, 29, 15, 0, tzinfo=IST), date(2026, 9, 29), 25_012.0
    t = 40 * minute  # 15:00 to 15:40, worked by hand
    rows = [StrikeRow(k, Leg("c", "c", ltp=_call(fwd, k, t, 0.15)), Leg("p", "p", ltp=_call(fwd, k, t, 0.15) - fwd + k))
            for k in (24_950.0, 25_000.0, 25_050.0)]
    chain = fill_greeks(OptionChain("test", "NSE:NIFTY 50", expiry, 25_010.0, now, rows))
    assert chain.rows[1].ce.iv_pct == pytest.approx(15.0, abs=1e-4)  # 15:30 would read sqrt(4/3) x 15 %
