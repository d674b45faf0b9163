"""The YAML run definition: strict, frozen models that reject unknown keys.

Validation happens in two stages. First this schema; then each plugin (feed, broker, fill
model, strategy) parses the keys of its own section into its own typed model, so every
mistake is reported against the YAML key that caused it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator, model_validator

from algocli.config.errors import config_error
from algocli.domain.models import Interval
from algocli.errors import ConfigError, UsageError
from algocli.risk.config import RiskConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _PluginSection(BaseModel):
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


def check_instruments(value: list[str]) -> list[str]:
    """``value`` if it is a list of instrument names or broker ids.

    Raises:
        TypeError: It is not a list of strings.
        ValueError: An entry is neither a name (``NSE:HDFCBANK``) nor a broker id (``NSE_EQ:1333``).
    """
    if not isinstance(value, (list, tuple)) or not all(isinstance(inst, str) for inst in value):
        raise TypeError(f"expected a list of instrument names, got {value!r}")
    for inst in value:
        if ":" not in inst and "|" not in inst:
            raise ValueError(f"instrument {inst!r} must be a name such as NSE:HDFCBANK or a broker id such as "
                             "NSE_EQ:1333 (`algo instruments search` finds names)")
    return list(value)


class StrategyEntry(_Strict):
    class_: str = Field(alias="class", description="registered name or package.module:ClassName")
    # Absent: the strategy class's ``instruments`` property names them (engine.assemble.declare_instruments).
    instruments: list[str] = Field(default_factory=list, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")

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

    def output_dir(self, override: Path | None = None) -> Path:
        return override or self.output.dir or Path("output") / self.name

    def content_hash(self) -> str:
        """A stable id of this run definition's content."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_run_config(path: Path) -> RunConfig:
    """Read and validate a run definition, raising a one-line ``ConfigError`` on any problem."""
    if not path.is_file():
        raise UsageError(f"{path}: no such run definition; pass the path of a YAML file, e.g. configs/sma.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (name, interval, strategies, ...) at the top level")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, RunConfig, str(path)) from None


def parse_plugin_config(model: type[BaseModel], params: dict[str, Any], source: str, prefix: str) -> BaseModel:
    """Validate a plugin's section against the plugin's own model."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise config_error(exc, model, source, prefix) from None
