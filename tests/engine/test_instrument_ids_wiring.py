"""``instrument_ids`` from the engine's builders through the feed and broker plugins to the adapters."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from adapters.dhan.dhan_support import run, wait_until
from adapters.dhan.test_execution_support import RELIANCE, TOKEN, OrderSandbox, Recorder, new_account, request
from algocli.adapters.dhan.data import DhanDataFeed
from algocli.adapters.upstox.data import UpstoxDataFeed, UpstoxFeedConfig
from algocli.adapters.dhan.plugins import DhanBrokerPlugin, DhanFeed, DhanFeedConfig
from algocli.adapters.upstox.plugins import UpstoxBrokerPlugin, UpstoxFeed
from algocli.broker.live_plugins import LiveBrokerConfig
from algocli.data.live_feeds import SandboxFeed, SandboxFeedConfig
from algocli.engine.paper import live_broker
from algocli.engine.paper import live_feed, open_live
from algocli.errors import ConfigError

NAME = "NSE:RELIANCE"
IDS = {"dhan": {NAME: RELIANCE}, "upstox": {NAME: "NSE_EQ|INE002A01018"}}


async def _subscribed(feed: DhanDataFeed, instruments: list[str]) -> list[str]:
    """What the feed's socket would send Dhan (recorded without connecting)."""
    await feed.subscribe(instruments)
    return [inst for sock in feed.connections for inst in sock.subscriptions]


class _Legacy:
    """A third-party plugin whose ``live()`` predates ``instrument_ids``."""

    @staticmethod
    def live(config):
        return ("legacy", config)


class _Open:
    @staticmethod
    def live(config, **options):
        return ("open", config, options)


def test_open_live_passes_the_map_only_when_given():
    assert open_live(_Legacy, "cfg") == ("legacy", "cfg")
    assert open_live(_Open, "cfg") == ("open", "cfg", {})
    assert open_live(_Open, "cfg", IDS) == ("open", "cfg", {"instrument_ids": IDS})
    with pytest.raises(ConfigError, match="_Legacy cannot map instrument names"):
        open_live(_Legacy, "cfg", IDS)
    plugins = SimpleNamespace(feed_cls=_Open, feed_cfg="feed", broker_cls=_Open, broker_cfg="broker")
    assert live_feed(plugins) == ("open", "feed", {})
    assert live_broker(plugins, IDS) == ("open", "broker", {"instrument_ids": IDS})


def test_dhan_and_sandbox_feeds_take_the_dhan_map():
    async def main():
        plain = DhanFeed.live(DhanFeedConfig())
        assert await _subscribed(plain, [RELIANCE]) == [RELIANCE]
        with pytest.raises(ConfigError):
            await plain.subscribe([NAME])  # without a map a name is not an instrument
        feed = live_feed(SimpleNamespace(feed_cls=DhanFeed, feed_cfg=DhanFeedConfig()), IDS)
        assert await _subscribed(feed, [NAME]) == [RELIANCE]
        assert feed.instruments == [NAME]
        sandbox = SandboxFeed.live(SandboxFeedConfig(protocol="dhan"), instrument_ids=IDS)
        assert isinstance(sandbox, DhanDataFeed)
        assert await _subscribed(sandbox, [NAME]) == [RELIANCE]

    asyncio.run(main())


def test_upstox_feeds_merge_the_upstox_map_into_instrument_keys():
    config = UpstoxFeedConfig(instrument_keys={"NSE:TCS": "NSE_EQ|INE467B01029", NAME: "NSE_EQ|OVERRIDE"})
    feed = UpstoxFeed.live(config, instrument_ids=IDS)
    assert isinstance(feed, UpstoxDataFeed)
    # The run definition's own keys win over resolved ones.
    assert feed.config.instrument_keys == {"NSE:TCS": "NSE_EQ|INE467B01029", NAME: "NSE_EQ|OVERRIDE"}
    assert UpstoxFeed.live(UpstoxFeedConfig(), instrument_ids=IDS).config.instrument_keys == IDS["upstox"]
    assert UpstoxFeed.live(UpstoxFeedConfig()).config.instrument_keys == {}
    sandbox = SandboxFeed.live(SandboxFeedConfig(protocol="upstox"), instrument_ids=IDS)
    assert sandbox.config.instrument_keys == IDS["upstox"]
    only_dhan = SandboxFeed.live(SandboxFeedConfig(protocol="upstox"), instrument_ids={"dhan": IDS["dhan"]})
    assert only_dhan.config.instrument_keys == {}


def test_upstox_broker_plugin_passes_its_map_as_instrument_keys(monkeypatch):
    from algocli.adapters.upstox import execution

    made = []
    monkeypatch.setattr(execution, "UpstoxBroker", lambda *args, **kwargs: made.append(kwargs) or "broker")
    assert UpstoxBrokerPlugin.live(LiveBrokerConfig(), instrument_ids=IDS) == "broker"
    assert UpstoxBrokerPlugin.live(LiveBrokerConfig()) == "broker"
    assert made == [{"instrument_keys": IDS["upstox"]}, {"instrument_keys": None}]


def test_dhan_broker_plugin_orders_a_name_at_the_sandbox(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the repository

    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            for key, value in {"DHAN_CLIENT_ID": account, "DHAN_ACCESS_TOKEN": TOKEN, "DHAN_API_BASE_URL": box.rest,
                               "DHAN_ORDER_UPDATE_URL": box.ws}.items():
                monkeypatch.setenv(key, value)
            broker = live_broker(SimpleNamespace(broker_cls=DhanBrokerPlugin, broker_cfg=LiveBrokerConfig()), IDS)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account), what="order-update login")
                box.publish(RELIANCE, 2500.0)
                placed = await broker.place_order(request("wire-000001", NAME, quantity=4))
                assert placed.instrument == NAME
                assert [o.instrument for o in box.orders_of(account, "wire-000001")] == [RELIANCE]
                box.publish(RELIANCE, 2500.5)
                await wait_until(lambda: rec.fills, what="the fill")
                assert (rec.fills[0].instrument, rec.fills[0].quantity) == (NAME, 4)
                assert [(p.instrument, p.quantity) for p in await broker.get_positions()] == [(NAME, 4)]
            finally:
                await broker.disconnect()

    run(main())
