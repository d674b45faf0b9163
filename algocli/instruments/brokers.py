"""What every broker's instrument-list reader shares, and the registered readers themselves.

Each broker package reads its own file (``algocli.adapters.<broker>.instruments``) and
names it in its ``BrokerSpec``; ``read_master(broker, path)`` calls the registered reader.
The helpers here keep the readers' rows comparable: tick sizes in rupees, NSE/BSE only,
and one spelling per index (Dhan's trading symbol ``BANKNIFTY`` is Upstox's ``Nifty Bank``;
both become the index's NSE/BSE name through ``INDEX_ALIASES``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta, timezone
from pathlib import Path

from algocli.instruments.model import Instrument

__all__ = ["EXCHANGES", "INDEX_ALIASES", "IST", "index_name", "kept", "read_master", "tick_rupees"]

IST = timezone(timedelta(hours=5, minutes=30))
EXCHANGES = frozenset({"NSE", "BSE"})

#: Short index symbols → the index's own name, as both brokers and NSE/BSE spell it in full.
INDEX_ALIASES = {
    "NIFTY": "NIFTY 50", "BANKNIFTY": "NIFTY BANK", "FINNIFTY": "NIFTY FIN SERVICE",
    "MIDCPNIFTY": "NIFTY MID SELECT", "NIFTYNXT50": "NIFTY NEXT 50", "NIFTY NEXT 50": "NIFTY NEXT 50",
    "INDIAVIX": "INDIA VIX", "NIFTY FINANCIAL SERVICES": "NIFTY FIN SERVICE",
}


def index_name(text: str) -> str:
    """``BANKNIFTY`` or ``Nifty Bank`` → ``NIFTY BANK``."""
    upper = " ".join(text.upper().split())
    return INDEX_ALIASES.get(upper, upper)


def tick_rupees(paise: object) -> float:
    """Paise → rupees. Dhan's index rows give ``0.0500`` in rupees; no real tick is under
    one paisa, so a value below 1 is taken as rupees already."""
    value = float(paise)
    if value <= 0:
        return 0.05
    return round(value if value < 1 else value / 100.0, 4)


def kept(rows: Iterable[Instrument | None]) -> tuple[list[Instrument], int]:
    """The rows that are instruments, and how many were not (skipped)."""
    out: list[Instrument] = []
    skipped = 0
    for inst in rows:
        if inst is None:
            skipped += 1
        else:
            out.append(inst)
    return out, skipped


def read_master(broker: str, path: Path) -> tuple[list[Instrument], int]:
    """Read ``path`` with the instrument-list reader ``broker`` registered.

    Returns:
        The rows as instruments, and how many rows were skipped.

    Raises:
        ConfigError: ``broker`` is not registered.
        DataError: The file is not that broker's instrument list.
    """
    from algocli.broker.spec import broker_spec

    spec = broker_spec(broker)
    return spec.load(spec.read_master)(path)
