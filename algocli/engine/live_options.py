"""``data.options`` in paper and live runs: the option contracts ``ctx.option`` picks from, subscribed with the run.

A backtest lists its contracts in a folder's ``instruments.csv`` (``algocli.engine.assemble``). A paper or
live run takes them from the brokers' instrument lists (the sandbox's own with ``feed: sandbox``): every
strike of the underlying's expiries that ``data.options.expiries`` names among those the feed's broker
lists as live when the run starts (its expiry endpoint, so against the sandbox they are the replay's
expiries, not today's). Each contract is subscribed with the strategies' instruments, so its candles
build up and its orders fill on its ticks, as the backtest loads every listed contract's bars; only the
strategies' own instruments call ``on_candle``.
"""

from __future__ import annotations

from collections.abc import Callable

from algocli.errors import BrokerError, ConfigError
from algocli.instruments.model import Instrument

__all__ = ["option_universe"]


def option_universe(feed: str, feed_cfg, urls: dict[str, str] | None, source: str,
                    warn: Callable[[str], None] | None = None) -> list[Instrument]:
    """The contracts ``data.options`` names (none when the run has no ``data.options``).

    Args:
        feed: The run's ``data.feed``.
        feed_cfg: Its validated ``data:`` section.
        urls: Where the brokers' instrument lists are downloaded from (the sandbox's); None: the settings'.
        source: The YAML path, for messages.
        warn: Receives a line when the instrument lists could not be refreshed.

    Raises:
        ConfigError: The feed has no option chains, an expiry code fits no listed expiry, or the lists
            have no contract of those expiries.
        BrokerError: The broker did not answer the expiry list.
    """
    options = getattr(feed_cfg, "options", None)
    if options is None:
        return []
    from algocli.instruments.cache import open_master
    from algocli.options.broker_source import fetcher_for
    from algocli.strategy.contracts import canonical_underlying, options_on, pick_expiry

    key = canonical_underlying(options.underlying)
    fetcher = fetcher_for(feed, feed_cfg)
    if fetcher is None:
        raise ConfigError(f"{source}: data.options: feed {feed!r} lists no option expiries; use feed dhan, "
                          "upstox or sandbox")
    try:
        listed = fetcher.expiries(key)
    except ConfigError:
        raise
    except Exception as exc:
        raise BrokerError(f"{source}: data.options: the expiries of {key} from {fetcher.broker} failed: {exc}") \
            from None
    if not listed:
        raise ConfigError(f"{source}: data.options.underlying: {fetcher.broker} lists no live expiry of {key}")
    try:  # the broker lists live expiries only: the first is "current" whatever the wall date
        wanted = {pick_expiry(listed, min(listed), code) for code in options.expiries}
    except ValueError as exc:
        raise ConfigError(f"{source}: data.options.expiries: {exc}") from None
    # the sandbox's list changes with its --data: read it afresh rather than from a cache of today
    master = open_master(refresh="always" if feed == "sandbox" else "auto", urls=urls, warn=warn)
    rows = [r for r in options_on(master, key) if r.expiry in wanted]
    if not rows:
        days = ", ".join(sorted(d.isoformat() for d in wanted))
        raise ConfigError(f"{source}: data.options: the instrument lists ({master.source}) have no {key} option "
                          f"expiring on {days}; run `algo instruments refresh`")
    return sorted(rows, key=lambda r: (r.expiry, r.strike or 0.0, r.option_type))
