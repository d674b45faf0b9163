"""Broker adapters: one package per broker with the same files, on a shared base.

Shared: ``rest`` (the REST client: retries, error classification, rate limiting,
secret-free logging), ``socket`` (the reconnecting socket: backoff, watchdog,
resubscribe), ``tracking`` (order tracking, one set of rules for every broker) and
``history`` (range bounds, the historical-chunk merger).

Per broker (``dhan``, ``upstox``): ``spec`` (its ``BrokerSpec``, registered in the
``algocli.broker_specs`` entry points), ``http``, ``websocket``, ``order_stream``,
``parsing``, ``execution``, ``data`` and ``instruments``. README's "Adding a broker" says
what each holds.
"""
