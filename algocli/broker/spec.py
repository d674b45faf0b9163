"""One description per broker, registered through the ``algocli.broker_specs`` entry points.

Everything outside a broker's adapter package that needs to know about the broker reads
its ``BrokerSpec``: the rate limiter (its published limits), ``algo download-data`` (the
historical API's native intervals, its download pace and its source), the instrument
cache (where the broker's instrument list lives and how to read it) and the instrument
master (which ``Instrument`` field holds the broker's id). A broker package declares one
``SPEC`` in its ``spec.py`` and registers it in ``pyproject.toml``::

    [project.entry-points."algocli.broker_specs"]
    dhan = "algocli.adapters.dhan.spec:SPEC"

The heavy parts (settings class, instrument-list reader, download source, live broker)
are ``package.module:attribute`` paths, imported only when used, so listing the brokers
imports no HTTP or pandas code.

Test hook: ``broker_specs()`` reads the entry points once and caches them; after adding a
distribution to ``sys.path`` (a ``*.dist-info/entry_points.txt``), call
``broker_specs.cache_clear()``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from algocli.config.errors import suggest
from algocli.errors import ConfigError, PluginError
from algocli.registry import SPEC_GROUP, entry_points_of

__all__ = ["GROUP", "BrokerSpec", "Windows", "broker_spec", "broker_specs"]

GROUP = SPEC_GROUP
Windows = tuple[tuple[int, float], ...]  # (calls, seconds) sliding windows


@dataclass(frozen=True)
class BrokerSpec:
    """What the rest of the project needs to know about one broker.

    Attributes:
        name: The registered name (``dhan``), as written in YAML and on the command line.
        title: How people spell it (``Dhan``).
        limits: API class (``order``, ``data``, ``other``) → rate-limit windows, a little
            under the broker's published limits. ``other`` is required and serves any
            class not listed.
        download_limits: The windows one ``algo download-data`` run keeps to.
        native_intervals: Interval values (``1m``, ``1d``, ...) its historical API serves;
            the others are built from ``1m``.
        id_field: The ``Instrument`` attribute holding the broker's id (``dhan_id``), or
            ``broker_ids`` for a broker whose ids live in that mapping under its name.
        id_example: One id, for messages (``NSE_EQ:1333``).
        id_pattern: A regular expression every id of this broker matches in full.
        settings: ``module:Class`` of its pydantic settings (credentials, URLs).
        master_url_field: The settings field with the instrument list's URL.
        master_suffix: The file suffix the downloaded instrument list is cached under.
        read_master: ``module:function``, path → (instruments, rows skipped).
        download_source: ``module:function`` making its ``algo download-data`` source
            (see ``algocli.data.download.HistorySource``).
        broker: ``module:Class`` of its live ``Broker``; built as
            ``Class(settings_class, instrument_ids=...)``.
        sandbox_feed: ``module:function`` building its feed against ``algo sandbox``
            (``(base_url, token, mode, silence_s, instrument_ids)``), or empty when the
            sandbox does not speak the broker's protocol.
        credentials: The settings fields its feed and orders cannot work without (``access_token``).
    """

    name: str
    title: str
    limits: Mapping[str, Windows]
    download_limits: Windows
    native_intervals: frozenset[str]
    id_field: str
    id_example: str
    id_pattern: str
    settings: str
    master_url_field: str
    master_suffix: str
    read_master: str
    download_source: str
    broker: str
    sandbox_feed: str = ""
    credentials: tuple[str, ...] = ()
    _compiled: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if "other" not in self.limits:
            raise PluginError(f"broker spec {self.name!r}: limits has no 'other' class; add one")
        object.__setattr__(self, "_compiled", re.compile(self.id_pattern))

    def windows(self, api_class: str) -> Windows:
        """The rate-limit windows of one API class (``other`` for a class not listed)."""
        return self.limits.get(api_class) or self.limits["other"]

    def is_id(self, text: str) -> bool:
        """True when ``text`` is spelled like one of this broker's ids."""
        return bool(self._compiled.fullmatch(text))

    def instrument_id(self, instrument: object) -> str:
        """The broker's id of an ``Instrument`` row, or ``""`` when it does not list it."""
        value = getattr(instrument, self.id_field, "") or ""
        if isinstance(value, str) and value:
            return value
        # a broker without a field of its own keeps its ids in broker_ids, under its name
        return dict(getattr(instrument, "broker_ids", ()) or ()).get(self.name, "")

    def load(self, path: str):
        """Import one of the ``module:attribute`` paths above."""
        module, _, attr = path.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"broker {self.name!r}: cannot import {path!r} ({exc}); fix its spec.py") from exc

    def make_settings(self):
        """The broker's settings, read from the environment and ``.env``."""
        return self.load(self.settings)()

    def missing_credentials(self) -> list[str]:
        """The environment variables of ``credentials`` (settings fields) that are empty, e.g.
        ``["DHAN_ACCESS_TOKEN"]``, so a run can refuse to start before it shows or loads anything."""
        settings = self.make_settings()
        prefix = type(settings).model_config.get("env_prefix", "")
        missing = []
        for name in self.credentials:
            value = getattr(settings, name, "")
            value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            if not str(value or "").strip():
                missing.append(f"{prefix}{name}".upper())
        return missing

    def master_url(self) -> str:
        """Where the broker publishes its instrument list (from its settings)."""
        return getattr(self.make_settings(), self.master_url_field)

    def master_path(self) -> str:
        """The path of the broker's published instrument list (its default URL's path).

        The sandbox serves each broker's list at the broker's own path, so a run pointed at
        the sandbox finds it at ``<sandbox base><master_path()>``.
        """
        from urllib.parse import urlparse

        default = self.load(self.settings).model_fields[self.master_url_field].default
        return urlparse(default).path


@cache
def broker_specs() -> dict[str, BrokerSpec]:
    """Every registered broker description, by name (sorted).

    Raises:
        PluginError: An entry point that does not load, is not a ``BrokerSpec`` or is
            registered under another name than its own.
    """
    out: dict[str, BrokerSpec] = {}
    for ep in sorted(entry_points_of(GROUP), key=lambda e: e.name):
        try:
            spec = ep.load()
        except Exception as exc:
            raise PluginError(f"broker spec {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        if not isinstance(spec, BrokerSpec):
            raise PluginError(f"broker spec {ep.name!r} ({ep.value}) is a {type(spec).__name__}, not a BrokerSpec")
        if spec.name != ep.name:
            raise PluginError(f"broker spec {ep.value} is named {spec.name!r} but registered as {ep.name!r}; "
                              "use one name in both places")
        out[ep.name] = spec
    return out


def broker_spec(name: str, *, what: str = "broker") -> BrokerSpec:
    """The description of broker ``name``.

    Args:
        name: The registered name.
        what: How the caller names the value, for the message (``--source``).

    Raises:
        ConfigError: No broker is registered under ``name``.
    """
    specs = broker_specs()
    found = specs.get(name)
    if found is None:
        raise ConfigError(f"{what} {name!r} is not a registered broker{suggest(name, specs)} (registered in "
                          f"{GROUP}: {', '.join(specs) or 'none'})")
    return found
