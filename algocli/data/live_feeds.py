"""The ``sandbox`` live feed: a broker's feed protocol against ``algo sandbox`` on this machine.

The brokers' own feeds (``dhan``, ``upstox``) are registered by their adapter packages
(``algocli.adapters.<broker>.plugins``). ``sandbox`` points one of the protocols the sandbox
speaks at ``algo sandbox`` without touching the environment: the broker's spec names the
function that builds such a feed (``BrokerSpec.sandbox_feed``).

``live()`` takes an optional ``instrument_ids``: broker name → (our instrument name
(``NSE:RELIANCE``) → that broker's id). The feed subscribes names through the map of the
protocol it speaks and its ticks carry the names; without it instruments must be broker ids.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from algocli.broker.live_plugins import InstrumentIds
from algocli.domain.strict import NumbersModel

__all__ = ["LiveOptions", "SandboxFeed", "SandboxFeedConfig"]


class LiveOptions(NumbersModel):
    """``data.options`` of a paper or live run: the option contracts ``ctx.option`` may pick and trade.

    They come from the brokers' instrument lists and are subscribed with the run's instruments
    (``algocli.engine.live_options``).

    Attributes:
        underlying: The underlying's name, e.g. ``NSE:NIFTY 50``.
        expiries: Expiry codes (``current``, ``next``, ``current_month``, ``next_month``, a date) among
            those the feed's broker lists as live when the run starts; their every strike is subscribed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    underlying: str
    expiries: list[str] = Field(default_factory=lambda: ["current"], min_length=1)


class SandboxFeedConfig(NumbersModel):
    """The ``data:`` section for ``feed: sandbox``: the sandbox's address and the protocol it speaks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field("http://127.0.0.1:8765", description="where `algo sandbox` listens")
    # The sandbox serves these two brokers' wire formats (algocli.sandbox), no others.
    protocol: Literal["dhan", "upstox"] = Field("dhan", description="which broker's wire protocol to speak")
    token: SecretStr = Field(SecretStr("sandbox"), description="the token `algo sandbox` accepts")
    mode: Literal["ticker", "quote", "full", "ltpc"] = "quote"
    silence_s: float = Field(60.0, gt=0)
    options: LiveOptions | None = Field(None, description="option contracts ctx.option picks from")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        try:
            port = parts.port
        except ValueError:
            port = None  # not a number: refused below
        if parts.scheme not in ("http", "https") or not parts.hostname or (":" in parts.netloc and port is None):
            raise ValueError(f"{value!r} is not the http://HOST:PORT address `algo sandbox` prints, e.g. "
                             "http://127.0.0.1:8765")
        return value.strip()


class SandboxFeed:
    """Either broker's protocol against ``algo sandbox`` on this machine."""

    Config = SandboxFeedConfig

    @staticmethod
    def live(config: SandboxFeedConfig, *, instrument_ids: InstrumentIds | None = None):
        """The ``config.protocol`` broker's feed on the sandbox, using ``instrument_ids[config.protocol]``."""
        from algocli.broker.spec import broker_spec

        spec = broker_spec(config.protocol, what="data.protocol")
        build = spec.load(spec.sandbox_feed)
        feed = build(config.url.rstrip("/"), config.token, config.mode, config.silence_s, instrument_ids)
        feed.in_order = True  # the replay publishes ticks merged by exchange time (algocli.sandbox.replay)
        feed.connect = _sandbox_hint(feed.connect, feed, config.url)
        return feed


def _sandbox_hint(connect, feed, url: str):
    """``connect`` whose failure says to start ``algo sandbox``: the broker feed's own message names
    the broker's network settings, which a sandbox feed does not read."""
    from algocli.errors import BrokerError

    async def connect_to_sandbox() -> None:
        try:
            await connect()
        except (BrokerError, ConnectionError) as exc:
            why = getattr(getattr(feed, "status", None), "last_error", None) or str(exc)
            raise BrokerError(f"no `algo sandbox` answered at {url} ({why}); start it in another terminal with "
                              "`algo sandbox --data data`, or set data.url to where it listens") from None
    return connect_to_sandbox
