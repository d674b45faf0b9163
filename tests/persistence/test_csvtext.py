"""The array-built CSV text gives exactly the bytes of the per-value Python formatting it replaces."""

from __future__ import annotations

import csv
import io

import numpy as np

from algocli.persistence.artifacts import _no_negative_zero, ist_strings, write_table
from algocli.persistence.csvtext import fixed2_bytes, ist_bytes, mapped_text, quoted, rows_bytes


def _texts(matrix: np.ndarray) -> list[str]:
    return [bytes(row[row != 0]).decode() for row in matrix]


def test_fixed2_matches_printf_on_ties_signs_and_large_values():
    rng = np.random.default_rng(3)
    awkward = [0.0, -0.0, 0.005, -0.005, 0.015, 0.025, 1.005, 2.675, -2.675, 0.004999, -0.004999, 1e-9, -1e-9,
               9.995, 99.995, -99.995, 1234567.125, 123456789.995, 0.125, -0.125, 5e9 + 0.005]
    values = np.r_[awkward, rng.normal(0, 1e6, 20_000), np.round(rng.normal(0, 1e4, 5000), 3),
                   rng.integers(-10**6, 10**6, 5000) * 0.005]
    expected = ["%.2f" % v for v in _no_negative_zero(values).tolist()]
    assert _texts(fixed2_bytes(values)) == expected


def test_fixed2_leaves_what_it_cannot_write_exactly_to_printf():
    assert fixed2_bytes(np.array([1.0, np.nan])) is None
    assert fixed2_bytes(np.array([1.0, 2e13])) is None


def test_ist_bytes_match_ist_strings_across_days_and_centuries():
    rng = np.random.default_rng(5)
    minutes = (np.arange(5000, dtype=np.int64) * 60 + 1_577_850_300) * 10**9
    scattered = np.sort(rng.integers(-2 * 10**18, 9 * 10**18, 3000)) // 10**9 * 10**9
    for ns in (minutes, scattered):
        assert _texts(ist_bytes(ns)) == ist_strings(ns).tolist()
    assert ist_bytes(np.array([1_577_850_300_500_000_000])) is None  # a fraction of a second: formatted elsewhere


def test_rows_are_joined_with_commas_and_newlines():
    ns = np.array([1_577_850_300, 1_577_850_360], dtype=np.int64) * 10**9
    text = rows_bytes([ist_bytes(ns), fixed2_bytes(np.array([1.5, -2.0]))]).decode()
    assert text == "2020-01-01T09:15:00+05:30,1.50\n2020-01-01T09:16:00+05:30,-2.00\n"


def test_mapped_text_formats_each_distinct_value_once():
    calls = []

    def fmt(v):
        calls.append(v)
        return f"<{v}>"

    assert mapped_text(np.array([3, 1, 3, 3, 1]), fmt) == ["<3>", "<1>", "<3>", "<3>", "<1>"]
    assert sorted(calls) == [1, 3]


def test_tables_are_written_as_csv_writer_writes_them(tmp_path):
    columns = {
        "text": ["plain", "with,comma", 'a "quote"', "line\nbreak", "cr\rhere", "", "plain"],
        "float": [0.1, -0.0, 0.0, 1e16, float("nan"), 2.5, 0.1],
        "int": [1, -2, 3, 10**12, 0, 5, 1],
        "mixed": ["", 1.25, None, "x,y", 3, 0.0, -0.0],
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*columns.values()))
    write_table(tmp_path / "t.csv", columns)
    assert (tmp_path / "t.csv").read_bytes().decode("utf-8") == buf.getvalue()
    assert quoted(["a", "b,c"]) == ["a", '"b,c"']
