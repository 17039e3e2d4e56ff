"""Rounding to significant digits, shared by the strategies (readable generated values)
and the reports (numbers printed to the digits their noise supports)."""

from __future__ import annotations

import math


def round_sig(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits; 0, inf and NaN unchanged."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
