"""Download every registered broker's instrument file once a day, and keep using them offline.

The brokers are those registered in ``algocli.broker_specs``; each spec says where its
list lives (a settings field), the file's suffix and how to read it. Layout of the cache
folder (``ALGO_INSTRUMENTS_DIR``, default ``data/instruments``)::

    dhan-<url hash>.csv          Dhan's compact scrip master, as downloaded
    upstox-<url hash>.json.gz    Upstox's complete.json.gz, as downloaded
    master-<hashes>.csv          all of them, merged and named (``table.write_instruments``)

File names carry a hash of the URL they came from, so the sandbox's master and the real
one never stand in for each other. A file counts as fresh on the IST date it was written
(both brokers publish a new file each morning). A download is parsed before it replaces
the old file; if it fails, the old file is used with a warning, and only when there is no
file at all does the command stop. Sources are merged in name order: the first broker to
list an instrument gives its shared fields, the others fill what it lacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Literal

import aiohttp
from pydantic_settings import BaseSettings, SettingsConfigDict

from algocli.broker.spec import broker_spec, broker_specs
from algocli.domain.session import ist_date, ist_today
from algocli.errors import BrokerError, DataError
from algocli.instruments.master import InstrumentMaster, merge
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_frame, read_instruments, write_instruments
from algocli.persistence.artifacts import atomic_write_bytes

__all__ = ["InstrumentSettings", "MasterUnavailable", "Outcome", "Refresh", "open_master", "refresh_master"]

_log = logging.getLogger(__name__)
Refresh = Literal["auto", "always", "never"]


class InstrumentSettings(BaseSettings):
    """``ALGO_INSTRUMENTS_DIR``: where the instrument files are cached."""

    model_config = SettingsConfigDict(env_prefix="ALGO_", env_file=".env", extra="ignore")

    instruments_dir: Path = Path("data/instruments")


class MasterUnavailable(BrokerError):
    """No instrument list could be downloaded and none is cached. Connect to the internet (or
    start the sandbox) and run ``algo instruments refresh``."""


def _urls() -> dict[str, str]:
    """Every registered broker's instrument-list URL, from its settings."""
    return {name: spec.master_url() for name, spec in broker_specs().items()}


def _read(source: str, path: Path) -> tuple[list[Instrument], int]:
    spec = broker_spec(source)
    return spec.load(spec.read_master)(path)


def _tag(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:10]


class Outcome(str):
    """What a refresh did for one source, as one line; ``failed`` says whether the download failed."""

    failed: bool = False

    @classmethod
    def failure(cls, text: str) -> Outcome:
        out = cls(text)
        out.failed = True
        return out


class _Cache:
    def __init__(self, directory: Path, urls: dict[str, str]) -> None:
        self.directory = directory
        self.urls = urls

    def raw(self, source: str) -> Path:
        return self.directory / f"{source}-{_tag(self.urls[source])}.{broker_spec(source).master_suffix}"

    def merged(self) -> Path:
        return self.directory / f"master-{'-'.join(_tag(self.urls[s]) for s in sorted(self.urls))}.csv"

    @staticmethod
    def fetched_on(path: Path) -> date | None:
        return ist_date(path.stat().st_mtime_ns) if path.is_file() else None


async def _download(session: aiohttp.ClientSession, url: str, timeout: float) -> bytes:
    try:  # a short connect timeout: an offline machine should fall back to the cache at once
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10)) as resp:
            if resp.status != 200:
                raise BrokerError(f"HTTP {resp.status}")
            return await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise BrokerError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None


async def _refresh_sources(cache: _Cache, sources: Iterable[str], timeout: float) -> dict[str, Outcome]:
    """Download ``sources``; return ``{source: what happened}``, one line each."""
    outcome: dict[str, Outcome] = {}
    async with aiohttp.ClientSession() as session:
        for source in sources:
            url, target = cache.urls[source], cache.raw(source)
            try:
                body = await _download(session, url, timeout)
                scratch = target.with_name(target.name + ".check")
                atomic_write_bytes(scratch, body)
                try:
                    rows, _ = _read(source, scratch)  # parse before the old file is replaced
                finally:
                    scratch.unlink(missing_ok=True)
                if not rows:
                    raise BrokerError("the file lists no instruments this project can trade")
                atomic_write_bytes(target, body)
                outcome[source] = Outcome(f"downloaded {len(rows):,} instruments")
            except (BrokerError, DataError) as exc:
                outcome[source] = Outcome.failure(f"download failed ({exc})")
    return outcome


def refresh_master(*, force: bool = True, directory: Path | None = None, timeout: float = 120.0,
                   urls: dict[str, str] | None = None) -> tuple[InstrumentMaster, dict[str, Outcome]]:
    """Download what is stale (everything with ``force``), rebuild the merged master, load it.

    Returns:
        The master, and one line per source saying what happened.

    Raises:
        MasterUnavailable: No source could be downloaded and nothing is cached.
    """
    cache = _Cache(Path(directory or InstrumentSettings().instruments_dir), urls or _urls())
    cache.directory.mkdir(parents=True, exist_ok=True)
    today = ist_today()
    wanted = [s for s in cache.urls if force or cache.fetched_on(cache.raw(s)) != today]
    outcome = asyncio.run(_refresh_sources(cache, wanted, timeout)) if wanted else {}
    rebuild = any(not line.failed for line in outcome.values())
    for source in cache.urls:
        day = cache.fetched_on(cache.raw(source))
        if source not in outcome:
            outcome[source] = Outcome(f"cached {day}, fresh")
        elif outcome[source].failed:
            outcome[source] = Outcome.failure(outcome[source] + (f"; using the cache of {day}" if day
                                                                  else "; nothing cached"))
            _log.warning("instruments from %s: %s", source, outcome[source])
    return _load(cache, rebuild=rebuild), outcome


def _load(cache: _Cache, *, rebuild: bool) -> InstrumentMaster:
    merged = cache.merged()
    raws = [cache.raw(s) for s in sorted(cache.urls) if cache.raw(s).is_file()]
    if not raws and not merged.is_file():
        raise MasterUnavailable(f"no instrument list in {cache.directory} and none could be downloaded; connect to "
                                "the internet (or start `algo sandbox` and export what it prints) and run "
                                "`algo instruments refresh`")
    if rebuild or not merged.is_file() or any(r.stat().st_mtime_ns > merged.stat().st_mtime_ns for r in raws):
        sources: list[list[Instrument]] = []
        for source in sorted(cache.urls):
            if cache.raw(source).is_file():
                sources.append(_read(source, cache.raw(source))[0])
        write_instruments(merged, merge(*sources))
    day = cache.fetched_on(merged)
    return InstrumentMaster(read_frame(merged), source=f"instrument list of {day} in {cache.directory}")


def open_master(*, refresh: Refresh = "auto", directory: Path | None = None, extra: Iterable[Path] = (),
                warn: Callable[[str], None] | None = None, urls: dict[str, str] | None = None) -> InstrumentMaster:
    """The instrument master, refreshed as ``refresh`` says.

    Args:
        refresh: ``auto`` downloads a source not yet fetched today (falling back to the
            cache when offline), ``always`` downloads all, ``never`` uses only the cache.
        directory: The cache folder; default ``ALGO_INSTRUMENTS_DIR``.
        extra: Files in the project's instrument format whose rows are added where the
            master lacks them (a data folder's ``instruments.csv``).
        warn: Receives one line when a download failed and the cache stands in.
        urls: Broker name → URL to download from; default every registered broker's
            URL from its settings (``DHAN_SCRIP_MASTER_URL``, ``UPSTOX_INSTRUMENTS_URL``, ...).

    Raises:
        MasterUnavailable: Nothing cached, and (unless ``never``) nothing downloadable.
    """
    extras = [read_instruments(p) for p in extra if Path(p).is_file()]
    cache = _Cache(Path(directory or InstrumentSettings().instruments_dir), urls or _urls())
    try:
        if refresh == "never":
            master = _load(cache, rebuild=False)
        else:
            master, outcome = refresh_master(force=refresh == "always", directory=cache.directory, urls=cache.urls)
            for source, line in outcome.items():
                if line.failed and warn is not None:
                    warn(f"{source} instruments: {line}")
    except MasterUnavailable as exc:
        if not extras:
            raise
        if warn is not None:
            warn(f"{exc}; using only {', '.join(str(p) for p in extra)}")
        return InstrumentMaster(merge(*extras), source=" + ".join(str(p) for p in extra))
    if not extras:
        return master
    return InstrumentMaster(merge(master, *extras), source=master.source)
