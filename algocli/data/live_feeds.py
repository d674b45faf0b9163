"""Registry entries for live feeds: ``dhan``, ``upstox`` and ``sandbox``.

Credentials and base URLs come from ``DHAN_*`` / ``UPSTOX_*`` environment variables (or
``.env``); the YAML only chooses the feed and its mode. ``sandbox`` points either
protocol at ``algo sandbox`` on this machine without touching the environment.

Each ``live()`` takes an optional ``instrument_ids``: ``{"dhan": {...}, "upstox": {...}}``,
each our instrument name (``NSE:RELIANCE``) → that broker's id (``NSE_EQ:2885``, or an Upstox
instrument key). The feed subscribes names through the map of the protocol it speaks and its
ticks carry the names; without it instruments must be broker ids, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


InstrumentIds = Mapping[str, Mapping[str, str]]  # broker ("dhan", "upstox") → our name → broker id


def _ids_for(instrument_ids: InstrumentIds | None, broker: str) -> Mapping[str, str] | None:
    """The one broker's map, or None when there is none."""
    return (instrument_ids or {}).get(broker) or None


def _upstox_config(config, instrument_ids: InstrumentIds | None):
    """``config`` with the Upstox map merged into ``instrument_keys``.

    Keys written in the run definition win: they are a deliberate override of what was
    resolved for the same name.
    """
    keys = _ids_for(instrument_ids, "upstox")
    if not keys:
        return config
    return config.model_copy(update={"instrument_keys": {**keys, **config.instrument_keys}})


class DhanFeedConfig(_FeedConfig):
    mode: Literal["ticker", "quote", "full"] = Field("quote", description="packet type to subscribe to")
    silence_s: float = Field(60.0, gt=0, description="reconnect after this long without data in market hours")


class DhanFeed:
    """Dhan market feed v2 (``wss://api-feed.dhan.co``)."""

    Config = DhanFeedConfig

    @staticmethod
    def live(config: DhanFeedConfig, *, instrument_ids: InstrumentIds | None = None):
        """A ``DhanDataFeed``; ``instrument_ids["dhan"]`` maps our names to Dhan ids."""
        from algocli.adapters.dhan.data import DhanDataFeed
        from algocli.config.settings import DhanSettings

        return DhanDataFeed(DhanSettings, mode=config.mode, silence_s=config.silence_s,
                            instrument_ids=_ids_for(instrument_ids, "dhan"))


class UpstoxFeedConfig(BaseModel):
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
    instrument_keys: dict[str, str] = Field(default_factory=dict)
    stall_timeout: float = Field(60.0, gt=0)
    heartbeat: float = Field(20.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)
    connect_timeout: float = Field(30.0, gt=0)


class UpstoxFeed:
    """Upstox market data feed V3 (protobuf)."""

    Config = UpstoxFeedConfig

    @staticmethod
    def live(config, *, instrument_ids: InstrumentIds | None = None):
        """An ``UpstoxDataFeed``; ``instrument_ids["upstox"]`` joins ``config.instrument_keys``."""
        from algocli.adapters.upstox.data import UpstoxDataFeed
        from algocli.config.settings import UpstoxSettings

        return UpstoxDataFeed(_upstox_config(config, instrument_ids), settings_factory=UpstoxSettings)


class SandboxFeedConfig(_FeedConfig):
    url: str = Field("http://127.0.0.1:8765", description="where `algo sandbox` listens")
    protocol: Literal["dhan", "upstox"] = Field("dhan", description="which broker's wire protocol to speak")
    token: SecretStr = Field(SecretStr("sandbox"), description="the token `algo sandbox` accepts")
    mode: Literal["ticker", "quote", "full", "ltpc"] = "quote"
    silence_s: float = Field(60.0, gt=0)


class SandboxFeed:
    """Either broker's protocol against ``algo sandbox`` on this machine."""

    Config = SandboxFeedConfig

    @staticmethod
    def live(config: SandboxFeedConfig, *, instrument_ids: InstrumentIds | None = None):
        """A Dhan or Upstox feed on the sandbox, using ``instrument_ids[config.protocol]``."""
        base = config.url.rstrip("/")
        if config.protocol == "dhan":
            from algocli.adapters.dhan.data import DhanDataFeed
            from algocli.config.settings import DhanSettings

            ws = base.replace("http://", "ws://").replace("https://", "wss://")

            def settings() -> DhanSettings:
                return DhanSettings(feed_url=f"{ws}/dhan/feed", client_id="sandbox",
                                    access_token=config.token, _env_file=None)

            mode = config.mode if config.mode != "ltpc" else "ticker"
            return DhanDataFeed(settings, mode=mode, silence_s=config.silence_s, name="sandbox (dhan)",
                                instrument_ids=_ids_for(instrument_ids, "dhan"))
        from algocli.adapters.upstox.data import UpstoxDataFeed
        from algocli.config.settings import UpstoxSettings

        def upstox_settings() -> UpstoxSettings:
            return UpstoxSettings(api_base_url=base, access_token=config.token, _env_file=None)

        mode = "ltpc" if config.mode in ("ticker", "ltpc") else "full"
        feed = UpstoxDataFeed(_upstox_config(UpstoxFeedConfig(mode=mode), instrument_ids),
                              settings_factory=upstox_settings)
        feed.status.name = "sandbox (upstox)"
        return feed
