"""Put-call ratios, max pain and the ATM strike of an option chain; sentiment bands as settings.

Definitions (per expiry, over the strikes given: the whole chain or a window around ATM):

* **OI PCR** = Σ put OI / Σ call OI: positioning, slow.
* **Volume PCR** = Σ put volume / Σ call volume: today's flow, fast and noisy (volume
  resets each session).
* **Change-in-OI PCR** = Σ (put OI − put prev OI) / Σ (call OI − call prev OI): today's
  fresh positioning. It is reported only when both sums are positive: with unwinding on
  either side the ratio is undefined or flips sign, so it is None (the sums are kept).

Each ratio is None when its denominator is not positive. **ATM** is the listed strike
nearest the spot (the lower one on a tie). The **window** is the ATM strike and ``n``
listed strikes on each side. **Max pain** is the strike ``k`` (among the listed ones)
minimising what option writers pay at expiry if the underlying settles at ``k``:
Σ call OI·max(0, k − K) + Σ put OI·max(0, K − k) over all strikes ``K``.

PCR is always computed here from the legs, never taken from a broker field: Upstox's
per-strike ``pcr`` is put OI / call OI at one strike, not the chain's.

Sentiment: ``Bands`` classifies a ratio as ``low`` / ``neutral`` / ``high`` with
thresholds that are settings (default 0.7 and 1.3: Nifty's OI PCR "normally ranges
between 0.7 and 1.3", Mint quoting IndiaCharts, Oct 2024,
https://www.livemint.com/market/stock-market-news/). Whether high means bullish depends on
the reading, so the mapping to a bias is a named interpretation: ``writers`` (high put OI is
put writers defending support: high → bullish), ``contrarian`` (high PCR is fear, a
contrarian buy: high → bullish) or ``buyers`` (high PCR is put buying: high → bearish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from algocli.options.chain import OptionChain, StrikeRow

__all__ = ["Bands", "DEFAULT_WINDOW", "PCR_COLUMNS", "PcrFigures", "Summary", "atm_strike", "max_pain", "pcr",
           "ratio", "summarise", "window"]

DEFAULT_WINDOW = 10  # strikes each side of ATM
# The header of a PCR time series CSV (paper/live snapshots, ``algo download-data --pcr``): timestamp in IST
# (``YYYY-MM-DD HH:MM:SS``), expiry ``YYYY-MM-DD``; a figure the source does not give is left empty.
PCR_COLUMNS = ("timestamp", "underlying", "expiry", "spot", "atm_strike", "oi_pcr", "volume_pcr", "change_oi_pcr",
               "max_pain")
_BIAS = {  # interpretation → (bias when low, bias when high)
    "writers": ("bearish", "bullish"),
    "contrarian": ("bearish", "bullish"),
    "buyers": ("bullish", "bearish"),
}


def ratio(puts: float, calls: float) -> float | None:
    """``puts / calls``, or None when ``calls`` is not positive."""
    return puts / calls if calls > 0 else None


@dataclass(frozen=True, slots=True)
class PcrFigures:
    """The three PCRs over one set of strikes, with the sums behind them."""

    oi_pcr: float | None
    vol_pcr: float | None
    chg_oi_pcr: float | None
    put_oi: int
    call_oi: int
    put_volume: int
    call_volume: int
    put_chg_oi: int
    call_chg_oi: int

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


def pcr(rows: list[StrikeRow]) -> PcrFigures:
    """OI, volume and change-in-OI PCR over ``rows`` (missing legs count as nothing)."""
    put_oi = call_oi = put_vol = call_vol = put_chg = call_chg = 0
    for row in rows:
        if row.ce is not None:
            call_oi += row.ce.oi
            call_vol += row.ce.volume
            call_chg += row.ce.change_in_oi
        if row.pe is not None:
            put_oi += row.pe.oi
            put_vol += row.pe.volume
            put_chg += row.pe.change_in_oi
    chg = put_chg / call_chg if put_chg > 0 and call_chg > 0 else None
    return PcrFigures(ratio(put_oi, call_oi), ratio(put_vol, call_vol), chg, put_oi, call_oi, put_vol, call_vol,
                      put_chg, call_chg)


def atm_strike(chain: OptionChain, price: float | None = None) -> float | None:
    """The listed strike nearest ``price`` (default the spot); the lower one on a tie; None without strikes."""
    target = chain.spot if price is None else price
    strikes = chain.strikes
    if not strikes:
        return None
    return min(strikes, key=lambda k: (abs(k - target), k))


def window(chain: OptionChain, n: int = DEFAULT_WINDOW, price: float | None = None) -> list[StrikeRow]:
    """The ATM row and ``n`` listed rows each side of it (fewer at the chain's ends)."""
    atm = atm_strike(chain, price)
    if atm is None:
        return []
    i = chain.strikes.index(atm)
    return chain.rows[max(0, i - n): i + n + 1]


def max_pain(rows: list[StrikeRow]) -> float | None:
    """The strike where option writers would pay the least at expiry (see the module docstring)."""
    best: tuple[float, float] | None = None
    for candidate in rows:
        k = candidate.strike
        pain = 0.0
        for row in rows:
            if row.ce is not None and k > row.strike:
                pain += row.ce.oi * (k - row.strike)
            if row.pe is not None and k < row.strike:
                pain += row.pe.oi * (row.strike - k)
        if best is None or pain < best[0]:
            best = (pain, k)
    return None if best is None else best[1]


def _max_oi_strike(rows: list[StrikeRow], side: str) -> float | None:
    best = max(((getattr(r, side).oi, r.strike) for r in rows if getattr(r, side) is not None), default=None)
    return None if best is None or best[0] <= 0 else best[1]


@dataclass(frozen=True, slots=True)
class Bands:
    """Sentiment thresholds (settings, not truths).

    Attributes:
        low: A ratio below it is ``low``.
        high: A ratio above it is ``high``; between the two (inclusive) is ``neutral``.
        interpretation: How ``low``/``high`` map to a bias: ``writers``, ``contrarian`` or ``buyers``.

    Raises:
        ValueError: ``low`` is not below ``high``, or the interpretation is unknown.
    """

    low: float = 0.7
    high: float = 1.3
    interpretation: Literal["writers", "contrarian", "buyers"] = "writers"

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high:
            raise ValueError(f"sentiment bands: low ({self.low}) must be at least 0 and below high ({self.high})")
        if self.interpretation not in _BIAS:
            raise ValueError(f"sentiment interpretation {self.interpretation!r} is not one of {', '.join(_BIAS)}")

    def band(self, value: float | None) -> str | None:
        """``low``, ``neutral`` or ``high``; None for no value."""
        if value is None:
            return None
        return "low" if value < self.low else "high" if value > self.high else "neutral"

    def bias(self, value: float | None) -> str | None:
        """``bullish``, ``bearish`` or ``neutral`` under this interpretation; None for no value."""
        band = self.band(value)
        if band in (None, "neutral"):
            return band
        low, high = _BIAS[self.interpretation]
        return low if band == "low" else high


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``algo pcr`` shows and paper/live record per snapshot."""

    chain: OptionChain
    atm: float | None
    window_strikes: int
    whole: PcrFigures
    windowed: PcrFigures
    max_pain: float | None
    max_call_oi_strike: float | None
    max_put_oi_strike: float | None

    def as_dict(self, bands: Bands | None = None) -> dict:
        """A JSON-ready dict: underlying, expiry, spot, ATM, PCRs by name, max pain, per-strike OI/volume."""
        bands = bands or Bands()
        chain = self.chain
        return {
            "underlying": chain.underlying, "expiry": chain.expiry.isoformat(), "source": chain.source,
            "fetched_at": chain.fetched_at.isoformat(timespec="seconds"), "spot": chain.spot,
            "atm_strike": self.atm, "window_strikes": self.window_strikes,
            "pcr": {"oi_pcr": self.whole.oi_pcr, "vol_pcr": self.whole.vol_pcr,
                    "chg_oi_pcr": self.whole.chg_oi_pcr, "window_oi_pcr": self.windowed.oi_pcr,
                    "window_vol_pcr": self.windowed.vol_pcr, "window_chg_oi_pcr": self.windowed.chg_oi_pcr},
            "sentiment": {"band": bands.band(self.whole.oi_pcr), "bias": bands.bias(self.whole.oi_pcr),
                          "low": bands.low, "high": bands.high, "interpretation": bands.interpretation},
            "totals": {"whole": self.whole.as_dict(), "window": self.windowed.as_dict()},
            "max_pain": self.max_pain, "max_call_oi_strike": self.max_call_oi_strike,
            "max_put_oi_strike": self.max_put_oi_strike,
            "strikes": [_strike_dict(r) for r in chain.rows],
        }


def _strike_dict(row: StrikeRow) -> dict:
    out: dict = {"strike": row.strike}
    for side in ("ce", "pe"):
        leg = getattr(row, side)
        out[side] = None if leg is None else {"name": leg.name, "oi": leg.oi, "prev_oi": leg.prev_oi,
                                              "volume": leg.volume, "ltp": leg.ltp, "iv_pct": leg.iv_pct}
    return out


def summarise(chain: OptionChain, n: int = DEFAULT_WINDOW) -> Summary:
    """PCR over the whole chain and over ATM ± ``n`` strikes, max pain and the OI walls."""
    return Summary(chain, atm_strike(chain), n, pcr(chain.rows), pcr(window(chain, n)), max_pain(chain.rows),
                   _max_oi_strike(chain.rows, "ce"), _max_oi_strike(chain.rows, "pe"))
