"""``algo download-data`` as a new user's first command: no instrument list cached yet.

The list is downloaded (from a loopback server holding the brokers' files) while the command
runs, before its own event loop starts: downloading it from inside that loop failed with
"asyncio.run() cannot be called from a running event loop". The other download tests hand the
command a ready-made list and could not see that.
"""

from __future__ import annotations

from cli.download_support import HistoryServer
from instruments.files import dhan_csv, serving, upstox_gz


def test_the_first_download_fetches_the_instrument_lists_then_the_candles(cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env; the default --out lands here
    monkeypatch.setenv("ALGO_INSTRUMENTS_DIR", str(tmp_path / "lists"))  # nothing cached
    with HistoryServer() as srv, serving({"/dhan.csv": dhan_csv(), "/upstox.json.gz": upstox_gz()}) as lists:
        monkeypatch.setenv("DHAN_SCRIP_MASTER_URL", lists.url("/dhan.csv"))
        monkeypatch.setenv("UPSTOX_INSTRUMENTS_URL", lists.url("/upstox.json.gz"))
        for key, value in srv.env("dhan").items():
            monkeypatch.setenv(key, value)
        r = cli("download-data", "NSE:HDFCBANK", "--interval", "1d", "--from", "2024-06-03", "--to", "2024-06-14",
                "--source", "dhan", "-q")
    assert r.code == 0, r.err
    assert sorted(lists.hits) == ["/dhan.csv", "/upstox.json.gz"]
    assert len(srv.requests("dhan:historical")) == 1
    rows = (tmp_path / "data" / "1d" / "NSE_HDFCBANK.csv").read_text().splitlines()
    assert rows[0].startswith("timestamp,open") and len(rows) == 1 + 10  # 3-14 June 2024: ten sessions
