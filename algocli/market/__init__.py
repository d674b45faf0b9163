"""Indian-market facts as data: charges per fill, the NSE calendar, lots, ticks and freeze quantities.

- ``algocli.market.charges``: ``IndianCharges``, a cost model (entry point ``indian`` in
  ``algocli.cost_models``) with a per-fill ``breakdown`` by kind, from dated tables.
- ``algocli.market.tables``: the charge tables' reader (shipped and user tables).
- ``algocli.market.calendar``: ``NseCalendar``: holidays, special sessions, dated session times.
- ``algocli.market.ticks``: lot, tick and freeze-quantity checks, ``round_to_tick``, ``split_quantity``.

This package reads only ``algocli.domain`` and ``algocli.errors`` (and the cost-model protocol's
``CostContext`` for typing), so every layer above may use it.
"""

from algocli.market.calendar import NseCalendar, Session, default_calendar
from algocli.market.charges import Breakdown, IndianCharges
from algocli.market.ticks import check_price, check_quantity, round_to_tick, split_quantity, tick_size

__all__ = ["Breakdown", "IndianCharges", "NseCalendar", "Session", "check_price", "check_quantity",
           "default_calendar", "round_to_tick", "split_quantity", "tick_size"]
