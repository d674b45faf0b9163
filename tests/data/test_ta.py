"""TA-Lib is imported without pandas and still answers numpy with numpy."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import numpy as np
from algocli.data.ta import talib_abstract, talib_module
talib = talib_module()
abstract = talib_abstract()
assert "pandas" not in sys.modules and "polars" not in sys.modules, "hidden libraries were imported"
assert sys.modules.get("pandas", 0) == 0, "the hiding entry was left behind"
close = np.arange(1.0, 31.0)
out = talib.SMA(close, timeperiod=5)
assert type(out) is np.ndarray and out[4] == 3.0 and np.isnan(out[3])
assert type(abstract.Function("SMA")({"close": close}, timeperiod=5)) is np.ndarray
import pandas as pd  # a later import of pandas works and TA-Lib keeps answering numpy with numpy
assert pd.Series([1.0]).sum() == 1.0
assert type(talib.RSI(close)) is np.ndarray and type(talib_module().EMA(close)) is np.ndarray
print("ok")
"""


def test_talib_is_imported_without_pandas_and_works_on_numpy():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
