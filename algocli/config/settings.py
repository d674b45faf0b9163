"""Broker endpoints and credentials, from the environment or ``.env``.

Secrets are ``SecretStr``: they print as ``**********`` and must only be unwrapped at the
moment a request is built. Base URLs are settings so ``algo paper`` and ``algo live`` can
point at the local sandbox (``algo sandbox`` prints the variables to export) or at the
real broker without code changes.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DhanSettings(BaseSettings):
    """``DHAN_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="DHAN_", env_file=".env", extra="ignore")

    client_id: str = ""
    access_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.dhan.co/v2"
    feed_url: str = "wss://api-feed.dhan.co"
    order_update_url: str = "wss://api-order-update.dhan.co"
    scrip_master_url: str = "https://images.dhan.co/api-data/api-scrip-master.csv"


class UpstoxSettings(BaseSettings):
    """``UPSTOX_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="UPSTOX_", env_file=".env", extra="ignore")

    access_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.upstox.com"
    order_base_url: str = "https://api-hft.upstox.com"
    instruments_url: str = "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"
