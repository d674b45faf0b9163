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

import functools
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from algocli.broker.spec import broker_spec, broker_specs
from algocli.domain.session import ist_date, ist_today
from algocli.errors import BrokerError, DataError
from algocli.instruments.master import InstrumentMaster, merge
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_frame, read_instruments, write_instruments
from algocli.persistence.artifacts import atomic_write_bytes

if TYPE_CHECKING:  # aiohttp (0.2-0.3 s to import) is imported by the functions that download
    import aiohttp

__all__ = ["MasterUnavailable", "Outcome", "Refresh", "open_master", "refresh_master"]

_log = logging.getLogger(__name__)
Refresh = Literal["auto", "always", "never"]
_CONNECT_TIMEOUT = 10.0  # seconds; short, so that an offline machine falls back to the cache at once


_DEFAULT_DIR = Path("data/instruments")


@functools.cache
def _settings_class() -> type:
    # pydantic_settings costs about 0.1 s of start-up, and a backtest whose data folder names every
    # instrument never reads this setting, so the class is built on first use.
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class InstrumentSettings(BaseSettings):
        """``ALGO_INSTRUMENTS_DIR``: where the instrument files are cached."""

        model_config = SettingsConfigDict(env_prefix="ALGO_", env_file=".env", extra="ignore")

        instruments_dir: Path = _DEFAULT_DIR

    return InstrumentSettings


def _cache_dir(directory: Path | None) -> Path:
    """``directory``, else ``ALGO_INSTRUMENTS_DIR``: read through the settings class when the
    environment or ``.env`` mentions it at all, else the default without building the class."""
    if directory:
        return Path(directory)
    if not _mentioned("ALGO_INSTRUMENTS_DIR"):
        return _DEFAULT_DIR
    return Path(_settings_class()().instruments_dir)


def _mentioned(name: str) -> bool:
    """Whether the environment has ``name`` or ``.env`` holds its text anywhere (settings names are
    not case-sensitive); a false yes only costs the settings class."""
    name = name.upper()
    if any(key.upper() == name for key in os.environ):
        return True
    try:
        return name in Path(".env").read_text(encoding="utf-8", errors="replace").upper()
    except OSError:
        return False


def _nothing_cached(directory: Path) -> MasterUnavailable:
    return MasterUnavailable(f"no instrument list is cached in {directory}; `algo instruments refresh` downloads one")


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
    """What a refresh did for one source, as one line; ``failed`` says whether the download failed,
    ``reason`` why (``DNS lookup of ... failed``, ``... refused the connection``, ``HTTP 503 from ...``)."""

    failed: bool = False
    reason: str = ""

    @classmethod
    def failure(cls, text: str, reason: str) -> Outcome:
        out = cls(text)
        out.failed, out.reason = True, reason
        return out


class _Cache:
    def __init__(self, directory: Path, urls: dict[str, str]) -> None:
        self.directory = directory
        self.urls = urls

    def raw(self, source: str) -> Path:
        return self.directory / f"{source}-{_tag(self.urls[source])}.{broker_spec(source).master_suffix}"

    def sandboxed(self, source: str) -> Path:
        """The marker that ``source``'s copy came from an ``algo sandbox`` (``SANDBOX_LIST_HEADER``)."""
        raw = self.raw(source)
        return raw.with_name(raw.name + ".sandbox")

    def merged(self) -> Path:
        return self.directory / f"master-{'-'.join(_tag(self.urls[s]) for s in sorted(self.urls))}.csv"

    @staticmethod
    def fetched_on(path: Path) -> date | None:
        return ist_date(path.stat().st_mtime_ns) if path.is_file() else None


#: Sent by ``algo sandbox`` with its instrument lists: what it serves is whatever its ``--data``
#: holds, so a copy fetched earlier today (from another folder's sandbox on the same port) may be
#: another list; such a copy is fetched afresh on every use (it is local, and small).
SANDBOX_LIST_HEADER = "X-Algo-Sandbox"


async def _download(session: aiohttp.ClientSession, url: str, timeout: float) -> tuple[bytes, bool]:
    """The file at ``url``, and whether an ``algo sandbox`` served it (``SANDBOX_LIST_HEADER``)."""
    import asyncio

    import aiohttp

    try:
        limits = aiohttp.ClientTimeout(total=timeout, sock_connect=_CONNECT_TIMEOUT)
        async with session.get(url, timeout=limits) as resp:
            if resp.status != 200:
                raise BrokerError(f"HTTP {resp.status} from {_host(url)}")
            return await resp.read(), SANDBOX_LIST_HEADER in resp.headers
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise BrokerError(_why(exc, url, timeout)) from None


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _why(exc: BaseException, url: str, timeout: float) -> str:
    """Why a download failed, in the words an operator checks: DNS, refused, timeout."""
    import asyncio

    import aiohttp

    host = _host(url)
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, socket.gaierror):
        return f"DNS lookup of {host.rsplit(':', 1)[0]} failed: no network, or the name is wrong"
    if isinstance(cause, ConnectionRefusedError):
        return f"{host} refused the connection"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection to {host} within {_CONNECT_TIMEOUT:g} s"
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's other timeouts subclass it
        return f"no answer from {host} within {timeout:g} s"
    return f"{host}: {type(exc).__name__}: {exc}".rstrip(": ")


async def _refresh_sources(cache: _Cache, sources: Iterable[str], timeout: float) -> dict[str, Outcome]:
    """Download ``sources``; return ``{source: what happened}``, one line each."""
    import aiohttp

    outcome: dict[str, Outcome] = {}
    async with aiohttp.ClientSession() as session:
        for source in sources:
            url, target = cache.urls[source], cache.raw(source)
            try:
                body, sandboxed = await _download(session, url, timeout)
                # a name of its own: two runs starting together each check their own download
                scratch = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.check")
                atomic_write_bytes(scratch, body)
                try:
                    rows, _ = _read(source, scratch)  # parse before the old file is replaced
                except DataError as exc:
                    why = str(exc).removeprefix(f"{scratch}: ").removesuffix("; delete it and refresh")
                    raise BrokerError(f"{url} sent no usable instrument list: {why}; check the URL, or try "
                                      "again later") from None
                finally:
                    scratch.unlink(missing_ok=True)
                if not rows:
                    raise BrokerError("the file lists no instruments this project can trade")
                atomic_write_bytes(target, body)
                marker = cache.sandboxed(source)
                marker.touch() if sandboxed else marker.unlink(missing_ok=True)
                outcome[source] = Outcome(f"downloaded {len(rows):,} instruments")
            except (BrokerError, DataError) as exc:
                outcome[source] = Outcome.failure(f"download failed ({exc})", str(exc))
    return outcome


def refresh_master(*, force: bool = True, directory: Path | None = None, timeout: float = 120.0,
                   urls: dict[str, str] | None = None) -> tuple[InstrumentMaster, dict[str, Outcome]]:
    """Download what is stale (everything with ``force``), rebuild the merged master, load it.

    Returns:
        The master, and one line per source saying what happened.

    Raises:
        MasterUnavailable: No source could be downloaded and nothing is cached.
    """
    import asyncio

    cache = _Cache(_cache_dir(directory), urls or _urls())
    cache.directory.mkdir(parents=True, exist_ok=True)
    today = ist_today()
    wanted = [s for s in cache.urls
              if force or cache.fetched_on(cache.raw(s)) != today or cache.sandboxed(s).exists()]
    outcome = asyncio.run(_refresh_sources(cache, wanted, timeout)) if wanted else {}
    rebuild = any(not line.failed for line in outcome.values())
    for source in cache.urls:
        day = cache.fetched_on(cache.raw(source))
        if source not in outcome:
            outcome[source] = Outcome(f"cached {day}, fresh")
        elif outcome[source].failed:
            line = outcome[source]
            outcome[source] = Outcome.failure(line + (f"; using the cache of {day}" if day else "; nothing cached"),
                                              line.reason)
            _log.warning("instruments from %s: %s", source, outcome[source])
    try:
        return _load(cache, rebuild=rebuild), outcome
    except MasterUnavailable:
        reasons = "; ".join(f"{s}: {line.reason}" for s, line in sorted(outcome.items()) if line.failed)
        raise MasterUnavailable(f"no instrument list could be downloaded ({reasons}) and none is cached in "
                                f"{cache.directory}; connect to the internet, or start `algo sandbox` and "
                                "export the variables it prints") from None


def _load(cache: _Cache, *, rebuild: bool) -> InstrumentMaster:
    merged = cache.merged()
    raws = [cache.raw(s) for s in sorted(cache.urls) if cache.raw(s).is_file()]
    if not raws and not merged.is_file():
        raise _nothing_cached(cache.directory)
    if rebuild or not merged.is_file() or any(r.stat().st_mtime_ns > merged.stat().st_mtime_ns for r in raws):
        sources: list[list[Instrument]] = []
        for source in sorted(cache.urls):
            if cache.raw(source).is_file():
                sources.append(_read(source, cache.raw(source))[0])
        write_instruments(merged, merge(*sources))
    day = cache.fetched_on(merged)
    return InstrumentMaster(read_frame(merged), source=f"the instrument list of {day} in {cache.directory}")


def open_master(*, refresh: Refresh = "auto", directory: Path | None = None, extra: Iterable[Path] = (),
                warn: Callable[[str], None] | None = None, urls: dict[str, str] | None = None,
                today: date | None = None) -> InstrumentMaster:
    """The instrument master, refreshed as ``refresh`` says.

    Args:
        refresh: ``auto`` downloads a source not yet fetched today (falling back to the
            cache when offline), ``always`` downloads all, ``never`` uses only the cache.
        directory: The cache folder; default ``ALGO_INSTRUMENTS_DIR``.
        extra: Files in the project's instrument format whose rows are added where the
            master lacks them (a data folder's ``instruments.csv``).
        warn: Receives one line when a download failed and the cache (or only ``extra``)
            stands in, and when a year-less contract names only expired ones.
        urls: Broker name → URL to download from; default every registered broker's
            URL from its settings (``DHAN_SCRIP_MASTER_URL``, ``UPSTOX_INSTRUMENTS_URL``, ...).
        today: The IST date a year-less contract is picked for (tests); default today.

    Raises:
        MasterUnavailable: Nothing cached, and (unless ``never``) nothing downloadable.
    """
    extras = [read_instruments(p) for p in extra if Path(p).is_file()]
    directory = _cache_dir(directory)
    try:
        if refresh == "never" and not (directory.is_dir() and any(directory.iterdir())):
            raise _nothing_cached(directory)  # before the brokers' settings are read for their URLs
        cache = _Cache(directory, urls or _urls())
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
            warn(f"using only {', '.join(str(p) for p in extra)}: {exc}")
        return InstrumentMaster(merge(*extras), source=" + ".join(str(p) for p in extra), today=today, warn=warn)
    if extras:
        master = InstrumentMaster(merge(master, *extras), source=master.source)
    master.today, master.warn = today or master.today, warn
    return master
