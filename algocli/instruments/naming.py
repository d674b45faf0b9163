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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from algocli.broker.spec import broker_specs
from algocli.config.run import RunConfig
from algocli.errors import ConfigError
from algocli.instruments.cache import MasterUnavailable, Refresh, open_master
from algocli.instruments.master import InstrumentMaster, merge
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_instruments

__all__ = ["RunNames", "is_broker_id", "name_run"]

def is_broker_id(text: str) -> bool:
    """True for an id some registered broker takes as it is (``NSE_EQ:1333``, ``NSE_EQ|INE040A01034``)."""
    return any(spec.is_id(text) for spec in broker_specs().values())


@dataclass
class RunNames:
    """What ``name_run`` found: the renamed config and, per HRN, the instrument."""

    config: RunConfig
    instruments: dict[str, Instrument] = field(default_factory=dict)
    source: str = ""

    def ids(self) -> dict[str, dict[str, str]]:
        """Registered broker → HRN → that broker's id (``{"dhan": {"NSE:HDFCBANK": "NSE_EQ:1333"}}``)."""
        out: dict[str, dict[str, str]] = {}
        for name, spec in broker_specs().items():
            out[name] = {hrn: ident for hrn, inst in self.instruments.items() if (ident := spec.instrument_id(inst))}
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
             urls: dict[str, str] | None = None, quiet_cache: bool = True, today: date | None = None) -> RunNames:
    """Rename ``config``'s instruments to their HRNs.

    A data folder's own list (``extra``) that names every instrument is all that is read:
    no cache, no download, no message. Otherwise the master is opened; a broker id that no
    list names keeps its id, with one line to ``warn`` saying so when a data folder was given.

    Args:
        config: The validated run definition.
        source: The YAML path, for messages.
        refresh: How to refresh the master when an HRN makes it necessary.
        extra: Instrument files added to the master (a data folder's ``instruments.csv``).
        warn: Receives one line when a download failed and the cache stood in, when a
            broker id has no name, and when a year-less contract names only expired ones.
        master: Use this master instead of opening one (tests, callers that have one).
        urls: Where to download the brokers' files from (the sandbox's); default the settings'.
        quiet_cache: When every instrument is a broker id, only read the cache (backtests);
            False refreshes it as ``refresh`` says anyway (paper and live runs, online anyway).
        today: The IST date a year-less contract is picked for (tests); default today.

    Raises:
        ConfigError: A name is unknown to the master, or needs a master that is missing.
    """
    names = _names(config)
    needs_master = any(not is_broker_id(n) for n in names)
    extra = [Path(p) for p in extra]
    local = _local(extra, today)
    missing = [n for n in names if local is None or local.get(n) is None]
    lists = [master] if master is not None else []
    if master is None and missing:
        try:
            lists.append(open_master(refresh=refresh if needs_master or not quiet_cache else "never", warn=warn,
                                     urls=urls, today=today))
        except MasterUnavailable as exc:
            folders = [str(p.parent) for p in extra if not p.parent.is_dir()]
            if any(not is_broker_id(n) for n in missing):
                wanted = next(n for n in missing if not is_broker_id(n))
                why = (f"there is no folder {', '.join(folders)}; check data.path, or fill the folder with "
                       "`algo download-data`") if folders else str(exc)
                near = local.near(wanted) if local is not None else []
                hint = f" (did you mean {' or '.join(repr(n) for n in near)}, in {local.source}?)" if near else ""
                # the list the trader keeps is the likelier fix than the network
                unlisted = f" not in {local.source}{hint}, and" if local is not None else f" a name{hint}, and"
                raise ConfigError(f"{source}: instrument {wanted!r} is{unlisted} {why}") from None
            # Only a data folder's run says so (its list should name its files); a missing folder the feed reports.
            if warn is not None and extra and not folders:
                where = f"{local.source} does not list it, and " if local is not None else ""
                unnamed = ", ".join(repr(n) for n in missing)
                warn(f"{source}: {unnamed} {'keeps its' if len(missing) == 1 else 'keep their'} broker "
                     f"id{'s' if len(missing) > 1 else ''} in the artifacts ({where}{exc})")
    if local is not None:
        lists.append(local)  # after the master: its rows win, as ``open_master``'s ``extra`` did
    if not lists:
        return RunNames(config)
    for each in lists:
        each.warn = each.warn or warn
    found: dict[str, Instrument] = {}
    for i, entry in enumerate(config.strategies):
        for name in entry.instruments:
            inst = next((hit for hit in (m.get(name) for m in lists) if hit is not None), None)
            if inst is None and not is_broker_id(name):
                lists[0].resolve(name, field=f"{source}: strategies[{i}].instruments")
            if inst is not None:
                found[name] = inst
    if not found:
        return RunNames(config, source=lists[0].source)
    return RunNames(_renamed(config, {k: v.hrn for k, v in found.items()}), {v.hrn: v for v in found.values()},
                    lists[0].source)


def _local(extra: Iterable[Path], today: date | None) -> InstrumentMaster | None:
    """The data folder's own list, or None when there is none."""
    files = [Path(p) for p in extra if Path(p).is_file()]
    if not files:
        return None
    return InstrumentMaster(merge(*(read_instruments(p) for p in files)), source=" + ".join(map(str, files)),
                            today=today)


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
