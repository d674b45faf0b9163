"""Registry entries (``algocli.brokers``) for real brokers: ``dhan``, ``upstox``, and a base for more.

Credentials and base URLs come from each broker's settings (``DHAN_*`` / ``UPSTOX_*`` in
the environment or ``.env``); the YAML sets the product, validity and per-instrument
overrides. Which class places the orders, and which settings it reads, is in the broker's
``BrokerSpec`` (``algocli.broker.spec``).

``live()`` takes an optional ``instrument_ids``: broker name → (our instrument name
(``NSE:RELIANCE``) → that broker's id). Orders for a name go to the broker's id, and the
broker reports them back under the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


Product = Literal["INTRADAY", "CNC", "MARGIN"]
InstrumentIds = Mapping[str, Mapping[str, str]]  # broker name → our name → broker id


class LiveBrokerConfig(BaseModel):
    """``broker:`` keys for a real broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    product: Product = Field("INTRADAY", description="default product for every order")
    validity: Literal["DAY", "IOC"] = "DAY"
    products: dict[str, Product] = Field(default_factory=dict, description="per-instrument product overrides")
    commission_rate: float = Field(0.0, ge=0, lt=0.1,
                                   description="fraction of traded value: the charge booked on each live fill")


class LiveBrokerPlugin:
    """The ``algocli.brokers`` entry of a real broker, built from its registered ``BrokerSpec``.

    A broker package subclasses it with ``broker_name`` set (and ``account()`` saying which
    account orders go to) and registers the subclass in ``algocli.brokers``.
    """

    Config = LiveBrokerConfig
    live_broker = True
    broker_name = ""
    ids_keyword = "instrument_ids"  # the broker class's keyword for our name → its id

    @classmethod
    def live(cls, config: LiveBrokerConfig, *, instrument_ids: InstrumentIds | None = None):
        """The spec's ``Broker``, given its settings class and ``instrument_ids[broker_name]``."""
        from algocli.broker.spec import broker_spec

        spec = broker_spec(cls.broker_name)
        ids = (instrument_ids or {}).get(cls.broker_name)
        return spec.load(spec.broker)(spec.load(spec.settings), **{cls.ids_keyword: ids})

    @classmethod
    def account(cls) -> str:
        from algocli.broker.spec import broker_spec

        return f"{broker_spec(cls.broker_name).title} account"


class DhanBrokerPlugin(LiveBrokerPlugin):
    """Dhan REST v2 orders, with fills from the live order-update WebSocket."""

    broker_name = "dhan"

    @staticmethod
    def account() -> str:
        from algocli.config.settings import DhanSettings

        return f"Dhan client {DhanSettings().client_id or '(DHAN_CLIENT_ID not set)'}"


class UpstoxBrokerPlugin(LiveBrokerPlugin):
    """Upstox v2/v3 orders, with fills from the portfolio stream."""

    broker_name = "upstox"
    ids_keyword = "instrument_keys"

    @staticmethod
    def account() -> str:
        from algocli.config.settings import UpstoxSettings

        return f"Upstox account at {UpstoxSettings().api_base_url}"
