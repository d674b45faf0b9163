"""The array-built CSV text gives exactly the bytes of the per-value Python formatting it replaces."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from algocli.persistence.artifacts import _no_negative_zero, ist_strings, write_table
from algocli.persistence.csvtext import (
    fixed_bytes, ist_bytes, mapped_matrix, quoted, rounded_bytes, rows_bytes, text_matrix,
)


def _texts(matrix: np.ndarray) -> list[str]:
    return [bytes(row[row != 0]).decode() for row in matrix]


def test_fixed_matches_printf_on_ties_signs_and_large_values():
    rng = np.random.default_rng(3)
    awkward = [0.0, -0.0, 0.005, -0.005, 0.015, 0.025, 1.005, 2.675, -2.675, 0.004999, -0.004999, 1e-9, -1e-9,
               9.995, 99.995, -99.995, 1234567.125, 123456789.995, 0.125, -0.125, 5e9 + 0.005]
    values = np.r_[awkward, rng.normal(0, 1e6, 20_000), np.round(rng.normal(0, 1e4, 5000), 3),
                   rng.integers(-10**6, 10**6, 5000) * 0.005]
    expected = ["%.2f" % v for v in _no_negative_zero(values).tolist()]
    assert _texts(fixed_bytes(values)) == expected


@pytest.mark.parametrize("places", [2, 4])
def test_rounded_matches_repr_of_round_on_ties_signs_and_trailing_zeros(places):
    rng = np.random.default_rng(places)
    awkward = [0.0, -0.0, 0.005, -0.005, 0.015, 2.675, -2.675, 1.005, 0.00005, -0.00005, 0.12345, 0.1, 100.0,
               -100.5, 1e-9, -1e-9, 99.995, 0.00015, 1234567.125, 123456.78905, 5e7 + 0.00005]
    values = np.r_[awkward, rng.normal(0, 1e6, 20_000), np.round(rng.normal(0, 1e3, 5000), places + 1),
                   rng.integers(-10**6, 10**6, 5000) * 0.05, rng.integers(-10**4, 10**4, 5000) * 0.0025]
    assert _texts(rounded_bytes(values, places)) == [repr(round(v, places) + 0.0) for v in values.tolist()]


def test_fixed_leaves_what_it_cannot_write_exactly_to_printf():
    assert fixed_bytes(np.array([1.0, np.nan])) is None
    assert fixed_bytes(np.array([1.0, 2e13])) is None


def test_ist_bytes_match_ist_strings_across_days_and_centuries():
    rng = np.random.default_rng(5)
    minutes = (np.arange(5000, dtype=np.int64) * 60 + 1_577_850_300) * 10**9
    scattered = np.sort(rng.integers(-2 * 10**18, 9 * 10**18, 3000)) // 10**9 * 10**9
    for ns in (minutes, scattered):
        assert _texts(ist_bytes(ns)) == ist_strings(ns).tolist()
    assert ist_bytes(np.array([1_577_850_300_500_000_000])) is None  # a fraction of a second: formatted elsewhere


def test_rows_are_joined_with_commas_and_newlines():
    ns = np.array([1_577_850_300, 1_577_850_360], dtype=np.int64) * 10**9
    text = rows_bytes([ist_bytes(ns), fixed_bytes(np.array([1.5, -2.0]))]).decode()
    assert text == "2020-01-01T09:15:00+05:30,1.50\n2020-01-01T09:16:00+05:30,-2.00\n"


def test_mapped_matrix_formats_each_distinct_value_once_and_quotes_it():
    calls = []

    def fmt(v):
        calls.append(v)
        return f"<{v}>" if v != 2 else "a,b"

    assert _texts(mapped_matrix(np.array([3, 1, 3, 2, 1]), fmt)) == ["<3>", "<1>", "<3>", '"a,b"', "<1>"]
    assert sorted(calls) == [1, 2, 3]


def test_text_matrix_keeps_utf8_and_empty_fields():
    texts = ["NIFTY 50", "", "₹ 1,00,000", "Ångström"]
    assert _texts(text_matrix(texts)) == texts
    assert text_matrix([]).shape == (0, 1)


def test_tables_are_written_as_csv_writer_writes_them(tmp_path):
    columns = {
        "text": ["plain", "with,comma", 'a "quote"', "line\nbreak", "cr\rhere", "", "plain"],
        "float": [0.1, -0.0, 0.0, 1e16, float("nan"), 2.5, 0.1],
        "int": [1, -2, 3, 10**12, 0, 5, 1],
        "mixed": ["", 1.25, None, "x,y", 3, 0.0, -0.0],
        "zeros": [0.0, -0.0, 0.0, 1.5, -0.0, 0.0, 2.0],
        "unicode": ["₹", "Ångström", "", "a,₹", "x", "y", "₹"],
        "bool_int": [True, 1, 0, False, 2, 3, 1],
        "repeats": [0.1 + 0.2, 0.3, 0.1 + 0.2, 0.3, 1e-7, 1e22, 0.3],
        "one_text": ["a,b"] * 7,
        "one_int": [-4] * 7,
        "wide_int": [2**70, -(2**65), 3, 0, 2**63, -1, 3],
        "zero_floats": [0.0] * 6 + [-0.0],
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*columns.values()))
    write_table(tmp_path / "t.csv", columns)
    assert (tmp_path / "t.csv").read_bytes().decode("utf-8") == buf.getvalue()
    assert quoted(["a", "b,c"]) == ["a", '"b,c"']
