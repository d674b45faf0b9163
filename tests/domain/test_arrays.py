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


@pytest.mark.parametrize("values", [
    np.array([5, -3, 5, 10**6, -3], dtype=np.int64),  # dense: counted, not sorted
    np.array([2**62, -(2**62), 0, 2**62], dtype=np.int64),  # a range too wide to count: sorted
    np.array([7, 7, 7], dtype=np.uint8), np.array([3, 0, 2**64 - 1, 3], dtype=np.uint64),
    np.arange(100_000, dtype=np.int32)[::-1] % 977,
    np.array([-100, 100, 0, -100], dtype=np.int8),  # the shift would overflow eight bits
    np.array([2**63 + 5, 2**63 + 1, 2**63 + 5], dtype=np.uint64),  # beyond int64: sorted
])
def test_unique_counts_dense_integers_and_sorts_the_rest_alike(values):
    got, inverse = unique(values, return_inverse=True)
    want, want_inverse = np.unique(values, return_inverse=True)
    assert got.dtype == values.dtype and np.array_equal(got, want)
    assert np.array_equal(inverse, want_inverse)


def test_they_do_not_import_numpy_ma():
    code = ("import sys; import numpy as np; from algocli.domain.arrays import unique, union, setdiff; "
            "unique(np.array([3, 1, 3]), return_inverse=True); union([1], [2]); setdiff([1, 2], [2]); "
            "print('numpy.ma' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
