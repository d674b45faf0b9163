"""``feed: sandbox``: either broker's feed protocol against ``algo sandbox``."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from algocli.data.live_feeds import SandboxFeed, SandboxFeedConfig
from algocli.errors import BrokerError

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: every connection is refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("protocol", ["dhan", "upstox"])
def test_no_sandbox_listening_says_to_start_one(protocol):
    """The broker feed's own message names the broker's network settings (DHAN_FEED_URL), which a
    sandbox feed never reads; the run definition's data.url is what to check."""
    url = f"http://127.0.0.1:{_closed_port()}"
    feed = SandboxFeed.live(SandboxFeedConfig(url=url, protocol=protocol))
    if protocol == "dhan":
        feed._connect_timeout = 0.5
    else:
        feed.config = feed.config.model_copy(update={"connect_timeout": 0.5})
    with pytest.raises(BrokerError) as err:
        asyncio.run(feed.connect())
    message = str(err.value)
    assert message.startswith(f"no `algo sandbox` answered at {url} (")
    assert "refused" in message.lower() or "connect call failed" in message.lower()
    assert message.endswith("start it in another terminal with `algo sandbox --data data`, or set data.url to "
                            "where it listens")
    assert "DHAN_FEED_URL" not in message


@pytest.mark.parametrize("url", ["not a url", "http://127.0.0.1:abc", "ws://127.0.0.1:8765", "127.0.0.1:8765"])
def test_a_sandbox_url_that_is_no_http_address_is_refused_before_anything_is_fetched(tmp_path, url):
    """It was taken for the instrument list's host, and the run failed on a download instead."""
    import yaml

    from algocli.engine.runtime import load_live_run
    from algocli.errors import ConfigError

    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    cfg["data"]["url"] = url
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_live_run(path, "paper")
    assert str(err.value) == (f"{path}: data.url: {url!r} is not the http://HOST:PORT address `algo sandbox` "
                              "prints, e.g. http://127.0.0.1:8765")
    assert SandboxFeedConfig(url=" http://localhost:9000/ ").url == "http://localhost:9000/"
