"""Instruments: one human-readable name per tradable thing, mapped to each broker's id."""

from algocli.instruments.cache import MasterUnavailable, open_master, refresh_master
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.model import Instrument

__all__ = ["Instrument", "InstrumentMaster", "MasterUnavailable", "open_master", "refresh_master"]
