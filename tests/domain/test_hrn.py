"""Human-readable names: canonical spelling, and the forgiving reader."""

from datetime import date

import pytest

from algocli.domain.hrn import derivative_hrn, normalise, parse_contract, plain_hrn


def test_canonical_names():
    assert plain_hrn("nse", "hdfcbank") == "NSE:HDFCBANK"
    assert plain_hrn("NSE", "Nifty  50") == "NSE:NIFTY 50"
    assert derivative_hrn("NSE", "nifty", date(2024, 12, 26), "CE", 24000.0) == "NSE:NIFTY 26 DEC 2024 24000 CE"
    assert derivative_hrn("NSE", "NIFTY", date(2025, 1, 2), "PE", 102.5) == "NSE:NIFTY 02 JAN 2025 102.5 PE"
    assert derivative_hrn("NSE", "BANKNIFTY", date(2025, 12, 30), "FUT", None) == "NSE:BANKNIFTY 30 DEC 2025 FUT"


@pytest.mark.parametrize("text, year, kind, strike", [
    ("NSE:NIFTY 26 DEC 24000 CE", None, "CE", 24000.0),
    ("nse : nifty  26 dec 2024 24000 call", 2024, "CE", 24000.0),
    ("NSE:NIFTY 26 DEC 24 24000 PUT", 2024, "PE", 24000.0),
    ("NSE:NIFTY 26 DEC 2024 FUT", 2024, "FUT", None),
])
def test_contracts_are_read_however_typed(text, year, kind, strike):
    c = parse_contract(text)
    assert (c.exchange, c.underlying, c.day, c.month, c.year, c.kind, c.strike) == ("NSE", "NIFTY", 26, 12, year, kind,
                                                                                   strike)


@pytest.mark.parametrize("text", ["NSE:HDFCBANK", "NSE:NIFTY 50", "NSE:NIFTY 32 DEC 24000 CE",
                                  "NSE:NIFTY 26 DEK 24000 CE", "NIFTY 26 DEC 24000 CE", "NSE:NIFTY 26 DEC 24000 XX"])
def test_non_contracts_are_not_read_as_contracts(text):
    assert parse_contract(text) is None


def test_normalise():
    assert normalise(" nse:  nifty   bank ") == "NSE:NIFTY BANK"
