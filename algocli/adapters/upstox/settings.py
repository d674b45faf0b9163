"""``UPSTOX_*`` settings: credentials and endpoints, from the environment or ``.env``.

Secrets are ``SecretStr``: they print as ``**********`` and are unwrapped only when a
request is built. Base URLs are settings so that ``algo paper`` and ``algo live`` can point
at the local sandbox or at Upstox without code changes. Endpoints:
https://upstox.com/developer/api-documentation/ (REST and the HFT order host) and
https://upstox.com/developer/api-documentation/instruments (the instrument files).
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["UpstoxSettings"]


class UpstoxSettings(BaseSettings):
    """``UPSTOX_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="UPSTOX_", env_file=".env", extra="ignore")

    access_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.upstox.com"
    order_base_url: str = "https://api-hft.upstox.com"
    instruments_url: str = "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"
