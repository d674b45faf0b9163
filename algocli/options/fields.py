"""Reading numbers out of broker JSON: a missing, null or non-numeric field is not an error."""

from __future__ import annotations

__all__ = ["number", "optional"]


def number(block: dict, key: str) -> float:
    """``block[key]`` as a float, 0.0 when missing or not a number."""
    value = block.get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


def optional(block: dict, key: str) -> float | None:
    """``block[key]`` as a float, None when missing or not a number."""
    value = block.get(key)
    return float(value) if isinstance(value, (int, float)) else None
