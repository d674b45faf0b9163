"""``DHAN_*`` settings: credentials and endpoints, from the environment or ``.env``.

Secrets are ``SecretStr``: they print as ``**********`` and are unwrapped only when a
request is built. Base URLs are settings so that ``algo paper`` and ``algo live`` can point
at the local sandbox (``algo sandbox`` prints the variables to export) or at Dhan without
code changes. Endpoints: https://dhanhq.co/docs/v2/ (REST, live market feed, live order
update) and https://dhanhq.co/docs/v2/instruments/ (the compact scrip master).
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DhanSettings"]


class DhanSettings(BaseSettings):
    """``DHAN_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="DHAN_", env_file=".env", extra="ignore")

    client_id: str = ""
    access_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.dhan.co/v2"
    feed_url: str = "wss://api-feed.dhan.co"
    order_update_url: str = "wss://api-order-update.dhan.co"
    scrip_master_url: str = "https://images.dhan.co/api-data/api-scrip-master.csv"
