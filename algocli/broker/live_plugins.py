"""The base of every real broker's ``algocli.brokers`` entry (each broker package subclasses it).

Credentials and base URLs come from each broker's settings (its environment variables or
``.env``); the YAML sets the product, validity and per-instrument
overrides. Which class places the orders, and which settings it reads, is in the broker's
``BrokerSpec`` (``algocli.broker.spec``).

``live()`` takes an optional ``instrument_ids``: broker name → (our instrument name
(``NSE:RELIANCE``) → that broker's id). Orders for a name go to the broker's id, and the
broker reports them back under the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from algocli.broker.costs import AccountConfig, Product

__all__ = ["InstrumentIds", "LiveBrokerConfig", "LiveBrokerPlugin", "Product"]

InstrumentIds = Mapping[str, Mapping[str, str]]  # broker name → our name → broker id


class LiveBrokerConfig(AccountConfig):
    """``broker:`` keys for a real broker: ``AccountConfig``'s (product, products, and the
    charges booked on each live fill as an estimate: ``commission_rate`` or ``charges``) and
    the orders' validity."""

    validity: Literal["DAY", "IOC"] = "DAY"


class LiveBrokerPlugin:
    """The ``algocli.brokers`` entry of a real broker, built from its registered ``BrokerSpec``.

    A broker package subclasses it with ``broker_name`` set (and ``account()`` saying which
    account orders go to) and registers the subclass in ``algocli.brokers``.
    """

    Config = LiveBrokerConfig
    live_broker = True
    broker_name = ""
    ids_keyword = "instrument_ids"  # the broker class's keyword for our name → its id

    @classmethod
    def live(cls, config: LiveBrokerConfig, *, instrument_ids: InstrumentIds | None = None):
        """The spec's ``Broker``, given its settings class and ``instrument_ids[broker_name]``."""
        from algocli.broker.spec import broker_spec

        spec = broker_spec(cls.broker_name)
        ids = (instrument_ids or {}).get(cls.broker_name)
        return spec.load(spec.broker)(spec.load(spec.settings), **{cls.ids_keyword: ids})

    @classmethod
    def account(cls) -> str:
        from algocli.broker.spec import broker_spec

        return f"{broker_spec(cls.broker_name).title} account"
