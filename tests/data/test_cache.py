"""The memory-mapped CSV cache: hits equal a fresh parse, edits invalidate, read-only folders and races are safe."""

from __future__ import annotations

import csv
import ctypes
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from algocli.data import cache as cache_mod
from algocli.data import csv_feed
from algocli.data.cache import CACHE_DIR, CsvCache, file_sha256
from algocli.data.csv_feed import CsvFeed, CsvFeedConfig, load_csv
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.errors import DataError
from helpers import mapped

ROOT = Path(__file__).resolve().parents[2]
ROWS = 6000  # about 330 KB: above cache.MIN_BYTES


def write_bars(path: Path, rows: int = ROWS, oi: bool = False, start: str = "2024-01-15") -> Path:
    """One-minute bars over weekday sessions from 09:15 IST (2024-01-22 and 01-26 are NSE holidays)."""
    rng = np.random.default_rng(5)
    close = 1000 + np.cumsum(rng.integers(-4, 5, rows)) * 0.05
    day, minute, stamps = datetime.fromisoformat(start), 0, []
    while len(stamps) < rows:
        if day.weekday() < 5:
            stamps.append(day + timedelta(hours=9, minutes=15 + minute))
            minute += 1
        if minute == 375 or day.weekday() >= 5:
            day, minute = day + timedelta(days=1), 0
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["timestamp", "open", "high", "low", "close", "volume"] + (["oi"] if oi else []))
        prev = close[0]
        for i, (ts, c) in enumerate(zip(stamps, close)):
            o = prev
            row = [ts.strftime("%Y-%m-%d %H:%M:%S"), f"{o:.2f}", f"{max(o, c) + 0.5:.2f}", f"{min(o, c) - 0.5:.2f}",
                   f"{c:.2f}", str(10_000 + i % 977)]
            out.writerow(row + ([str(50_000 + i)] if oi else []))
            prev = c
    return path


def parse_with_csv_module(path: Path) -> dict[str, np.ndarray]:
    """The file read independently of the feed: naive times are IST."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {"ts": np.array([np.datetime64(r["timestamp"], "ns").astype(np.int64) for r in rows]) - IST_OFFSET_NS}
    for name in rows[0]:
        if name != "timestamp":
            out[name] = np.array([float(r[name]) for r in rows])
    return out


def entries(folder: Path) -> list[str]:
    root = folder / CACHE_DIR
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def assert_same(bars, expected: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(bars.ts, expected["ts"])
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(bars, name), expected[name])
    if "oi" in expected:
        np.testing.assert_array_equal(bars.oi, expected["oi"])
    else:
        assert bars.oi is None


@pytest.fixture
def parses(monkeypatch) -> list[Path]:
    """The files ``load_csv`` really parsed (the real parser runs; this only counts)."""
    seen: list[Path] = []
    real = csv_feed._read_columns

    def counted(path, names):
        seen.append(path)
        return real(path, names)

    monkeypatch.setattr(csv_feed, "_read_columns", counted)
    return seen


@pytest.mark.parametrize("oi", [False, True])
def test_a_hit_maps_arrays_equal_to_a_fresh_parse(tmp_path, oi, parses):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv", oi=oi)
    expected = parse_with_csv_module(path)
    first = load_csv(path, "NSE_EQ:1333")
    assert [n for n in entries(tmp_path) if n.endswith(".npy")] == [f"NSE_EQ_1333-{file_sha256(path)[:24]}.npy"]
    second = load_csv(path, "NSE_EQ:1333")
    assert parses == [path]  # the second read did not parse
    for bars in (first, second):  # the first read hands out the entry it wrote, so even it shares pages
        assert all(mapped(a) for a in (bars.ts, bars.open, bars.close, bars.volume))
        assert not bars.close.flags.writeable
        assert_same(bars, expected)


def test_small_files_and_cache_false_write_no_entry(tmp_path):
    small = write_bars(tmp_path / "NSE_EQ_1.csv", rows=300)
    big = write_bars(tmp_path / "NSE_EQ_2.csv")
    load_csv(small, "NSE_EQ:1")
    load_csv(big, "NSE_EQ:2", cache=False)
    assert entries(tmp_path) == []


@pytest.mark.parametrize("trust_stat", [False, True], ids=["hashed", "stat-trusted"])
def test_an_edit_in_place_with_the_same_size_and_mtime_invalidates(tmp_path, monkeypatch, trust_stat):
    if trust_stat:  # the file counts as quiet at once, so the second read trusts the stored stat
        monkeypatch.setattr(cache_mod, "HOT_NS", 0)
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    time.sleep(0.05)
    load_csv(path, "NSE_EQ:1333")
    assert mapped(load_csv(path, "NSE_EQ:1333").close)
    meta = json.loads((tmp_path / CACHE_DIR / "NSE_EQ_1333.json").read_text()) if trust_stat else None
    assert (meta is not None) == trust_stat
    before = os.stat(path)
    text = path.read_text()
    line = text.splitlines()[100]
    volume = line.rsplit(",", 1)[1]
    changed = line.rsplit(",", 1)[0] + "," + ("1" if volume[0] != "1" else "2") + volume[1:]
    with open(path, "r+") as fh:  # rewrite the bytes in place: same inode, same size
        fh.write(text.replace(line, changed, 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    bars = load_csv(path, "NSE_EQ:1333")
    assert bars.volume[99] == float(changed.rsplit(",", 1)[1]) != float(volume)
    assert_same(bars, parse_with_csv_module(path))
    assert mapped(load_csv(path, "NSE_EQ:1333").volume)  # the new contents are cached in turn
    assert len([n for n in entries(tmp_path) if n.endswith(".npy")]) == 1  # the old entry is gone


def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    load_csv(path, "NSE_EQ:1333")
    entry = next((tmp_path / CACHE_DIR).glob("*.npy"))
    entry.write_bytes(entry.read_bytes()[:1000])  # cut short, as a full disk leaves it
    assert_same(load_csv(path, "NSE_EQ:1333"), parse_with_csv_module(path))


def test_checks_still_apply_on_a_hit(tmp_path):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")  # 2024-01-22 and 2024-01-26 were NSE holidays
    feed = CsvFeed(CsvFeedConfig(path=tmp_path, allow_off_session=True))
    warnings: list[str] = []
    feed.load(["NSE_EQ:1333"], Interval.MINUTE_1, warn=warnings.append)
    assert any("kept" in w for w in warnings)
    assert entries(tmp_path)
    errors = []
    for cache in (True, False):
        strict = CsvFeed(CsvFeedConfig(path=tmp_path, cache=cache))
        with pytest.raises(DataError) as info:
            strict.load(["NSE_EQ:1333"], Interval.MINUTE_1)
        errors.append(str(info.value))
    assert "holiday" in errors[0] and errors[0] == errors[1]


def test_unsorted_rows_are_sorted_and_warned_about_on_every_read(tmp_path):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    lines = path.read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    path.write_text("\n".join(lines) + "\n")
    for _ in range(2):
        said: list[str] = []
        bars = load_csv(path, "NSE_EQ:1333", warn=said.append)
        assert len(said) == 1 and "not in time order" in said[0]
        assert bool((np.diff(bars.ts) > 0).all())
    hit = CsvCache(path).load()  # the second read came from the entry, which keeps the file's order
    assert hit is not None and not hit.in_order


def test_a_file_that_fails_the_value_checks_is_never_cached(tmp_path):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    lines = path.read_text().splitlines()
    fields = lines[10].split(",")
    fields[2], fields[3] = fields[3], fields[2]  # high below low
    lines[10] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    for _ in range(2):
        with pytest.raises(DataError, match="below low"):
            load_csv(path, "NSE_EQ:1333")
    assert not [n for n in entries(tmp_path) if n.endswith(".npy")]


def test_a_process_takes_a_quiet_files_digest_from_memory_after_the_first_look(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "HOT_NS", 0)  # quiet at once
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    first = CsvCache(path).digest()
    (tmp_path / CACHE_DIR / "NSE_EQ_1333.json").unlink(missing_ok=True)  # no stored proof, and no new hash

    def no_hash(_):
        raise AssertionError("hashed again")

    with monkeypatch.context() as m:
        m.setattr(cache_mod, "_hash", no_hash)
        assert CsvCache(path).digest() == first
    path.write_text(path.read_text().replace("\n", "\r\n", 1))  # a changed file is hashed again
    assert CsvCache(path).digest() != first


def test_file_sha256_equals_hashing_the_bytes(tmp_path):
    import hashlib

    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    load_csv(path, "NSE_EQ:1333")
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


CHILD = """
import hashlib, os, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from helpers import mapped
from pathlib import Path
from algocli.data.csv_feed import load_csv
path = Path(sys.argv[1])
go = Path(sys.argv[2]) if len(sys.argv) > 2 else None
while go is not None and not go.exists():
    pass
sums = []
for _ in range(2):
    bars = load_csv(path, "NSE_EQ:1333")
    sums.append(hashlib.sha256(b"".join(a.tobytes() for a in (bars.ts, bars.open, bars.close, bars.volume))).hexdigest())
try:
    open(path.parent / "probe", "w").close()
    print("writable")
except PermissionError:
    print("denied")
print(sums[0] == sums[1], sums[0], mapped(bars.close))
"""


def _digest(bars) -> str:
    import hashlib

    return hashlib.sha256(b"".join(a.tobytes() for a in (bars.ts, bars.open, bars.close, bars.volume))).hexdigest()


def _without_dac_override() -> None:
    """In the child: drop root's power to ignore file permissions, so a mode-0555 folder is read-only."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone from the exec'd python too
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("built_before", [False, True])
def test_a_read_only_data_folder_skips_the_cache_or_reads_the_one_it_has(tmp_path, built_before):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write_bars(folder / "NSE_EQ_1333.csv")
    expected = _digest(load_csv(path, "NSE_EQ:1333", cache=built_before))
    for p in (folder, *folder.glob(f"{CACHE_DIR}/")):
        p.chmod(0o555)
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), tests=str(ROOT / "tests")), str(path)],
                              capture_output=True, text=True, timeout=120,
                              preexec_fn=_without_dac_override if os.geteuid() == 0 else None)
    finally:
        for p in (folder, *folder.glob(f"{CACHE_DIR}/")):
            p.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    # really read-only; both reads agree with a parse; mapped only from an entry built before
    assert proc.stdout.split() == ["denied", "True", expected, str(built_before)]
    assert (folder / CACHE_DIR).exists() == built_before


def test_two_processes_building_at_once_leave_one_valid_entry(tmp_path):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv", rows=30_000)
    expected = _digest(load_csv(path, "NSE_EQ:1333", cache=False))
    go = tmp_path / "go"
    child = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"))
    children = [subprocess.Popen([sys.executable, "-c", child, str(path), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.0)  # both are importing, then spinning on the start file
    go.touch()
    outs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outs):
        assert child.returncode == 0, err
        assert out.split()[1:] == ["True", expected, "True"]
    names = entries(tmp_path)
    assert [n for n in names if n.endswith(".npy")] == [f"NSE_EQ_1333-{file_sha256(path)[:24]}.npy"]
    assert not [n for n in names if n.endswith(".tmp")]
    bars = load_csv(path, "NSE_EQ:1333")
    assert mapped(bars.close) and _digest(bars) == expected


def test_the_disable_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("ALGOCLI_NO_CSV_CACHE", "1")
    path = write_bars(tmp_path / "NSE_EQ_1333.csv")
    load_csv(path, "NSE_EQ:1333")
    assert CsvCache(path).load() is None and entries(tmp_path) == []


def test_gitignore_names_the_cache_folder():
    assert f"{CACHE_DIR}/" in (ROOT / ".gitignore").read_text().split()


BIG_ROWS = 22_000  # about 1.2 MB: above csv_feed.PLAIN_READ_MAX_BYTES, so pandas parses it


def test_a_big_first_read_parses_in_a_child_and_maps_its_entry(tmp_path):
    """The parse's peak and pandas stay out of the reading process, which gets the mapped entry."""
    path = write_bars(tmp_path / "NSE_EQ_1333.csv", rows=BIG_ROWS, oi=True)
    assert path.stat().st_size > csv_feed.PLAIN_READ_MAX_BYTES
    expected = parse_with_csv_module(path)
    code = ("import sys, os, resource; from algocli.data.csv_feed import CsvFeed, CsvFeedConfig; "
            f"feed = CsvFeed(CsvFeedConfig(path={str(tmp_path)!r}, allow_off_session=True)); "
            "b = feed.load(['NSE_EQ:1333'], '1m', warn=lambda _: None)['NSE_EQ:1333']; import numpy as np; "
            f"np.save({str(tmp_path / 'out.npy')!r}, np.vstack([b.ts.astype(float), b.open, b.high, b.low, b.close, "
            "b.volume, b.oi])); print('pandas' in sys.modules, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True"]  # no pandas here; a child did the work
    got = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(got[0].astype(np.int64), expected["ts"])
    for k, name in enumerate(("open", "high", "low", "close", "volume", "oi"), 1):
        np.testing.assert_array_equal(got[k], expected[name])
    assert [n for n in entries(tmp_path) if n.endswith(".npy")] == [f"NSE_EQ_1333-{file_sha256(path)[:24]}.npy"]


def test_a_big_bad_file_gets_its_error_from_this_process_and_no_entry(tmp_path):
    path = write_bars(tmp_path / "NSE_EQ_1333.csv", rows=BIG_ROWS)
    lines = path.read_text().splitlines()
    fields = lines[20_001].split(",")
    fields[4] = "abc"  # a close that is not a number
    lines[20_001] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    feed = CsvFeed(CsvFeedConfig(path=tmp_path, allow_off_session=True))
    with pytest.raises(DataError, match=r"NSE_EQ_1333.csv, row 20002: close is not a number \('abc'\)"):
        feed.load(["NSE_EQ:1333"], "1m")  # line 20,002 of the file, the header being line 1
    assert not [n for n in entries(tmp_path) if n.endswith(".npy")]
