"""``Bars``: loaded columns of one instrument, shared vocabulary below data/, broker/ and analytics/."""

from __future__ import annotations

import numpy as np

from algocli.data import history
from algocli.domain.bars import Bars


def test_slice_is_a_view_of_every_column_including_oi():
    n = np.arange(5, dtype=np.float64)
    bars = Bars("NSE:X", np.arange(5, dtype=np.int64), n, n + 1, n - 1, n, n * 10, oi=n * 100)
    part = bars.slice(1, 3)
    assert len(part) == 2 and part.instrument == "NSE:X"
    assert part.ts.tolist() == [1, 2] and part.volume.tolist() == [10.0, 20.0] and part.oi.tolist() == [100.0, 200.0]
    assert np.shares_memory(part.close, bars.close)
    assert Bars("NSE:X", bars.ts, n, n, n, n, n).slice(0, 2).oi is None


def test_the_old_import_path_is_the_same_class():
    assert history.Bars is Bars
