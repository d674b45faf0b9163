"""Build a runnable backtest from a validated run definition, resolving every plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from algocli.broker.costs import SHIPPED_CHARGES
from algocli.config.run import RunConfig, check_instruments, default_strategy_id, parse_plugin_config
from algocli.engine.backtest import Backtest
from algocli.errors import ConfigError
from algocli.registry import resolve
from algocli.strategy.base import BaseStrategy

if TYPE_CHECKING:
    from algocli.instruments.naming import RunNames


@dataclass
class Plugins:
    """Every plugin a run definition names, resolved and configured."""

    config: RunConfig
    feed_cls: type
    feed_cfg: object
    fill_model: object
    broker_cls: type
    broker_cfg: object
    strategies: list[tuple[str, BaseStrategy, list[str]]]
    cost_cls: type
    source: str = ""

    @property
    def instruments(self) -> list[str]:
        return list(dict.fromkeys(inst for _, _, insts in self.strategies for inst in insts))

    @property
    def cost_model(self):
        """A fresh cost model (see ``new_cost_model``); read it once per run."""
        return self.new_cost_model()

    def new_cost_model(self, warn: Callable[[str], None] | None = None):
        """A new cost model for one run: it keeps per-day state (Indian charges), so runs never share one.

        The broker section's ``charges`` (with ``rounding``) selects Indian charges by kind
        (``algocli.market.charges.IndianCharges``); otherwise ``commission_rate`` is a flat rate.

        Args:
            warn: Receives a line when a fill's date is outside a charges table (default: logged).

        Raises:
            ConfigError: ``charges`` names a file that does not exist.
            DataError: The charges table has an invalid row.
        """
        cfg = self.broker_cfg
        table = cfg.charges_table(Path(self.source).parent) if getattr(cfg, "charges", None) else None
        if table is None:
            return self.cost_cls(getattr(cfg, "commission_rate", 0.0))
        if table not in SHIPPED_CHARGES and not Path(table).is_file():
            raise ConfigError(f"{self.source}: broker.charges: {table} does not exist; give dhan, upstox, none "
                              "or the path of a CSV charges table (relative to the run definition's folder)")
        return self.cost_cls(table, rounding=cfg.rounding or "paise", on_warning=warn)

    def product_rules(self):
        """The broker section's product rules (square-off, margin), or None when it names no product,
        charges, squareoff or margin (``AccountConfig.product_rules``).

        Raises:
            ConfigError: A bad ``squareoff`` or ``margin`` value, named with the file.
        """
        rules_of = getattr(self.broker_cfg, "product_rules", None)
        if rules_of is None:
            return None
        try:
            return rules_of(self.config.broker.name)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    @property
    def trade_from(self) -> int | None:
        """``Backtest``'s ``trade_from``: ``data.start`` when ``data.warmup`` loads bars before it."""
        from algocli.data.window import trade_from

        return trade_from(self.feed_cfg)

    def plugin_configs(self) -> dict[str, dict]:
        return {
            "data": self.feed_cfg.model_dump(mode="json"),
            "broker": _broker_dump(self.broker_cfg),
            "fill_model": self.fill_model.config.model_dump(mode="json"),
            "strategies": [s.params.model_dump(mode="json") for _, s, _ in self.strategies],
        }


def _broker_dump(broker_cfg) -> dict:
    """The broker section as it ran. The product-rule keys are left out when the YAML gave none:
    writing their defaults would switch the rules on when the resolved file is run again."""
    from algocli.broker.costs import RULE_KEYS

    dump = broker_cfg.model_dump(mode="json")
    if not broker_cfg.model_fields_set & RULE_KEYS:
        dump = {k: v for k, v in dump.items() if k not in RULE_KEYS}
    return dump


@dataclass
class Assembled:
    """A run ready to start, plus what the artifacts need to describe it."""

    backtest: Backtest | None
    config: RunConfig
    data_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plugin_configs: dict[str, dict] = field(default_factory=dict)

    def resolved(self) -> dict:
        """The run definition with every plugin default filled in, as plain data."""
        out = self.config.model_dump(mode="json", by_alias=True)
        out["data"] = {"feed": self.config.data.feed, **self.plugin_configs["data"]}
        out["broker"] = {"name": self.config.broker.name, **self.plugin_configs["broker"]}
        out["fill_model"] = {"name": self.config.fill_model.name, **self.plugin_configs["fill_model"]}
        for entry, params in zip(out["strategies"], self.plugin_configs["strategies"]):
            entry["params"] = params
        return out


def resolve_plugins(config: RunConfig, source: str) -> Plugins:
    """Resolve and configure the feed, fill model, broker and strategies of ``config``."""
    feed_cls = resolve("feed", config.data.feed, where=f"{source}: data.feed")
    feed_cfg = _plugin_config(feed_cls, config.data.plugin_params, source, "data")
    fill_cls = resolve("fill model", config.fill_model.name, where=f"{source}: fill_model.name")
    fill_model = fill_cls(_plugin_config(fill_cls, config.fill_model.plugin_params, source, "fill_model"))
    broker_cls = resolve("broker", config.broker.name, where=f"{source}: broker.name")
    broker_cfg = _plugin_config(broker_cls, config.broker.plugin_params, source, "broker")
    # ``charges`` selects Indian charges; else ``commission_rate`` (every broker section has one), a flat rate.
    if getattr(broker_cfg, "charges", None):
        cost_cls = resolve("cost model", "indian", where=f"{source}: broker.charges")
    else:
        cost_cls = resolve("cost model", "percent", where=f"{source}: broker.commission_rate")
    strategies = []
    seen: set[str] = set()
    for i, entry in enumerate(config.strategies):
        sid = entry.id or default_strategy_id(entry.class_, i)
        if sid in seen:
            raise ConfigError(f"{source}: strategies[{i}].id: duplicate strategy id {sid!r}; "
                              "give each strategy a unique id")
        seen.add(sid)
        if not entry.instruments:
            raise ConfigError(f"{source}: strategies[{i}].instruments: required key is missing; list the "
                              "instruments it trades (or give its class an `instruments` property)")
        strategies.append((sid, _build_strategy(entry, i, source), list(entry.instruments)))
    return Plugins(config, feed_cls, feed_cfg, fill_model, broker_cls, broker_cfg, strategies, cost_cls, source)


def declare_instruments(config: RunConfig, source: str, deferred: list | None = None) -> RunConfig:
    """``config`` with each strategy's instruments checked against its class's ``instruments``
    property, or taken from it when the YAML lists none. Call it before naming the instruments.

    Args:
        config: The validated run definition, instruments as the YAML writes them.
        source: The YAML path, used in error messages.

    Raises:
        ConfigError: The YAML's list differs from the property's, or the property's is not a
            list of instrument names.
    """
    entries = []
    for i, entry in enumerate(config.strategies):
        cls = resolve("strategy", entry.class_, where=f"{source}: strategies[{i}].class")
        if cls.declares_instruments():
            entry = _declared(entry, _build_strategy(entry, i, source), i, source, deferred)
        entries.append(entry)
    return config.model_copy(update={"strategies": entries})


def name_declared(config: RunConfig, source: str, name: Callable[[RunConfig], RunNames]) -> RunNames:
    """``name(config)`` (``instruments.naming.name_run`` or the live runs' one) after
    ``declare_instruments``: a YAML list that spells a class's instruments another way (``NSE:HDFCBANK``
    for its ``NSE_EQ:1333``) is checked once the instrument lists have named both."""
    deferred: list[tuple[int, list[str], str]] = []
    names = name(declare_instruments(config, source, deferred))
    for i, declared, cls in deferred:
        named = names.config.strategies[i].instruments
        spellings = {s for hrn in named for s in (hrn, *names.aliases(hrn))}
        if len(set(named)) != len(set(declared)) or not set(declared) <= spellings:
            raise ConfigError(f"{source}: strategies[{i}].instruments: {config.strategies[i].instruments} differ from "
                              f"{declared}, which {cls}.instruments names; list the same instruments, or drop the "
                              "YAML's list to use the class's")
    return names


def _declared(entry, strategy: BaseStrategy, i: int, source: str, deferred: list | None = None):
    where = f"{source}: strategies[{i}].instruments"
    declared = strategy.declared_instruments()
    try:
        declared = check_instruments(declared)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {strategy.name}.instruments: {exc}") from None
    if not entry.instruments:
        return entry.model_copy(update={"instruments": declared})
    if set(entry.instruments) != set(declared) and deferred is not None:
        deferred.append((i, declared, strategy.name))  # perhaps the same ones spelled another way: name_declared
    elif set(entry.instruments) != set(declared):
        raise ConfigError(f"{where}: {entry.instruments} differ from {declared}, which {strategy.name}.instruments "
                          "names; list the same instruments, or drop the YAML's list to use the class's")
    return entry


def assemble_backtest(config: RunConfig, source: str, warn: Callable[[str], None] | None = None) -> Assembled:
    """Resolve every plugin of ``config``, load the data and build the backtest.

    Args:
        config: The validated run definition.
        source: The YAML path, used in error messages.
        warn: Called with each data-repair warning.
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    # A live feed is refused before names are looked up: naming may need a download.
    if not hasattr(resolve("feed", config.data.feed, where=f"{source}: data.feed"), "load"):
        raise ConfigError(f"{source}: data.feed: {config.data.feed!r} is a live feed; "
                          "backtests read files, use `feed: csv` (or run `algo paper`)")
    names = _name_instruments(config, source, warn or (lambda _: None))
    config = names.config
    plugins = resolve_plugins(config, source)
    cost_model = plugins.new_cost_model(_warn)  # before the data: a bad charges table fails fast
    feed = plugins.feed_cls(plugins.feed_cfg)
    if hasattr(feed, "aliases"):
        feed.aliases = {hrn: names.aliases(hrn) for hrn in names.instruments}
    universe, wanted = _option_universe(feed, plugins.feed_cfg, source)
    bars = feed.load(list(dict.fromkeys([*plugins.instruments, *wanted])), config.interval, warn=_warn)
    files = list(feed.files_used())
    if universe:
        if (odd := _lot_one_warning(universe)) is not None:
            _warn(f"{_options_dir(feed, plugins.feed_cfg) / 'instruments.csv'}: {odd}")
        # contracts listed after the warm-up began have no bars there: they are loaded from data.start
        chain = feed.__class__(plugins.feed_cfg.model_copy(update={"path": _options_dir(feed, plugins.feed_cfg),
                                                                   "warmup": 0}))
        chain.aliases = {r.hrn: tuple(i for i in r.ids() if i != r.hrn) for r in universe}
        # sparse contract files (a rolling download's holes) take the underlying's bar length
        chain.sparse_minutes = getattr(feed, "natives", {}).get(wanted[0]) or config.interval.minutes
        traded = [r.hrn for r in universe if chain.file_for(r.hrn).is_file()]
        bars.update(chain.load(traded, config.interval, warn=_warn))
        files += chain.files_used()
    broker_cfg = plugins.broker_cfg
    bt = Backtest(
        bars, initial_capital=config.initial_capital, fill_model=plugins.fill_model,
        cost_model=cost_model, interval=config.interval, name=config.name,
        instruments=names.metadata(), products=dict(getattr(broker_cfg, "products", {})),
        default_product=getattr(broker_cfg, "product", "INTRADAY"), rules=plugins.product_rules(),
        universe=universe, trade_from=plugins.trade_from,
    )
    for sid, strategy, instruments in plugins.strategies:
        bt.add_strategy(strategy, instruments, sid)
    if universe and plugins.feed_cfg.options.pcr is not None:  # ctx.pcr replays a recorded series
        from algocli.options.source import replay_chains

        bt.core.chains = replay_chains(bt.core, _options_file(feed, plugins.feed_cfg.options.pcr), source)
        files.append(Path(bt.core.chains.replay.path))
    if config.risk is not None:
        from algocli.risk import attach_risk
        from algocli.risk.config import square_off_warning

        if (late := square_off_warning(config.risk.square_off, config.interval.minutes)) is not None:
            _warn(f"{source}: {late}")

        attach_risk(bt.core, config.risk, state_path=None)  # a backtest keeps its risk state in memory
    return Assembled(bt, config, files, warnings, plugins.plugin_configs())


def _options_dir(feed, cfg) -> Path:
    path = cfg.options.path
    return feed.directory if path is None else _options_file(feed, path)


def _options_file(feed, path: Path) -> Path:
    return path if path.is_absolute() else feed.directory / path


def _option_universe(feed, cfg, source: str) -> tuple[list, list[str]]:
    """``data.options``: the underlying's option rows from the options folder's ``instruments.csv``,
    and the instruments to load besides the strategies' (the underlying).

    Raises:
        ConfigError: The folder has no instruments.csv, or it lists no option of the underlying.
    """
    options = getattr(cfg, "options", None)
    if options is None:
        return [], []
    from algocli.instruments.table import read_instruments
    from algocli.strategy.contracts import canonical_underlying, options_on

    listing = _options_dir(feed, cfg) / "instruments.csv"
    if not listing.is_file():
        raise ConfigError(f"{source}: data.options.path: {listing} does not exist; put the contracts' "
                          "instruments.csv (and one CSV per contract) there")
    under = canonical_underlying(options.underlying)
    rows = options_on(read_instruments(listing), under)
    if not rows:
        raise ConfigError(f"{source}: data.options.underlying: {listing} lists no option of {under}")
    return rows, [under]


def _lot_one_warning(rows: list) -> str | None:
    """A line for index contracts listed with lot size 1 where the exchange's lot is known
    (``algocli.market.lots``): the lot check would pass any quantity, and a 'lot' would be one unit.
    Older downloads wrote 1 for contracts the current master no longer listed."""
    from algocli.market.lots import lot_size

    odd = []
    for r in rows:
        if r.lot_size == 1 and r.expiry is not None:
            known = lot_size(r.symbol, r.expiry, "month") or lot_size(r.symbol, r.expiry, "week")
            if known not in (None, 1):
                odd.append((r.hrn, known))
    if not odd:
        return None
    first, lot = odd[0]
    return (f"{len(odd)} contract(s) are listed with lot size 1 where the exchange's lot was another (first: {first}, "
            f"lot {lot}); the lot check passes any quantity and a lot is one unit: set their lot_size there, or "
            "download them again with algo download-data, which writes the lot")


def _name_instruments(config: RunConfig, source: str, warn: Callable[[str], None]):
    """Rename instruments to their HRNs from the cached master and the data folder's list.

    A backtest never downloads unless the YAML uses a name only the master can read.
    """
    from algocli.instruments.naming import name_run

    feed_cls = resolve("feed", config.data.feed, where=f"{source}: data.feed")
    feed_cfg = _plugin_config(feed_cls, config.data.plugin_params, source, "data")
    directory = getattr(feed_cls(feed_cfg), "directory", None) if hasattr(feed_cls, "load") else None
    extra = [directory / "instruments.csv"] if directory is not None else []
    return name_declared(config, source, lambda declared: name_run(declared, source, extra=extra, warn=warn))


def _plugin_config(cls: type, params: dict, source: str, section: str):
    return parse_plugin_config(cls.Config, params, source, section)  # ``resolve`` checked it has one


def _build_strategy(entry, i: int, source: str) -> BaseStrategy:
    cls = resolve("strategy", entry.class_, where=f"{source}: strategies[{i}].class")
    params = parse_plugin_config(cls.Params, entry.params, source, f"strategies[{i}].params")
    try:
        return cls.from_params(params)
    except (TypeError, ValueError) as exc:  # an __init__ that checks its keyword arguments itself
        raise ConfigError(f"{source}: strategies[{i}].params: {cls.__name__} refused them: {exc}") from None
