"""Give every instrument of a run its human-readable name, and each broker its id.

A run definition may name an instrument either way: ``NSE:HDFCBANK`` or ``NSE_EQ:1333``
(Dhan) or ``NSE_EQ|INE040A01034`` (Upstox). Before anything is built, every name is
replaced by the instrument's canonical HRN, so strategies, the journal, the dashboard and
every artifact use one spelling whichever broker runs it. The adapters get a map from
HRN to their own id (``RunNames.ids``).

The master is only asked for what it is needed for: a run whose instruments are all
broker ids is renamed from the cache when there is one (no download, so a backtest never
waits on the network), and runs unrenamed when there is none. A name that only the master
can read (an HRN) makes the master required; then an unknown name is an error that lists
close matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from algocli.config.run import RunConfig
from algocli.errors import ConfigError
from algocli.instruments.cache import MasterUnavailable, Refresh, open_master
from algocli.instruments.master import InstrumentMaster, merge
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_instruments

__all__ = ["RunNames", "is_broker_id", "name_run"]

_DHAN_ID = re.compile(r"^[A-Z_]+:\d+$")


def is_broker_id(text: str) -> bool:
    """True for ids the adapters take as they are: ``NSE_EQ:1333`` or ``NSE_EQ|INE040A01034``."""
    return bool(_DHAN_ID.match(text)) or "|" in text


@dataclass
class RunNames:
    """What ``name_run`` found: the renamed config and, per HRN, the instrument."""

    config: RunConfig
    instruments: dict[str, Instrument] = field(default_factory=dict)
    source: str = ""

    def ids(self) -> dict[str, dict[str, str]]:
        """``{"dhan": {HRN: "NSE_EQ:1333"}, "upstox": {HRN: "NSE_EQ|INE..."}}`` for the adapters."""
        out: dict[str, dict[str, str]] = {"dhan": {}, "upstox": {}}
        for hrn, inst in self.instruments.items():
            if inst.dhan_id:
                out["dhan"][hrn] = inst.dhan_id
            if inst.upstox_key:
                out["upstox"][hrn] = inst.upstox_key
        return out

    def metadata(self) -> dict[str, Instrument]:
        """The master's ``Instrument`` per HRN, for the engines, the risk controller and the cost model."""
        return dict(self.instruments)

    def aliases(self, hrn: str) -> tuple[str, ...]:
        """Other spellings of ``hrn`` (broker ids), for finding its data file."""
        inst = self.instruments.get(hrn)
        return tuple(i for i in inst.ids() if i != hrn) if inst else ()


def _names(config: RunConfig) -> list[str]:
    return list(dict.fromkeys(i for entry in config.strategies for i in entry.instruments))


def name_run(config: RunConfig, source: str, *, refresh: Refresh = "auto", extra: Iterable[Path] = (),
             warn: Callable[[str], None] | None = None, master: InstrumentMaster | None = None,
             urls: dict[str, str] | None = None, quiet_cache: bool = True) -> RunNames:
    """Rename ``config``'s instruments to their HRNs.

    Args:
        config: The validated run definition.
        source: The YAML path, for messages.
        refresh: How to refresh the master when an HRN makes it necessary.
        extra: Instrument files added to the master (a data folder's ``instruments.csv``).
        warn: Receives one line when a download failed and the cache stood in.
        master: Use this master instead of opening one (tests, callers that have one).
        urls: Where to download the brokers' files from (the sandbox's); default the settings'.
        quiet_cache: When every instrument is a broker id, only read the cache (backtests);
            False refreshes it as ``refresh`` says anyway (paper and live runs, online anyway).

    Raises:
        ConfigError: A name is unknown to the master, or needs a master that is missing.
    """
    names = _names(config)
    needs_master = any(not is_broker_id(n) for n in names)
    if master is None and needs_master:
        master = _local(extra, names)  # a data folder's own list names its files: no download needed
    if master is None:
        try:
            master = open_master(refresh=refresh if needs_master or not quiet_cache else "never", extra=extra,
                                 warn=warn, urls=urls)
        except MasterUnavailable as exc:
            if needs_master:
                wanted = next(n for n in names if not is_broker_id(n))
                raise ConfigError(f"{source}: instrument {wanted!r} is a name, and {exc}") from None
            return RunNames(config)
    found: dict[str, Instrument] = {}
    for i, entry in enumerate(config.strategies):
        for name in entry.instruments:
            inst = master.get(name)
            if inst is None and not is_broker_id(name):
                master.resolve(name, field=f"{source}: strategies[{i}].instruments")
            if inst is not None:
                found[name] = inst
    if not found:
        return RunNames(config, source=master.source)
    return RunNames(_renamed(config, {k: v.hrn for k, v in found.items()}), {v.hrn: v for v in found.values()},
                    master.source)


def _local(extra: Iterable[Path], names: list[str]) -> InstrumentMaster | None:
    files = [Path(p) for p in extra if Path(p).is_file()]
    if not files:
        return None
    local = InstrumentMaster(merge(*(read_instruments(p) for p in files)), source=" + ".join(map(str, files)))
    return local if all(local.get(n) is not None for n in names) else None


def _renamed(config: RunConfig, to_hrn: dict[str, str]) -> RunConfig:
    strategies = [entry.model_copy(update={"instruments": list(dict.fromkeys(to_hrn.get(i, i) for i in entry.instruments))})
                  for entry in config.strategies]
    update: dict = {"strategies": strategies}
    params = config.broker.plugin_params
    if isinstance(params.get("products"), dict):  # per-instrument products are keyed by instrument
        products = {to_hrn.get(k, k): v for k, v in params["products"].items()}
        update["broker"] = type(config.broker).model_validate({"name": config.broker.name, **params,
                                                               "products": products})
    return config.model_copy(update=update)
