"""Option chains, put-call ratios and Black-76 greeks, the same model whichever broker supplied them.

* ``algocli.options.chain``: the chain model (``OptionChain`` of ``StrikeRow`` of ``Leg``)
  and the option symbols of the indices.
* ``algocli.options.pcr``: OI, volume and change-in-OI PCR, max pain, ATM strike, and the
  sentiment bands.
* ``algocli.options.greeks``: IV and greeks by Black-76 on the forward implied by put-call
  parity, for chains a broker sent without them (imports ``vollib`` when first used).

Importing this package loads nothing heavy; the broker fetchers live in the adapters
(``algocli.adapters.upstox.options``, ``algocli.adapters.dhan.options``).
"""
