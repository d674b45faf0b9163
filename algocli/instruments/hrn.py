"""Human-readable names; they moved to ``algocli.domain.hrn`` (re-exported here)."""

from algocli.domain.hrn import MONTHS, Contract, derivative_hrn, format_strike, normalise, parse_contract, plain_hrn

__all__ = ["MONTHS", "Contract", "derivative_hrn", "format_strike", "normalise", "parse_contract", "plain_hrn"]
