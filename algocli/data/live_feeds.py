"""Registry entries for live feeds: ``dhan``, ``upstox`` and ``sandbox``.

Credentials and base URLs come from ``DHAN_*`` / ``UPSTOX_*`` environment variables (or
``.env``); the YAML only chooses the feed and its mode. ``sandbox`` points either
protocol at ``algo sandbox`` on this machine without touching the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DhanFeedConfig(_FeedConfig):
    mode: Literal["ticker", "quote", "full"] = Field("quote", description="packet type to subscribe to")
    silence_s: float = Field(60.0, gt=0, description="reconnect after this long without data in market hours")


class DhanFeed:
    """Dhan market feed v2 (``wss://api-feed.dhan.co``)."""

    Config = DhanFeedConfig

    @staticmethod
    def live(config: DhanFeedConfig):
        from algocli.adapters.dhan.data import DhanDataFeed
        from algocli.config.settings import DhanSettings

        return DhanDataFeed(DhanSettings, mode=config.mode, silence_s=config.silence_s)


class UpstoxFeed:
    """Upstox market data feed V3 (protobuf)."""

    from algocli.adapters.upstox.data import UpstoxFeedConfig as Config

    @staticmethod
    def live(config):
        from algocli.adapters.upstox.data import UpstoxDataFeed
        from algocli.config.settings import UpstoxSettings

        return UpstoxDataFeed(config, settings_factory=UpstoxSettings)


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
    def live(config: SandboxFeedConfig):
        base = config.url.rstrip("/")
        if config.protocol == "dhan":
            from algocli.adapters.dhan.data import DhanDataFeed
            from algocli.config.settings import DhanSettings

            ws = base.replace("http://", "ws://").replace("https://", "wss://")

            def settings() -> DhanSettings:
                return DhanSettings(feed_url=f"{ws}/dhan/feed", client_id="sandbox",
                                    access_token=config.token, _env_file=None)

            mode = config.mode if config.mode != "ltpc" else "ticker"
            return DhanDataFeed(settings, mode=mode, silence_s=config.silence_s, name="sandbox (dhan)")
        from algocli.adapters.upstox.data import UpstoxDataFeed, UpstoxFeedConfig
        from algocli.config.settings import UpstoxSettings

        def upstox_settings() -> UpstoxSettings:
            return UpstoxSettings(api_base_url=base, access_token=config.token, _env_file=None)

        mode = "ltpc" if config.mode in ("ticker", "ltpc") else "full"
        feed = UpstoxDataFeed(UpstoxFeedConfig(mode=mode), settings_factory=upstox_settings)
        feed.status.name = "sandbox (upstox)"
        return feed
