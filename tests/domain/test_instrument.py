"""The one instrument model: segment from exchange and kind, options, guesses from a name."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

import algocli
from algocli.domain import models
from algocli.domain.instrument import Instrument
from algocli.instruments import Instrument as MasterInstrument
from algocli.instruments.model import Instrument as ModelInstrument


def test_there_is_one_instrument_class():
    assert algocli.Instrument is models.Instrument is Instrument is MasterInstrument is ModelInstrument


@pytest.mark.parametrize("exchange, kind, option_type, segment", [
    ("NSE", "EQ", None, "NSE_EQ"),
    ("BSE", "EQ", None, "BSE_EQ"),
    ("NSE", "FUT", None, "NSE_FNO"),
    ("NSE", "OPT", "CE", "NSE_FNO"),
    ("BSE", "OPT", "PE", "BSE_FNO"),
    ("NSE", "CUR", None, "NSE_CURRENCY"),
    ("BSE", "CUR", "CE", "BSE_CURRENCY"),
    ("MCX", "FUT", None, "MCX_COMM"),
    ("MCX", "OPT", "CE", "MCX_COMM"),
    ("NSE", "INDEX", None, "NSE_INDEX"),
])
def test_segment_comes_from_exchange_and_kind(exchange, kind, option_type, segment):
    inst = Instrument(f"{exchange}:X", exchange, kind, "X", option_type=option_type)
    assert inst.segment == segment


def test_segment_is_never_read_from_a_name_or_an_id():
    assert Instrument("NSE:HDFCBANK", "NSE", "EQ", "HDFCBANK").segment == "NSE_EQ"  # the name's prefix is "NSE"
    fut = Instrument("NSE:NIFTY 26 DEC 2024 FUT", "NSE", "FUT", "NIFTY", dhan_id="NSE_EQ:1")
    assert fut.segment == "NSE_FNO"


def test_an_option_spelled_as_the_master_spells_it():
    ce = Instrument("NSE:NIFTY 26 DEC 2024 24000 CE", "NSE", "CE", "NIFTY", expiry=date(2024, 12, 26),
                    strike=24000.0, lot_size=75)
    assert (ce.kind, ce.option_type, ce.contract, ce.is_option, ce.is_derivative) == ("OPT", "CE", "CE", True, True)
    assert ce == Instrument(ce.hrn, "NSE", "OPT", "NIFTY", expiry=date(2024, 12, 26), strike=24000.0, lot_size=75,
                            option_type="CE")
    assert Instrument("NSE:USDINR 27 DEC 2024 FUT", "NSE", "CUR", "USDINR").contract == "FUT"
    assert Instrument("NSE:HDFCBANK", "NSE", "EQ", "HDFCBANK").contract == "EQ"


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "XX"}, "kind 'XX' is not one of"),
    ({"kind": "OPT"}, "an option needs option_type CE or PE"),
    ({"kind": "EQ", "option_type": "CE"}, "option_type CE on a EQ instrument"),
    ({"kind": "OPT", "option_type": "CALL"}, "option_type 'CALL' is not CE or PE"),
])
def test_kinds_and_option_types_that_do_not_fit_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Instrument("NSE:X", "NSE", symbol="X", **kwargs)


def test_it_is_frozen_and_slotted():
    inst = Instrument("NSE:HDFCBANK", "NSE", "EQ", "HDFCBANK")
    with pytest.raises(dataclasses.FrozenInstanceError):
        inst.lot_size = 2
    assert not hasattr(inst, "__dict__")
    assert {inst: 1}[Instrument("NSE:HDFCBANK", "NSE", "EQ", "HDFCBANK")] == 1


def test_every_fact_the_engine_and_the_cost_model_read_is_there():
    names = {f.name for f in dataclasses.fields(Instrument)}
    assert {"hrn", "exchange", "kind", "lot_size", "tick_size", "expiry", "strike", "option_type", "freeze_quantity",
            "dhan_id", "dhan_instrument", "upstox_key", "isin", "token"} <= names


@pytest.mark.parametrize("name, exchange, kind, segment, extra", [
    ("NSE:HDFCBANK", "NSE", "EQ", "NSE_EQ", {"symbol": "HDFCBANK"}),
    ("BSE:RELIANCE", "BSE", "EQ", "BSE_EQ", {"symbol": "RELIANCE"}),
    ("HDFCBANK", "NSE", "EQ", "NSE_EQ", {"symbol": "HDFCBANK"}),
    ("NSE_EQ:1333", "NSE", "EQ", "NSE_EQ", {"dhan_id": "NSE_EQ:1333"}),
    ("NSE_FNO:35006", "NSE", "FUT", "NSE_FNO", {"dhan_id": "NSE_FNO:35006"}),
    ("BSE_EQ|INE002A01018", "BSE", "EQ", "BSE_EQ", {"upstox_key": "BSE_EQ|INE002A01018"}),
    ("NCD_FO|1234", "NSE", "CUR", "NSE_CURRENCY", {"upstox_key": "NCD_FO|1234"}),
    ("MCX_FO|426262", "MCX", "FUT", "MCX_COMM", {}),
    ("IDX_I:13", "NSE", "INDEX", "NSE_INDEX", {}),
    ("NSE:NIFTY 26 DEC 2024 24000 CE", "NSE", "OPT", "NSE_FNO",
     {"option_type": "CE", "strike": 24000.0, "expiry": date(2024, 12, 26), "symbol": "NIFTY"}),
    ("NSE:BANKNIFTY 24 DEC 2024 FUT", "NSE", "FUT", "NSE_FNO", {"expiry": date(2024, 12, 24), "strike": None}),
])
def test_from_name_reads_what_the_name_says(name, exchange, kind, segment, extra):
    inst = Instrument.from_name(name)
    assert (inst.hrn, inst.exchange, inst.kind, inst.segment) == (name, exchange, kind, segment)
    assert {k: getattr(inst, k) for k in extra} == extra
    assert (inst.lot_size, inst.tick_size) == (1, 0.05)


def test_the_bare_name_constructor_still_builds_engine_metadata():
    assert Instrument("NSE:HDFCBANK") == Instrument.from_name("NSE:HDFCBANK")
    assert Instrument("NSE:HDFCBANK").display_name == "NSE:HDFCBANK"
