"""Keep the C heap from shrinking and growing again between a long run's temporary arrays.

A million-bar run makes thousands of temporary numpy arrays of 0.1-8 MB (indicators, masks,
statistics, the artifacts' text chunks). With glibc's defaults each one that is freed may be
handed back to the kernel (``munmap``, or a trim of the heap top) and the next one faults its
pages in again: writing a 1M-row equity curve took 177k page faults and half its time in the
kernel. Raising the mmap and trim thresholds keeps freed blocks for reuse, which removes
most of them; the peak resident size is unchanged, since that is reached by live arrays.

glibc's ``mallopt``: https://man7.org/linux/man-pages/man3/mallopt.3.html
"""

from __future__ import annotations

import os

__all__ = ["LARGE_RUN_BARS", "keep_heap"]

#: Runs of this many bars or more keep their heap (below it the default costs nothing noticeable).
LARGE_RUN_BARS = 200_000
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_MMAP_BYTES = 32 << 20  # blocks above this still come from mmap (glibc's own dynamic ceiling)
_TRIM_BYTES = 256 << 20
_done = False


def keep_heap(bars: int) -> bool:
    """Raise glibc's mmap and trim thresholds for a run of ``bars`` bars, once per process.

    Returns whether they were raised: False below ``LARGE_RUN_BARS``, off glibc, or with
    ``ALGOCLI_KEEP_HEAP=0``. Forked children (the artifact writer, sweep workers) inherit it.
    """
    global _done
    if _done or bars < LARGE_RUN_BARS or os.environ.get("ALGOCLI_KEEP_HEAP", "1") == "0":
        return _done
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # present in glibc only
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES))
    return _done
