"""The YAML run definition: strict, frozen models that reject unknown keys.

Validation happens in two stages. First this schema; then each plugin (feed, broker, fill
model, strategy) parses the keys of its own section into its own typed model, so every
mistake is reported against the YAML key that caused it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator, model_validator

from algocli.config.errors import config_error
from algocli.domain.models import Interval
from algocli.domain.strict import NumbersModel
from algocli.errors import ConfigError, UsageError, not_utf8
from algocli.risk.config import RiskConfig


class _Strict(NumbersModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _PluginSection(NumbersModel):
    """A section whose extra keys belong to the chosen plugin's own config model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def plugin_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataSection(_PluginSection):
    feed: str = Field("csv", description="registered feed name (algo strategies lists them)")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"feed": value} if isinstance(value, str) else value


class BrokerSection(_PluginSection):
    name: str = "simulated"


class FillModelSection(_PluginSection):
    name: str = "next_open"


def _broker_id(text: str) -> bool:
    """True when a registered broker spells its ids like ``text`` (a broker added by a plugin)."""
    from algocli.broker.spec import broker_specs  # the registry sits above config

    return any(spec.is_id(text) for spec in broker_specs().values())


def check_instruments(value: list[str]) -> list[str]:
    """``value`` if it is a list of instrument names or broker ids.

    Raises:
        TypeError: It is not a list of strings.
        ValueError: An entry is neither a name (``NSE:HDFCBANK``) nor a broker id (``NSE_EQ:1333``).
    """
    if not isinstance(value, (list, tuple)) or not all(isinstance(inst, str) for inst in value):
        raise TypeError(f"expected a list of instrument names, got {value!r}")
    for inst in value:
        if ":" not in inst and "|" not in inst and not _broker_id(inst):
            raise ValueError(f"instrument {inst!r} must be a name such as NSE:HDFCBANK or a broker id such as "
                             "NSE_EQ:1333 (`algo instruments search` finds names)")
    return list(value)


_ID = r"^[A-Za-z0-9_.-]+$"


def default_strategy_id(class_: str, index: int) -> str:
    """The id of the ``index``-th strategy entry that names none: ``sma_crossover-0``, ``Breakout-1``."""
    return f"{class_.rsplit(':', 1)[-1]}-{index}"


class StrategyEntry(_Strict):
    class_: str = Field(alias="class", description="registered name or package.module:ClassName")
    # Absent: the strategy class's ``instruments`` property names them (engine.assemble.declare_instruments).
    instruments: list[str] = Field(default_factory=list, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(None, pattern=_ID, description="default <class>-<index>, e.g. sma_crossover-0")

    @field_validator("instruments")
    @classmethod
    def _instrument_ids(cls, value: list[str]) -> list[str]:
        return check_instruments(value)


class OutputSection(_Strict):
    dir: Path | None = None


class RunConfig(_Strict):
    """A whole run: what to trade, on which data, through which broker."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="run name; also the default output folder")
    interval: Interval = Interval.DAY_1
    initial_capital: PositiveFloat
    data: DataSection = Field(default_factory=DataSection)
    broker: BrokerSection = Field(default_factory=BrokerSection)
    fill_model: FillModelSection = Field(default_factory=FillModelSection)
    strategies: list[StrategyEntry] = Field(min_length=1)
    output: OutputSection = Field(default_factory=OutputSection)
    risk: RiskConfig | None = Field(None, description="pre-trade limits and the kill switch; none when absent")

    @model_validator(mode="before")
    @classmethod
    def _strategy_ids(cls, value: Any) -> Any:
        """Give each strategy entry without an ``id`` its default one, so the resolved config and the
        artifacts name the id the run used (``sma_crossover-0``), not ``null``."""
        entries = value.get("strategies") if isinstance(value, dict) else None
        if not isinstance(entries, list):
            return value
        filled = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and entry.get("id") is None and isinstance(entry.get("class"), str):
                sid = default_strategy_id(entry["class"], i)
                if re.match(_ID, sid):  # a malformed class name is reported against `class`, not `id`
                    entry = {**entry, "id": sid}
            filled.append(entry)
        return {**value, "strategies": filled}

    def output_dir(self, override: Path | None = None) -> Path:
        """The run's output folder: ``override`` (``--output``, relative to the current folder), else
        ``output.dir`` (made relative to the config's folder by ``load_run_config``), else ``output/<name>``.

        Raises:
            UsageError: It is the run's data folder, where the artifacts' CSV files would pass for
                candle files (``algo sandbox --data`` replays every CSV there).
        """
        out = override or self.output.dir or Path("output") / self.name
        data = self.data.plugin_params.get("path")
        if isinstance(data, str) and os.path.realpath(out) == os.path.realpath(data):
            raise UsageError(f"{out}: is the run's data folder (data.path); the artifacts' CSV files would mix with "
                             "the candle files there; pass another --output or change output.dir")
        return out

    def content_hash(self) -> str:
        """A stable id of this run definition's content."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: The keys that hold paths, as (section, key): relative ones are relative to the config's folder.
PATH_KEYS = (("data", "path"), ("output", "dir"), ("risk", "state_file"), ("broker", "charges"))


def load_run_config(path: Path) -> RunConfig:
    """Read and validate a run definition, raising a one-line ``ConfigError`` on any problem.

    Relative paths in it (``PATH_KEYS``) are taken relative to the file's own folder and made
    absolute, so ``algo backtest /abs/configs/sma.yaml`` reads the same data from any folder.

    Raises:
        UsageError: ``path`` is not a file.
        ConfigError: The file is not UTF-8, not YAML, or not a valid run definition.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(_not_a_run_file(path))
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {not_utf8(path)}") from None
    except _NoDate as exc:
        raise ConfigError(f"{path}, line {exc.line}: {exc.text!r} is not a date ({exc.why}); write a real "
                          "day as YYYY-MM-DD") from None
    except _Twice as exc:
        raise ConfigError(f"{path}, line {exc.line}: {exc.key!r} is given twice in one mapping (first on line "
                          f"{exc.first}); keep the one you mean") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (name, interval, strategies, ...) at the top level")
    paths_beside(raw, path.parent)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, RunConfig, str(path)) from None


class _NoDate(yaml.YAMLError):
    """A value shaped like a YAML date that is no day of the calendar (``2024-04-31``)."""

    def __init__(self, text: str, line: int, why: str) -> None:
        super().__init__(text)
        self.text, self.line, self.why = text, line, why


class _Twice(yaml.YAMLError):
    """A key written twice in one mapping (two ``start:`` under ``data:``)."""

    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose impossible dates are a ``_NoDate`` naming their line: PyYAML's own
    constructor lets the ``ValueError`` of ``datetime.date`` escape, with no line. A key given
    twice in one mapping is a ``_Twice``: PyYAML keeps the last one without a word, so a run
    would quietly cover another period than the one the user read."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[str, int] = {}
        for key, _ in node.value:  # the keys as written: those a merge (<<) brings in may be overridden
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise _Twice(key.value, key.start_mark.line + 1, seen[key.value])
                seen[key.value] = key.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _timestamp(loader: _Loader, node: yaml.ScalarNode):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise _NoDate(node.value, node.start_mark.line + 1, str(exc)) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def _not_a_run_file(path: Path) -> str:
    """Why ``path`` is no run definition, naming the YAML files of the folder meant or its near miss."""
    folder = path if path.is_dir() else path.parent
    yamls = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    if path.is_dir():
        some = ", ".join(str(folder / name) for name in yamls[:3]) + (", ..." if len(yamls) > 3 else "")
        return (f"{path}: is a folder; pass one of its run definitions ({some})" if yamls else
                f"{path}: is a folder with no run definition in it; pass the path of a YAML file, e.g. "
                "configs/sma.yaml")
    stems = {Path(name).stem: name for name in yamls}  # the shared ".yaml" would make any two names look alike
    near = difflib.get_close_matches(path.stem, list(stems), n=1, cutoff=0.6)
    hint = f"; did you mean {folder / stems[near[0]]}?" if near else "; pass the path of a YAML file, e.g. configs/sma.yaml"
    return f"{path}: no such run definition{hint}"


def paths_beside(raw: dict, folder: Path) -> None:
    """Rewrite, in place, the relative paths of ``PATH_KEYS`` as absolute paths under ``folder``.

    ``~`` is expanded; ``..`` is folded away only where no symlink makes that change the place.
    ``broker.charges`` is a path unless it names a shipped table (``dhan``, ``upstox``, ``none``).
    """
    from algocli.broker.costs import SHIPPED_CHARGES  # the registry sits above config

    base = Path(os.path.abspath(folder))
    for section, key in PATH_KEYS:
        block = raw.get(section)
        value = block.get(key) if isinstance(block, dict) else None
        if not isinstance(value, str) or not value.strip() or value.strip().lower() in SHIPPED_CHARGES:
            continue  # absent, wrong-typed (validation reports it), or a shipped table's name
        given = Path(value).expanduser()
        joined = given if given.is_absolute() else base / given
        folded = Path(os.path.normpath(joined))
        block[key] = str(folded if os.path.realpath(folded) == os.path.realpath(joined) else joined)


def parse_plugin_config(model: type[BaseModel], params: dict[str, Any], source: str, prefix: str) -> BaseModel:
    """Validate a plugin's section against the plugin's own model."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise config_error(exc, model, source, prefix) from None
