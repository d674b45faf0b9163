"""``algocli.domain.arrays``: the same answers as numpy's set routines, without ``numpy.ma``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from algocli.domain.arrays import setdiff, union, unique


@pytest.mark.parametrize("seed", range(5))
def test_unique_union_and_setdiff_equal_numpys(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-50, 50, size=rng.integers(0, 200))
    b = rng.integers(-50, 50, size=rng.integers(0, 200))
    values, inverse = unique(a, return_inverse=True)
    want_values, want_inverse = np.unique(a, return_inverse=True)
    assert np.array_equal(values, want_values) and np.array_equal(inverse, want_inverse)
    assert np.array_equal(values[inverse], a)
    assert np.array_equal(union(a, b), np.union1d(a, b))
    assert np.array_equal(setdiff(a, b), np.setdiff1d(a, b))
    floats = rng.normal(size=50).round(1)
    assert np.array_equal(unique(floats), np.unique(floats))


def test_they_do_not_import_numpy_ma():
    code = ("import sys; import numpy as np; from algocli.domain.arrays import unique, union, setdiff; "
            "unique(np.array([3, 1, 3]), return_inverse=True); union([1], [2]); setdiff([1, 2], [2]); "
            "print('numpy.ma' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
