"""The charge tables: shipped data, a user's own table, and one-line errors for bad rows."""

from __future__ import annotations

import ast
from datetime import date, timedelta
from pathlib import Path

import pytest

from algocli.broker.costs import CostContext
from algocli.domain.instrument import Instrument
from algocli.domain.session import MINUTE_NS, ist_midnight_ns
from algocli.errors import ConfigError, DataError
from algocli.market.charges import BROKERS, STATUTORY, IndianCharges
from algocli.market.tables import COLUMNS, read_rows

HEADER = ",".join(COLUMNS)
INFY = Instrument("NSE:INFY")
NIFTY_FUT = Instrument("NSE:NIFTY 26 JUN 2025 FUT", exchange="NSE", kind="FUT", symbol="NIFTY", lot_size=75)
NIFTY_PE = Instrument("NSE:NIFTY 26 JUN 2025 24000 PE", exchange="NSE", kind="PE", symbol="NIFTY", lot_size=75)


def _ts(day: str) -> int:
    return ist_midnight_ns(date.fromisoformat(day)) + 600 * MINUTE_NS


def _table(tmp_path: Path, *rows: str, name: str = "mine.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return path


def test_shipped_tables_cite_a_public_source_on_every_row() -> None:
    for path in (STATUTORY, *BROKERS.values()):
        rows = read_rows(path, require_source=True)
        assert rows and all(r.source.startswith("https://") for r in rows)


@pytest.mark.parametrize(("kind", "segment", "change"), [
    ("stt", "futures", date(2024, 10, 1)), ("stt", "options", date(2024, 10, 1)),
    ("stt", "futures", date(2026, 4, 1)), ("stt", "options", date(2026, 4, 1)),
    ("exchange_txn", "equity", date(2024, 10, 1)), ("stt_exercise", "options", date(2026, 4, 1)),
])
def test_shipped_rates_change_on_the_published_dates(kind: str, segment: str, change: date) -> None:
    rows = [r for r in read_rows(STATUTORY) if r.kind == kind and r.segment == segment and r.exchange in ("*", "NSE")]
    before = next(r for r in rows if r.start <= change - timedelta(days=1) <= (r.end or date.max))
    after = next(r for r in rows if r.start <= change <= (r.end or date.max))
    assert after.start == change and before.rate != after.rate


def test_a_user_table_sets_brokerage_and_inherits_the_statutory_rates(tmp_path: Path) -> None:
    path = _table(tmp_path,
                  "brokerage,equity_intraday,*,both,flat,10,,,2020-01-01,,,flat 10 per order",
                  "brokerage,futures,*,both,pct_cap,0.05,15,,2020-01-01,,,",
                  "brokerage,options,*,both,zero,0,,,2020-01-01,,,",
                  "# a comment line is skipped",
                  "dp,equity_delivery,*,sell,flat,0,,,2020-01-01,,,my broker charges no DP")
    m = IndianCharges(str(path))
    b = m.breakdown(CostContext(INFY, "INTRADAY", True, 100, 1000.0, _ts("2025-01-15")))
    # flat 10; statutory as shipped (exch 2.97, IPFT 0.10, SEBI 0.10, stamp 3.00);
    # GST 0.18 x (10 + 2.97 + 0.10 + 0.10) = 2.3706 -> 2.37; total 18.54
    assert (b.brokerage, b.exchange_txn, b.stamp, b.gst, b.total) == (10.0, 2.97, 3.0, 2.37, 18.54)
    # 75 x 22,000 = 16,50,000 x 0.05 % = 825 -> capped at 15
    assert m.breakdown(CostContext(NIFTY_FUT, "MARGIN", True, 75, 22000.0, _ts("2025-06-03"))).brokerage == 15.0
    assert m.breakdown(CostContext(NIFTY_PE, "MARGIN", True, 75, 100.0, _ts("2025-06-03"))).brokerage == 0.0
    assert m.breakdown(CostContext(INFY, "CNC", False, 1, 1000.0, _ts("2025-06-03"))).dp == 0.0


@pytest.mark.parametrize(("row", "words"), [
    ("brokerage,futures,*,both,pct,abc,,,2020-01-01,,,", ["row 2", "'rate'", "'abc'", "0.03"]),
    ("brokrage,futures,*,both,pct,0.03,,,2020-01-01,,,", ["row 2", "'kind'", "'brokrage'", "use one of"]),
    ("brokerage,futures,*,both,pct_cap,0.03,,,2020-01-01,,,", ["row 2", "'cap'", "pct_cap", "e.g. 20"]),
    ("brokerage,futures,*,both,flat,20,,,2020-13-01,,,", ["row 2", "'effective_from'", "YYYY-MM-DD"]),
    ("brokerage,futures,NYSE,both,flat,20,,,2020-01-01,,,", ["row 2", "'exchange'", "'NYSE'"]),
    ("brokerage,futures,*,both,flat,20,,,2021-01-01,2020-01-01,,", ["row 2", "effective_to", "before"]),
])
def test_a_bad_row_is_one_line_naming_file_row_field_and_fix(tmp_path: Path, row: str, words: list[str]) -> None:
    path = _table(tmp_path, row)
    with pytest.raises(DataError) as err:
        IndianCharges(str(path))
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message


def test_overlapping_and_gapped_periods_are_rejected_with_the_fix(tmp_path: Path) -> None:
    overlap = _table(tmp_path, "brokerage,futures,*,both,flat,20,,,2020-01-01,2024-12-31,,",
                     "brokerage,futures,*,both,flat,10,,,2024-06-01,,,", name="overlap.csv")
    with pytest.raises(DataError, match=r"row 3: effective_from 2024-06-01 overlaps row 2 .* end row 2 on 2024-05-31"):
        read_rows(overlap)
    gap = _table(tmp_path, "brokerage,futures,*,both,flat,20,,,2020-01-01,2024-05-31,,",
                 "brokerage,futures,*,both,flat,10,,,2024-07-01,,,", name="gap.csv")
    with pytest.raises(DataError, match=r"row 3: .* leaves a gap after row 2 .* start it on 2024-06-01"):
        read_rows(gap)


def test_unknown_column_missing_file_and_unknown_name(tmp_path: Path) -> None:
    bad = tmp_path / "cols.csv"
    bad.write_text("kind,segmnt\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown column 'segmnt'; the header is kind,segment"):
        read_rows(bad)
    with pytest.raises(DataError, match="cannot read the charges table"):
        IndianCharges(str(tmp_path / "missing.csv"))
    with pytest.raises(ConfigError, match="'zerodha' is not dhan, upstox, none or a CSV table"):
        IndianCharges("zerodha")
    with pytest.raises(ConfigError, match="rounding: 'rupee'"):
        IndianCharges("dhan", rounding="rupee")


def test_the_market_package_imports_only_domain_errors_and_the_cost_protocol() -> None:
    allowed = ("algocli.domain", "algocli.errors", "algocli.broker.costs", "algocli.market")
    root = Path(__file__).resolve().parents[2] / "algocli" / "market"
    found = set()
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("algocli"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("algocli"))
    assert found and all(name.startswith(allowed) for name in found), sorted(found)
