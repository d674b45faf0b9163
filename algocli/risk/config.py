"""The ``risk:`` section of a run definition: pre-trade limits, the daily loss halt and the session times.

Every key is optional; a missing key is a limit that is not checked. ``risk: {}`` checks
nothing but still enables the kill switch (``algo halt``) for paper and live runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from algocli.domain.strict import NumbersModel

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class RiskConfig(NumbersModel):
    """Limits checked on every order before the broker sees it, identically in backtest, paper and live."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built when a run has a risk: section

    max_position: PositiveInt | None = Field(
        None, description="largest absolute net position per instrument, in units, summed over all strategies "
                          "(the account's position), counting working orders on the same side")
    max_order_value: PositiveFloat | None = Field(
        None, description="largest order value in rupees: quantity x limit price, or x last close for a market order")
    max_open_orders: PositiveInt | None = Field(None, description="most working orders in the account at once")
    max_orders_per_second: PositiveInt | None = Field(
        None, description="most accepted orders within one second of the engine clock")
    max_orders_per_minute: PositiveInt | None = Field(
        None, description="most accepted orders within one minute of the engine clock")
    max_daily_loss: PositiveFloat | None = Field(
        None, description="rupees; realised + unrealised loss since the start of the IST day that halts trading")
    flatten_on_halt: bool = Field(False, description="on a halt, also close every position with market orders, once")
    entry_cutoff: str | None = Field(
        None, description="HH:MM IST; from then on only orders that reduce a position are allowed")
    square_off: str | None = Field(
        None, description="HH:MM IST; intraday positions are closed once a day at this time and entries denied")
    state_file: Path | None = Field(
        None, description="where the HALTED state is kept (paper and live); default <output dir>/risk_state.json")

    @field_validator("entry_cutoff", "square_off", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            # YAML 1.1 reads an unquoted 15:15 as the base-60 integer 915
            value = f"{value // 60:02d}:{value % 60:02d}"
        if value is not None and not (isinstance(value, str) and _HHMM.match(value)):
            raise ValueError(f"{value!r} is not a time of day; write it as HH:MM in IST, e.g. \"15:15\"")
        return value


def minutes_of(hhmm: str) -> int:
    """``"15:15"`` -> 915: minutes after IST midnight."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def square_off_warning(square_off: str | None, interval_minutes: int) -> str | None:
    """Why ``square_off`` cannot be kept on candles of ``interval_minutes``, or None.

    Session times are judged when a candle closes (``domain.session.decision_lag_ns``), and the
    closing orders fill at the next candle's open. A time inside the day's last candle (15:20 in
    the 15:05-15:30 25-minute candle) is reached only at 15:30, and its orders fill at the next
    session's open: the position is held overnight.
    """
    if square_off is None or interval_minutes >= _SESSION_MINUTES:
        return None
    t = minutes_of(square_off)
    if not _OPEN < t < _CLOSE:
        return None
    start = _OPEN + (t - _OPEN) // interval_minutes * interval_minutes
    if start == t or min(start + interval_minutes, _CLOSE) < _CLOSE:
        return None
    at = f"{start // 60:02d}:{start % 60:02d}"
    return (f"risk.square_off {square_off} falls inside the day's last {interval_minutes}-minute candle "
            f"({at}-15:30): it is reached when that candle closes at 15:30, and its orders fill at the next "
            f"session's open; set it to {at} (a candle's start) to square off the same day")


_OPEN, _CLOSE = 9 * 60 + 15, 15 * 60 + 30  # the regular session, minutes after IST midnight
_SESSION_MINUTES = _CLOSE - _OPEN


__all__ = ["RiskConfig", "minutes_of", "square_off_warning"]
