"""Dhan's registry entries: the ``dhan`` broker (``algocli.brokers``) and feed (``algocli.feeds``).

Credentials and base URLs come from ``DHAN_*`` in the environment or ``.env``
(``algocli.adapters.dhan.settings``); the YAML chooses the product, validity and feed mode.
The heavy modules (aiohttp, websockets) are imported only when a run builds a feed or a
broker, so listing the plugins stays cheap.

Each ``live()`` takes an optional ``instrument_ids``: broker name → (our instrument name
(``NSE:RELIANCE``) → that broker's id). Dhan's part is used; the feed subscribes and the
broker orders by Dhan id, and both report back under our names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr

from algocli.broker.live_plugins import InstrumentIds, LiveBrokerPlugin
from algocli.data.live_feeds import LiveOptions
from algocli.domain.strict import NumbersModel

__all__ = ["DhanBrokerPlugin", "DhanFeed", "DhanFeedConfig", "mask_client_id", "sandbox_feed"]

NAME = "dhan"


def _ids(instrument_ids: InstrumentIds | None) -> Mapping[str, str] | None:
    return (instrument_ids or {}).get(NAME) or None


class DhanBrokerPlugin(LiveBrokerPlugin):
    """Dhan REST v2 orders, with fills from the live order-update WebSocket."""

    broker_name = NAME

    @staticmethod
    def account() -> str:
        """The account for screens: the client id masked (``11…77``), as it also logs in to the account."""
        from algocli.adapters.dhan.settings import DhanSettings

        client_id = DhanSettings().client_id
        return f"Dhan client {mask_client_id(client_id)}" if client_id else "Dhan client (DHAN_CLIENT_ID not set)"


def mask_client_id(client_id: str) -> str:
    """``1100QACLIENT77`` → ``11…77``: enough to tell accounts apart, not enough to use one.

    An id of four characters or fewer shows none of them (``…``).
    """
    client_id = client_id.strip()
    return f"{client_id[:2]}…{client_id[-2:]}" if len(client_id) > 4 else "…"


class DhanFeedConfig(NumbersModel):
    """The ``data:`` section for Dhan's live market feed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["ticker", "quote", "full"] = Field("quote", description="packet type to subscribe to")
    silence_s: float = Field(60.0, gt=0, description="reconnect after this long without data in market hours")
    options: LiveOptions | None = Field(None, description="option contracts ctx.option picks from")


class DhanFeed:
    """Dhan market feed v2 (``wss://api-feed.dhan.co``, https://dhanhq.co/docs/v2/live-market-feed/)."""

    Config = DhanFeedConfig

    @staticmethod
    def live(config: DhanFeedConfig, *, instrument_ids: InstrumentIds | None = None):
        """A ``DhanDataFeed``; ``instrument_ids["dhan"]`` maps our names to Dhan ids."""
        from algocli.adapters.dhan.data import DhanDataFeed
        from algocli.adapters.dhan.settings import DhanSettings

        return DhanDataFeed(DhanSettings, mode=config.mode, silence_s=config.silence_s,
                            instrument_ids=_ids(instrument_ids))


def sandbox_feed(base_url: str, token: SecretStr, mode: str, silence_s: float,
                 instrument_ids: InstrumentIds | None):
    """Dhan's feed protocol against ``algo sandbox`` at ``base_url``, ignoring ``DHAN_*``.

    Args:
        base_url: The sandbox's ``http://host:port``.
        token: The token the sandbox accepts.
        mode: A sandbox feed mode; Upstox's ``ltpc`` is Dhan's ``ticker``.
        silence_s: Reconnect after this long without data in market hours.
        instrument_ids: Broker name → our name → that broker's id.
    """
    from algocli.adapters.dhan.data import DhanDataFeed
    from algocli.adapters.dhan.settings import DhanSettings

    ws = base_url.replace("http://", "ws://").replace("https://", "wss://")

    def settings() -> DhanSettings:
        return DhanSettings(feed_url=f"{ws}/dhan/feed", client_id="sandbox", access_token=token, _env_file=None)

    return DhanDataFeed(settings, mode="ticker" if mode == "ltpc" else mode, silence_s=silence_s,
                        name="sandbox (dhan)", instrument_ids=_ids(instrument_ids))
