"""``algo live`` with instruments named by HRN: each broker gets its own id, artifacts the name.

The sandbox serves the bundled ``instruments.csv`` as Dhan's scrip master and Upstox's
instrument file; the run downloads them (as it would the real ones) and trades
``NSE:RELIANCE`` as ``NSE_EQ:2885`` at Dhan and ``NSE_EQ|INE002A01018`` at Upstox.
"""

from __future__ import annotations

import shutil
import time

import pytest

from cli.live_support import BROKERS, BrokerRest, algo_running, live_env, write_live_yaml
from cli.paper_support import REPO_ROOT, read_csv, sandbox, wait_for, write_one_day

BROKER_ID = {"dhan": "NSE_EQ:2885", "upstox": "NSE_EQ|INE002A01018"}


@pytest.mark.parametrize("broker", BROKERS)
def test_a_named_instrument_trades_under_each_brokers_id(tmp_path, broker):
    data = tmp_path / "data"
    data.mkdir()
    write_one_day(data)
    shutil.copy(REPO_ROOT / "data" / "instruments.csv", data / "instruments.csv")
    with sandbox(data, tmp_path / "logs", speed=6000) as box:
        host = f"http://127.0.0.1:{box.port}"
        env = live_env(broker, box.port, ALGO_INSTRUMENTS_DIR=str(tmp_path / "cache"),
                       DHAN_SCRIP_MASTER_URL=f"{host}/api-data/api-scrip-master.csv",
                       UPSTOX_INSTRUMENTS_URL=f"{host}/market-quote/instruments/exchange/complete.json.gz")
        strategies = [{"class": "sma_crossover", "instruments": ["nse:reliance"],
                       "params": {"fast_period": 5, "slow_period": 15, "quantity": 10}}]
        cfg = write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out", strategies=strategies)
        with algo_running(["live", cfg, "--yes", "--no-dashboard"], tmp_path / "logs", "live", env,
                          cwd=tmp_path) as live:
            wait_for(lambda: (h := box.health()) is not None and h["replay_done"], 60, "the replay to finish",
                     interval=0.1, child=live)
            time.sleep(1.0)
            assert live.interrupt(timeout=30) == 0, live.err
        rest = BrokerRest(broker, box.port)
        fills = read_csv(tmp_path / "out" / "fills.csv")
        assert len(fills) >= 2 and {f["instrument"] for f in fills} == {"NSE:RELIANCE"}
        assert len(rest.trades()) == len(fills)  # every fill is a trade at the broker, under its id
        book = rest._call("GET", "/v2/orders" if broker == "dhan" else "/v2/order/retrieve-all")
        ids = {f"{o['exchangeSegment']}:{o['securityId']}" if broker == "dhan" else o["instrument_token"]
               for o in book}
        assert ids == {BROKER_ID[broker]}
        resolved = (tmp_path / "out" / "config.resolved.yaml").read_text(encoding="utf-8")
        assert "NSE:RELIANCE" in resolved and "nse:reliance" not in resolved
