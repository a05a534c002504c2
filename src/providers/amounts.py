"""Yuan strings <-> integer fen, exactly.

Providers write amounts as yuan strings ("12.30", "-0.06"); our ledger counts
integer fen. Parsing goes through Decimal and refuses anything that is not a
whole number of fen, so no value is ever rounded silently.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def yuan_to_fen(text: str) -> int:
    cleaned = text.strip().lstrip("`").replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not a yuan amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a yuan amount: {text!r}")
    fen = value * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"yuan amount has fractions of a fen: {text!r}")
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def positive_fen(amount: int) -> int:
    """Guard for amounts we send: a positive int, never a float or a bool."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amounts are positive integer fen, got {amount!r}")
    return amount
