"""Run a paper, dry-run or live session as a library, without the CLI.

A script does what ``algo paper`` and ``algo live`` do in four calls::

    import asyncio
    from algocli.domain.modes import RunMode
    from algocli.engine.runtime import (
        finish_session, load_live_run, open_session, run_session, write_session_artifacts)

    session = open_session(load_live_run("configs/paper.yaml", "paper"), RunMode.PAPER)
    asyncio.run(run_session(session, duration=60))       # or until SIGINT/SIGTERM
    result = finish_session(session)                      # None if no candle closed
    if result is not None:
        write_session_artifacts(session, result, report=True)

``run_session`` connects the feed (and, live, the broker, reconciling it with the journal),
trades until SIGINT, SIGTERM, the duration or an error, and disconnects. SIGUSR1 is the
kill switch: it halts the run as ``algo halt`` does. What the session has to show goes to
a ``SessionView``: the CLI passes its Rich dashboard; without one, notes are logged.

Each mode keeps its own journal, risk state and artifacts (``RunMode.output_dir``): a dry
run writes to ``<output>/dry-run/``, so it is never replayed as a live run's history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from algocli.domain.modes import RunMode
from algocli.engine.folders import mark_dry_run, refuse_foreign_journal, refuse_live_folder, risk_state_path
from algocli.errors import ConfigError

if TYPE_CHECKING:
    from algocli.analytics.result import RunResult

POLL_S = 0.25  # how often the loop checks for a stop, errors, the kill switch and candles due
log = logging.getLogger(__name__)


class SessionView(Protocol):
    """What a running session shows; the CLI's dashboard is one, ``LogView`` another."""

    def started(self) -> None:
        """The feed is subscribed and the engine trades."""

    def refresh(self, engine: Any, feed_status: Any) -> None:
        """Called every ``POLL_S`` seconds with the engine and its feed's ``FeedStatus``."""

    def stopped(self) -> None:
        """The loop ended (normally or by an error)."""

    def note(self, kind: str, line: str) -> None:
        """A line for the operator. ``kind`` is ``resume``, ``reconciled``, ``risk``, ``engine`` or ``feed``."""


class LogView:
    """A ``SessionView`` that shows nothing and logs its notes (for scripts)."""

    def started(self) -> None:
        pass

    def refresh(self, engine: Any, feed_status: Any) -> None:
        pass

    def stopped(self) -> None:
        pass

    def note(self, kind: str, line: str) -> None:
        log.info("%s", line)


@dataclass
class LiveRun:
    """A paper or live run definition ready to open: validated, named and resolved.

    Attributes:
        config: The ``RunConfig`` with its instruments named.
        plugins: Its resolved plugins (``algocli.engine.assemble.Plugins``).
        instrument_ids: Name → broker id maps per broker, None when the run names
            instruments by broker id.
        config_path: The run definition's path as given (for artifacts and hints).
    """

    config: Any
    plugins: Any
    instrument_ids: dict | None
    config_path: Path
    metadata: dict | None = None  # the master's Instrument per name (lots, ticks), when it named them
    universe: list = field(default_factory=list)  # data.options: the contracts ctx.option picks from

    @property
    def instruments(self) -> list[str]:
        """What the run subscribes: the strategies' instruments, then ``data.options``' underlying and contracts."""
        extra = []
        if self.universe:
            from algocli.strategy.contracts import canonical_underlying

            extra = [canonical_underlying(self.plugins.feed_cfg.options.underlying), *(r.hrn for r in self.universe)]
        return list(dict.fromkeys([*self.plugins.instruments, *extra]))


@dataclass
class Session:
    """An opened session: the engine with its strategies and risk controller, the feed and,
    for a live run, the real broker.

    Attributes:
        run: What was opened.
        mode: ``PAPER``, ``DRY_RUN`` or ``LIVE``.
        engine: The ``PaperEngine`` (built with a ``LiveRouter`` when live).
        feed: The live feed.
        broker: The real broker (live only; None otherwise).
        out_dir: This mode's folder: journal, risk state and artifacts.
        output: The ``--output`` the command was given (None: the run definition's folder).
    """

    run: LiveRun
    mode: RunMode
    engine: Any
    feed: Any
    broker: Any
    out_dir: Path
    output: Path | None = None

    def resume_command(self) -> str:
        """The command that resumes this session, as the operator typed it."""
        return self.mode.resume_command(self.run.config_path, self.output)

    def halt_command(self, *, clear: bool = False) -> str:
        """The ``algo halt`` (``--clear``) that reaches this session."""
        return self.mode.halt_command(self.run.config_path, self.output, clear=clear)

    @property
    def journal_path(self) -> Path:
        return self.out_dir / "journal.jsonl"


# --- opening a session ----------------------------------------------------------------------


def load_live_run(config: Path | str, command: str, warn: Callable[[str], None] | None = None, *,
                  real_broker: bool = False) -> LiveRun:
    """Read the run definition of ``algo paper``/``algo live``: validated, its instruments named
    (``name_live_run``) and its plugins resolved.

    Args:
        config: The YAML run definition.
        command: ``paper`` or ``live``, for the error message.
        warn: Receives warnings about instrument names (default: logged).
        real_broker: Orders go to the run definition's broker (``algo live`` without --dry-run),
            whose credentials are then needed too.

    Returns:
        The run, ready for ``open_session``.

    Raises:
        ConfigError: The YAML is invalid, a name is unknown, the feed is not a live one, or the
            feed's (or the real broker's) credentials are not set.
    """
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import name_declared, resolve_plugins
    from algocli.risk.config import square_off_warning
    from algocli.registry import names_with

    config = Path(config)
    loaded = load_run_config(config)
    _check_credentials(loaded, config, real_broker)  # before the instrument list, the journal or the screen
    _check_feed_section(loaded, config)  # its URLs name where the instrument list is fetched from
    names = name_declared(loaded, str(config), lambda declared: name_live_run(declared, config, warn))
    cfg = names.config
    plugins = resolve_plugins(cfg, str(config))
    if not hasattr(plugins.feed_cls, "live"):
        raise ConfigError(f"{config}: data.feed: {cfg.data.feed!r} is not a live feed; "
                          f"`algo {command}` needs one of: {', '.join(names_with('feed', 'live'))}")
    run = LiveRun(cfg, plugins, names.ids() if names.instruments else None, config,
                  names.metadata() if names.instruments else None)
    _add_options(run, warn)
    if cfg.risk is not None and (late := square_off_warning(cfg.risk.square_off, cfg.interval.minutes)) is not None:
        (warn or log.warning)(f"{config}: {late}")
    return run


def _check_feed_section(cfg, config: Path) -> None:
    """Validate the ``data:`` section by its feed's own model, before anything is fetched with it.

    Raises:
        ConfigError: A key or value the feed refuses (``data.url: 'not a url' is not ...``).
    """
    from algocli.config.run import parse_plugin_config
    from algocli.registry import resolve

    feed = resolve("feed", cfg.data.feed, where=f"{config}: data.feed")
    if hasattr(feed, "Config"):
        parse_plugin_config(feed.Config, cfg.data.plugin_params, str(config), "data")


def _check_credentials(cfg, config: Path, real_broker: bool) -> None:
    """Refuse a run whose live feed, or real broker, has no credentials in the environment or ``.env``.

    Raises:
        ConfigError: Naming the variables to set.
    """
    from algocli.broker.spec import broker_specs

    specs = broker_specs()
    used = [cfg.data.feed] + ([cfg.broker.name] if real_broker else [])
    missing = list(dict.fromkeys(v for name in used if name in specs for v in specs[name].missing_credentials()))
    if missing:
        raise ConfigError(f"{config}: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; set "
                          f"{'it' if len(missing) == 1 else 'them'} in the environment or .env (for `algo sandbox`: "
                          "`set -a; source FILE; set +a` with the file its --env-file wrote)")


def _add_options(run: LiveRun, warn: Callable[[str], None] | None) -> None:
    """``data.options``: list the contracts on ``run`` (``algocli.engine.live_options``), with their ids and metadata."""
    from algocli.broker.spec import broker_specs
    from algocli.engine.live_options import option_universe

    cfg = run.config
    rows = option_universe(cfg.data.feed, run.plugins.feed_cfg, _master_urls(cfg), str(run.config_path),
                           warn or (lambda line: log.warning("%s", line)))
    if not rows:
        return
    run.universe = rows
    run.metadata = {**{r.hrn: r for r in rows}, **(run.metadata or {})}
    ids = run.instrument_ids or {}
    for name, spec in broker_specs().items():
        ids[name] = {**{r.hrn: i for r in rows if (i := spec.instrument_id(r))}, **ids.get(name, {})}
    run.instrument_ids = ids


def name_live_run(cfg, config: Path, warn: Callable[[str], None] | None = None):
    """``instruments.naming.name_run`` for paper and live runs: names from the brokers' lists
    (a sandbox feed's own, from its URL), refreshed once a day; see the README.

    Args:
        cfg: The validated ``RunConfig``.
        config: Its path, for messages.
        warn: Receives each warning line (default: logged).
    """
    from algocli.instruments.naming import name_run

    return name_run(cfg, str(config), urls=_master_urls(cfg), quiet_cache=False,
                    warn=warn or (lambda line: log.warning("%s", line)))


def _master_urls(cfg) -> dict[str, str] | None:
    """Where a run's instrument lists come from: a sandbox feed's own, else (None) the brokers' settings."""
    from algocli.broker.spec import broker_specs

    if cfg.data.feed != "sandbox":
        return None
    # the sandbox serves each broker's list at the broker's own path
    base = str(cfg.data.plugin_params.get("url", "http://127.0.0.1:8765")).rstrip("/")
    return {name: f"{base}{spec.master_path()}" for name, spec in broker_specs().items() if spec.sandbox_feed}


def open_session(run: LiveRun, mode: RunMode, *, output: Path | None = None, fresh: bool = False) -> Session:
    """Build the engine, strategies, risk controller, feed and (live) broker of a session.

    Nothing connects yet: ``run_session`` does. The journal in ``mode``'s folder is replayed,
    so a stopped or crashed session of the same mode resumes.

    Args:
        run: From ``load_live_run``.
        mode: ``RunMode.PAPER``, ``RunMode.DRY_RUN`` (the simulated broker on a live run
            definition) or ``RunMode.LIVE``.
        output: Overrides the run definition's ``output.dir``.
        fresh: Set the old journal aside (renamed with a time stamp) and the risk
            controller's day back, and start a new run.

    Returns:
        The session.

    Raises:
        ConfigError: A live session found a journal that no live run wrote.
        FolderBusyError: Another session runs from the mode's folder (``algocli.persistence.lock``).
    """
    from algocli.engine.paper import PaperEngine, live_feed
    from algocli.persistence.lock import hold_folder
    from algocli.persistence.output import check_output_dir

    cfg, plugins = run.config, run.plugins
    base = cfg.output_dir(output)
    out_dir = check_output_dir(mode.output_dir(base))  # before any work: the journal and artifacts go there
    hold_folder(out_dir, "pass another --output")  # before the journal is read: one session per folder
    journal = out_dir / "journal.jsonl"
    if mode is RunMode.PAPER:
        refuse_live_folder(out_dir)  # even with --fresh: that would set the live run's journal aside
    if fresh and journal.exists():
        journal.rename(out_dir / f"journal.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    common = dict(interval=cfg.interval, initial_capital=cfg.initial_capital, journal_path=journal, name=cfg.name,
                  cost_model=plugins.cost_model, metadata=run.metadata, rules=plugins.product_rules(),
                  **_products(plugins.broker_cfg))
    broker = None
    if mode is RunMode.LIVE:
        from algocli.engine.live import build_live_engine
        from algocli.engine.paper import live_broker

        refuse_foreign_journal(journal)
        broker = live_broker(plugins, run.instrument_ids)
        engine = build_live_engine(run.instruments, broker=broker, run_id=cfg.name,
                                   validity=plugins.broker_cfg.validity, **common)
    else:
        engine = PaperEngine(run.instruments, fill_model=plugins.fill_model, **common)
        if mode is RunMode.DRY_RUN:
            mark_dry_run(engine)
    engine.core.universe = list(run.universe)
    for sid, strategy, instruments in plugins.strategies:
        engine.add_strategy(strategy, instruments, sid)
    from algocli.options.broker_source import attach_broker_chains  # ctx.option_chain/ctx.pcr; fetches when asked

    attach_broker_chains(engine, cfg.data.feed, plugins.feed_cfg, mode.value, out_dir)
    if cfg.risk is not None:
        _attach_risk(engine, cfg.risk, risk_state_path(cfg, base, mode), fresh,
                     mode.halt_command(run.config_path, output, clear=True))
    feed = live_feed(plugins, run.instrument_ids)
    engine.feed_in_order(bool(getattr(feed, "in_order", False)))  # a replay's ticks need no grace
    return Session(run, mode, engine, feed, broker, out_dir, output)


def _products(broker_cfg) -> dict:
    """The product per instrument of a broker config that has them (the live brokers'), as engine arguments."""
    if not hasattr(broker_cfg, "product"):
        return {}
    return {"products": dict(broker_cfg.products), "default_product": broker_cfg.product}


def _attach_risk(engine, risk_cfg, state_path: Path, fresh: bool, clear_command: str) -> None:
    """Put the run's risk controller on the engine's order path; ``fresh`` starts its day anew."""
    from algocli.risk import attach_risk

    risk = attach_risk(engine.core, risk_cfg, state_path=state_path, clear_command=clear_command)
    if fresh:
        risk.reset_day()


# --- running it -------------------------------------------------------------------------------


async def run_session(session: Session, *, duration: float | None = None, view: SessionView | None = None) -> None:
    """Connect, trade until stopped, disconnect.

    Stops on SIGINT or SIGTERM, after ``duration`` seconds, or by raising the feed's error
    (e.g. a rejected token) or the engine's (a strategy that raised). SIGUSR1 halts the run
    through its risk controller, as ``algo halt`` does. A live session connects the broker and
    reconciles it with the journal before the feed starts, and drains in-flight broker calls
    and disconnects afterwards, also when it fails. Signal handlers are removed on the way out.
    Must run in the main thread (signal handlers).

    Args:
        session: From ``open_session``.
        duration: Stop by itself after this many seconds (None: until a signal).
        view: Shows the session; ``LogView`` when None.

    Raises:
        ReconciliationError: A live session's broker positions differ from the journal.
        Exception: The feed's or engine's error.
    """
    view = view if view is not None else LogView()
    engine, feed, broker = session.engine, session.feed, session.broker
    instruments = session.run.instruments
    stop = asyncio.Event()
    handled = _install_signals(asyncio.get_running_loop(), stop, engine.core.risk)
    try:
        reconciled = []
        if broker is not None:  # a live run restores its orders and fills with the broker's
            await broker.connect()
            reconciled = await engine.router.reconcile(engine.journal_records, instruments)
            engine.restored.update(engine.router.restored)
        if any(engine.restored.values()):
            from algocli.engine.feed_report import resume_line

            view.note("resume", resume_line(session))
        for note in reconciled:
            view.note("reconciled", f"reconciled: {note}")
        feed.on_tick(engine.on_tick)
        await feed.connect()
        await feed.subscribe(instruments)
        engine.start()
        funds = asyncio.create_task(_read_funds(broker, engine)) if broker is not None else None
        try:
            await _trade(engine, feed, stop, duration, view)
        finally:
            if funds is not None:
                funds.cancel()
            await feed.disconnect()
    finally:
        if broker is not None:
            await engine.router.drain()
            await broker.disconnect()
        loop = asyncio.get_running_loop()
        for sig in handled:
            loop.remove_signal_handler(sig)


FUNDS_EVERY_S = 30.0  # the dashboard's "available" of a live run: one funds request per 30 s


async def _read_funds(broker, engine) -> None:
    """Keep ``engine.broker_funds`` (the broker's available funds, for the view) fresh until cancelled."""
    while True:
        try:
            engine.broker_funds = await broker.get_balance()
        except Exception as exc:  # the view shows the last value; orders report real trouble themselves
            log.debug("reading the broker's funds failed: %s", exc)
        await asyncio.sleep(FUNDS_EVERY_S)


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, risk) -> list[int]:
    """SIGINT/SIGTERM stop the session; SIGUSR1 (with a risk controller) halts it like ``algo halt``."""
    handled = [signal.SIGINT, signal.SIGTERM]
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    if risk is not None:  # the kill switch: kill -USR1 <pid>
        loop.add_signal_handler(signal.SIGUSR1, lambda: risk.halt("SIGUSR1 received", source="signal"))
        handled.append(signal.SIGUSR1)
    return handled


async def _trade(engine, feed, stop: asyncio.Event, duration: float | None, view: SessionView) -> None:
    """The session's loop: every ``POLL_S``, raise errors, apply the kill switch, release due candles."""
    deadline = None if duration is None else time.monotonic() + duration
    view.started()
    reconnects = _reconnects(feed)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=POLL_S)
            except asyncio.TimeoutError:
                pass
            if feed.error is not None:  # e.g. the token was rejected: stop, do not retry
                raise feed.error
            if engine.error is not None:  # the engine failed inside a tick (a full disk, a strategy)
                raise engine.error
            risk = engine.core.risk
            if risk is not None:  # `algo halt` writes the state file; SIGUSR1 halts directly
                risk.refresh()
                for line in risk.new_events():
                    view.note("risk", f"risk: {line}")
            _take_engine_events(engine, view)
            reconnects = _note_reconnects(feed, view, reconnects)
            engine.on_time(engine.exchange_now())
            view.refresh(engine, feed.status)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        _take_engine_events(engine, view)
        view.stopped()


def _reconnects(feed) -> int:
    return getattr(getattr(feed, "status", None), "reconnects", 0) or 0


def _note_reconnects(feed, view: SessionView, seen: int) -> int:
    """A line when the feed dropped or went silent and reconnects (the dashboard only counts them)."""
    now = _reconnects(feed)
    if now > seen:
        status = feed.status
        view.note("feed", f"feed {status.name}: {status.last_error or 'connection lost'}; reconnecting "
                          f"({now} reconnect(s) so far)")
    return now


def _take_engine_events(engine, view: SessionView) -> None:
    events = getattr(engine, "events", None)  # lines the engine leaves for the operator (halted strategies)
    while events:
        view.note("engine", events.pop(0))


# --- the end ----------------------------------------------------------------------------------


def finish_session(session: Session) -> RunResult | None:
    """Stop the engine (strategies' ``on_stop``, candles still forming become final) and build
    the run's result.

    A note names positions still open and the command that resumes them in this mode.

    Returns:
        The result, or None when no candle closed during the run (the journal is kept).
    """
    from algocli.engine.results import build_result

    engine = session.engine
    engine.stop(engine.exchange_now())
    ts = engine.timeline()
    if not len(ts):
        return None
    engine.bars = engine.snapshot_bars()
    result = build_result(engine, ts)
    from algocli.engine.feed_report import feed_notes

    result.notes.extend(feed_notes(getattr(session.feed, "status", None), engine.bars, engine.interval.minutes,
                                   engine.restored))
    open_positions = sum(1 for p in engine.core.ledger.positions.values() if p.quantity)
    if open_positions:
        result.notes.append(f"{open_positions} position(s) are still open, valued at the last close; run "
                            f"`{session.resume_command()}` again to resume them")
    return result


def write_session_artifacts(session: Session, result: RunResult, *, report: bool = True,
                            elapsed_s: float = 0.0) -> list[Path]:
    """Write the session's artifacts into its folder (``persistence.artifacts.write_run_artifacts``).

    Returns:
        The written paths (the journal, already there, is not among them).
    """
    from algocli.engine.assemble import Assembled
    from algocli.persistence.artifacts import RunDescription, write_run_artifacts

    cfg = session.run.config
    assembled = Assembled(None, cfg, [], [], session.run.plugins.plugin_configs())
    description = RunDescription(session.mode, str(session.run.config_path), cfg.content_hash(),
                                 assembled.resolved())
    return write_run_artifacts(result, session.out_dir, description, report=report, elapsed_s=elapsed_s)


__all__ = ["LiveRun", "LogView", "Session", "SessionView", "finish_session", "load_live_run", "name_live_run",
           "open_session", "risk_state_path", "run_session", "write_session_artifacts"]
