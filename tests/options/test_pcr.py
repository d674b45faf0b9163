"""PCR, ATM, window, max pain and bands on hand-built chains."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from algocli.options.chain import Leg, OptionChain, StrikeRow
from algocli.options.greeks import IST
from algocli.options.pcr import Bands, atm_strike, max_pain, pcr, summarise, window


def _leg(oi: int, prev_oi: int = 0, volume: int = 0) -> Leg:
    return Leg("x", "x", ltp=1.0, oi=oi, prev_oi=prev_oi, volume=volume)


def _chain(rows: list[StrikeRow], spot: float) -> OptionChain:
    return OptionChain("test", "NSE:NIFTY 50", date(2024, 6, 27), spot, datetime(2024, 6, 20, 10, tzinfo=IST), rows)


ROWS = [
    StrikeRow(100.0, _leg(10, 4, 7), _leg(50, 30, 2)),
    StrikeRow(110.0, _leg(20, 25, 3), _leg(40, 35, 5)),
    StrikeRow(120.0, _leg(60, 50, 11), None),  # a far strike with one leg
    StrikeRow(130.0, None, _leg(5, 0, 1)),
]


def test_ratios_sum_each_side_and_skip_missing_legs():
    got = pcr(ROWS)
    assert (got.put_oi, got.call_oi) == (95, 90)
    assert got.oi_pcr == pytest.approx(95 / 90)
    assert got.vol_pcr == pytest.approx(8 / 21)
    assert (got.put_chg_oi, got.call_chg_oi) == (20 + 5 + 5, 6 - 5 + 10)
    assert got.chg_oi_pcr == pytest.approx(30 / 11)


def test_change_in_oi_pcr_is_none_when_either_side_unwinds():
    rows = [StrikeRow(100.0, _leg(10, 20), _leg(30, 10))]  # calls unwound
    got = pcr(rows)
    assert got.chg_oi_pcr is None and got.put_chg_oi == 20 and got.call_chg_oi == -10
    assert pcr([StrikeRow(100.0, None, _leg(5))]).oi_pcr is None  # no call OI: no ratio, no division


def test_atm_is_the_nearest_listed_strike_lower_on_a_tie_and_the_window_is_clipped():
    chain = _chain(list(ROWS), 115.0)
    assert atm_strike(chain) == 110.0
    assert atm_strike(chain, 118.0) == 120.0
    assert [r.strike for r in window(chain, 1)] == [100.0, 110.0, 120.0]
    assert [r.strike for r in window(_chain(list(ROWS), 10.0), 1)] == [100.0, 110.0]


def test_max_pain_minimises_what_writers_pay():
    def pain(k):
        return sum((r.ce.oi * max(0, k - r.strike) if r.ce else 0) + (r.pe.oi * max(0, r.strike - k) if r.pe else 0)
                   for r in ROWS)

    expected = min((r.strike for r in ROWS), key=pain)
    assert max_pain(ROWS) == expected == 110.0


def test_summary_reports_whole_and_windowed_figures_and_the_oi_walls():
    summary = summarise(_chain(list(ROWS), 131.0), 1)
    assert summary.atm == 130.0
    assert summary.windowed.call_oi == 60 and summary.windowed.put_oi == 5
    assert (summary.max_call_oi_strike, summary.max_put_oi_strike) == (120.0, 100.0)
    data = summary.as_dict()
    assert data["pcr"]["oi_pcr"] == pytest.approx(95 / 90) and data["max_pain"] == 110.0
    assert [s["strike"] for s in data["strikes"]] == [100.0, 110.0, 120.0, 130.0] and data["strikes"][3]["ce"] is None


def test_bands_are_settings_and_the_reading_decides_the_bias():
    bands = Bands()
    assert [bands.band(v) for v in (0.69, 0.7, 1.3, 1.31, None)] == ["low", "neutral", "neutral", "high", None]
    assert bands.bias(1.5) == "bullish" and Bands(interpretation="buyers").bias(1.5) == "bearish"
    assert Bands(0.8, 1.2).band(1.25) == "high"
    with pytest.raises(ValueError, match="low"):
        Bands(1.3, 0.7)
