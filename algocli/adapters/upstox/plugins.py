"""Upstox's registry entries: the ``upstox`` broker (``algocli.brokers``) and feed (``algocli.feeds``).

Credentials and base URLs come from ``UPSTOX_*`` in the environment or ``.env``
(``algocli.adapters.upstox.settings``); the YAML chooses the product, validity and feed
mode. The heavy modules (aiohttp, protobuf) are imported only when a run builds a feed or a
broker, so listing the plugins stays cheap.

Each ``live()`` takes an optional ``instrument_ids``: broker name → (our instrument name
(``NSE:RELIANCE``) → that broker's id). Upstox's part (instrument keys) is used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr

from algocli.broker.live_plugins import InstrumentIds, LiveBrokerPlugin
from algocli.data.live_feeds import LiveOptions
from algocli.domain.strict import NumbersModel

__all__ = ["UpstoxBrokerPlugin", "UpstoxFeed", "UpstoxFeedConfig", "sandbox_feed"]

NAME = "upstox"


class UpstoxBrokerPlugin(LiveBrokerPlugin):
    """Upstox v2/v3 orders, with fills from the portfolio stream."""

    broker_name = NAME
    ids_keyword = "instrument_keys"

    @staticmethod
    def account() -> str:
        from algocli.adapters.upstox.settings import UpstoxSettings

        return f"Upstox account at {UpstoxSettings().api_base_url}"


class UpstoxFeedConfig(NumbersModel):
    """The ``data:`` section for the Upstox feed.

    Attributes:
        mode: ``ltpc`` (price, time, quantity; up to 5000 instruments) or ``full``
            (adds day volume, best bid/ask and OI; up to 2000 instruments).
        instrument_keys: Our id → Upstox instrument key, for ids that are not already
            ``SEGMENT:<the key's identifier>``.
        stall_timeout: Seconds without data, while the market is open, before reconnecting.
        heartbeat: Seconds between pings; a missing pong drops the socket.
        backoff_initial: First reconnect delay in seconds (doubles per failure, with jitter).
        backoff_max: Longest reconnect delay in seconds.
        connect_timeout: Seconds ``connect()`` waits for the first subscribed socket.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["ltpc", "full"] = "ltpc"
    instrument_keys: dict[str, str] = Field(default_factory=dict, json_schema_extra={"internal": True})  # from names
    stall_timeout: float = Field(60.0, gt=0)
    heartbeat: float = Field(20.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)
    connect_timeout: float = Field(30.0, gt=0)
    options: LiveOptions | None = Field(None, description="option contracts ctx.option picks from")


def _with_ids(config: UpstoxFeedConfig, instrument_ids: InstrumentIds | None) -> UpstoxFeedConfig:
    """``config`` with the Upstox map merged into ``instrument_keys``.

    Keys written in the run definition win: they are a deliberate override of what was
    resolved for the same name.
    """
    keys = (instrument_ids or {}).get(NAME)
    if not keys:
        return config
    return config.model_copy(update={"instrument_keys": {**keys, **config.instrument_keys}})


class UpstoxFeed:
    """Upstox market data feed V3 (protobuf; https://upstox.com/developer/api-documentation/v3/get-market-data-feed)."""

    Config = UpstoxFeedConfig

    @staticmethod
    def live(config: UpstoxFeedConfig, *, instrument_ids: InstrumentIds | None = None):
        """An ``UpstoxDataFeed``; ``instrument_ids["upstox"]`` joins ``config.instrument_keys``."""
        from algocli.adapters.upstox.data import UpstoxDataFeed
        from algocli.adapters.upstox.settings import UpstoxSettings

        return UpstoxDataFeed(_with_ids(config, instrument_ids), settings_factory=UpstoxSettings)


def sandbox_feed(base_url: str, token: SecretStr, mode: str, silence_s: float,
                 instrument_ids: InstrumentIds | None):
    """Upstox's feed protocol against ``algo sandbox`` at ``base_url``, ignoring ``UPSTOX_*``.

    Args:
        base_url: The sandbox's ``http://host:port``.
        token: The token the sandbox accepts.
        mode: A sandbox feed mode; Dhan's ``ticker`` is Upstox's ``ltpc``, the others ``full``.
        silence_s: Unused: the Upstox feed's stall timeout has its own default.
        instrument_ids: Broker name → our name → that broker's id.
    """
    from algocli.adapters.upstox.data import UpstoxDataFeed
    from algocli.adapters.upstox.settings import UpstoxSettings

    def settings() -> UpstoxSettings:
        return UpstoxSettings(api_base_url=base_url, access_token=token, _env_file=None)

    config = UpstoxFeedConfig(mode="ltpc" if mode in ("ticker", "ltpc") else "full")
    feed = UpstoxDataFeed(_with_ids(config, instrument_ids), settings_factory=settings)
    feed.status.name = "sandbox (upstox)"
    return feed
