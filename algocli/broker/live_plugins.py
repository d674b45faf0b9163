"""Registry entries for real brokers: ``dhan`` and ``upstox``.

Credentials and base URLs come from ``DHAN_*`` / ``UPSTOX_*`` in the environment or
``.env``; the YAML sets the product, validity and per-instrument overrides.

``live()`` takes an optional ``instrument_ids``: ``{"dhan": {...}, "upstox": {...}}``, each
our instrument name (``NSE:RELIANCE``) → that broker's id. Orders for a name go to the
broker's id, and the broker reports them back under the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from algocli.broker.costs import PercentCommission

Product = Literal["INTRADAY", "CNC", "MARGIN"]
InstrumentIds = Mapping[str, Mapping[str, str]]  # broker ("dhan", "upstox") → our name → broker id


class LiveBrokerConfig(BaseModel):
    """``broker:`` keys for a real broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    product: Product = Field("INTRADAY", description="default product for every order")
    validity: Literal["DAY", "IOC"] = "DAY"
    products: dict[str, Product] = Field(default_factory=dict, description="per-instrument product overrides")
    commission_rate: float = Field(0.0, ge=0, lt=0.1, description="used only by --dry-run's simulated fills")


class _LiveBroker:
    Config = LiveBrokerConfig
    live_broker = True

    @staticmethod
    def cost_model(config: LiveBrokerConfig):
        return PercentCommission(config.commission_rate)


class DhanBrokerPlugin(_LiveBroker):
    """Dhan REST v2 orders, with fills from the live order-update WebSocket."""

    @staticmethod
    def live(config: LiveBrokerConfig, *, instrument_ids: InstrumentIds | None = None):
        """A ``DhanBroker``; ``instrument_ids["dhan"]`` maps our names to Dhan ids."""
        from algocli.adapters.dhan.execution import DhanBroker
        from algocli.config.settings import DhanSettings

        return DhanBroker(DhanSettings, instrument_ids=(instrument_ids or {}).get("dhan"))

    @staticmethod
    def account() -> str:
        from algocli.config.settings import DhanSettings

        return f"Dhan client {DhanSettings().client_id or '(DHAN_CLIENT_ID not set)'}"


class UpstoxBrokerPlugin(_LiveBroker):
    """Upstox v2/v3 orders, with fills from the portfolio stream."""

    @staticmethod
    def live(config: LiveBrokerConfig, *, instrument_ids: InstrumentIds | None = None):
        """An ``UpstoxBroker``; ``instrument_ids["upstox"]`` maps our names to instrument keys."""
        from algocli.adapters.upstox.execution import UpstoxBroker
        from algocli.config.settings import UpstoxSettings

        return UpstoxBroker(UpstoxSettings, instrument_keys=(instrument_ids or {}).get("upstox"))

    @staticmethod
    def account() -> str:
        from algocli.config.settings import UpstoxSettings

        return f"Upstox account at {UpstoxSettings().api_base_url}"
