"""The instrument model; it lives in ``algocli.domain.instrument`` (re-exported here).

Broker ids: Dhan's ``SEGMENT:SECURITY_ID`` (``NSE_EQ:1333``) with its instrument type for
the historical API (``EQUITY``, ``INDEX``, ``OPTIDX``, ...), and Upstox's
``instrument_key`` (``NSE_EQ|INE040A01034``). The HRN is spelled as ``algocli.domain.hrn``
says.
"""

from algocli.domain.instrument import COLUMNS, KINDS, OPTION_TYPES, Instrument

__all__ = ["COLUMNS", "KINDS", "OPTION_TYPES", "Instrument"]
