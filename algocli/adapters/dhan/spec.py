"""Dhan, described once for the rest of the project (registered in ``algocli.broker_specs``).

Limits are a little under the published ones (https://dhanhq.co/docs/v2/#rate-limit):
orders 25/s (10/s for SEBI's retail-algo rules), 250/min, 1000/h; Data APIs 5/s and
100,000/day; other APIs 20/s. Historical candles: ``/charts/intraday`` serves 1, 5, 15,
25 and 60 minutes, ``/charts/historical`` days (https://dhanhq.co/docs/v2/historical-data/).
Ids are ``SEGMENT:SECURITY_ID`` (``NSE_EQ:1333``), from the compact scrip master
(https://dhanhq.co/docs/v2/instruments/).
"""

from algocli.broker.spec import BrokerSpec

LIMITS = {
    "order": ((10, 1.0), (240, 60.0), (950, 3600.0)),     # published 25/s (10/s SEBI algo), 250/min, 1000/h
    "data": ((4, 1.0),),                                    # published 5/s
    "other": ((18, 1.0),),                                  # published 20/s
}

SPEC = BrokerSpec(
    name="dhan",
    title="Dhan",
    limits=LIMITS,
    # The Data APIs' 5 a second, one under it; a download cannot reach the daily 100,000.
    download_limits=LIMITS["data"],
    native_intervals=frozenset({"1m", "5m", "15m", "25m", "1h", "1d"}),
    id_field="dhan_id",
    id_example="NSE_EQ:1333",
    id_pattern=r"[A-Z_]+:\d+",
    credentials=("client_id", "access_token"),
    settings="algocli.adapters.dhan.settings:DhanSettings",
    master_url_field="scrip_master_url",
    master_suffix="csv",
    read_master="algocli.adapters.dhan.instruments:read_master",
    download_source="algocli.adapters.dhan.data:download_source",
    sandbox_feed="algocli.adapters.dhan.plugins:sandbox_feed",
    broker="algocli.adapters.dhan.execution:DhanBroker",
)
