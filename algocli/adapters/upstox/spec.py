"""Upstox, described once for the rest of the project (registered in ``algocli.broker_specs``).

Limits are a little under the published ones (https://upstox.com/developer/api-documentation/rate-limiting):
order APIs 10/s, 500/min, 2000 per 30 minutes (measured on the api-hft host), standard APIs
50/s, 500/min, 2000 per 30 minutes. The v3 historical-candle API serves minutes 1-300 and
days (https://upstox.com/developer/api-documentation/v3/get-historical-candle-data). Ids are
instrument keys (``NSE_EQ|INE040A01034``) from ``complete.json.gz``
(https://upstox.com/developer/api-documentation/instruments).
"""

from algocli.broker.spec import BrokerSpec

LIMITS = {
    "order": ((9, 1.0), (480, 60.0), (1900, 1800.0)),      # published 10/s, 500/min, 2000/30 min
    "other": ((45, 1.0), (480, 60.0), (1900, 1800.0)),     # published 50/s, 500/min, 2000/30 min
}

SPEC = BrokerSpec(
    name="upstox",
    title="Upstox",
    limits=LIMITS,
    # Candles count with the other standard APIs. The 30-minute bucket binds, so a long
    # download settles at 1 request a second (1800 per 30 minutes), leaving a tenth of the
    # bucket for the account's other calls (a live session on the same token); short
    # downloads still go at up to 10 a second.
    download_limits=((10, 1.0), (250, 60.0), (1800, 1800.0)),
    native_intervals=frozenset({"1m", "3m", "5m", "10m", "15m", "25m", "30m", "1h", "1d"}),
    id_field="upstox_key",
    id_example="NSE_EQ|INE040A01034",
    id_pattern=r"[A-Z_]+\|.+",
    credentials=("access_token",),
    settings="algocli.adapters.upstox.settings:UpstoxSettings",
    master_url_field="instruments_url",
    master_suffix="json.gz",
    read_master="algocli.adapters.upstox.instruments:read_master",
    download_source="algocli.adapters.upstox.data:download_source",
    sandbox_feed="algocli.adapters.upstox.plugins:sandbox_feed",
    broker="algocli.adapters.upstox.execution:UpstoxBroker",
)
