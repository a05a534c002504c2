"""Every rounding rule of the platform, in integers only.

Units: money in fen (CNY 0.01), points in whole points, fuel in millilitres, fuel prices in
fen per litre, rates in basis points (1 bp = 1/10000). Only integers: a binary fraction cannot hold
0.1 exactly, so it has no place near money.

Rules (which way each rounding goes, and why):
- litres bought: rounded DOWN to the millilitre, so the pump never delivers fuel not paid for.
- a percentage of an amount (fees, discounts, commission, points rates): the caller names the
  direction; the default is DOWN (the platform keeps the fraction of a fen it cannot pay).
- splitting a whole into parts (refund proportions, multi-payment allocation): the largest
  remainder method, so the parts always sum exactly to the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum

BPS_WHOLE = 10_000
ML_PER_LITRE = 1_000
FEN_PER_YUAN = 100


class Rounding(Enum):
    DOWN = "down"  # toward zero
    UP = "up"  # away from zero
    HALF_UP = "half_up"  # 0.5 away from zero


class MoneyError(ValueError):
    pass


def _require_int(*values: object) -> None:
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise MoneyError(f"integer required, got {type(v).__name__}: {v!r}")


def div_round(numerator: int, denominator: int, rounding: Rounding = Rounding.DOWN) -> int:
    """numerator / denominator rounded as named, for any signs."""
    _require_int(numerator, denominator)
    if denominator == 0:
        raise MoneyError("division by zero")
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    n, d = abs(numerator), abs(denominator)
    q, r = divmod(n, d)
    if rounding is Rounding.UP and r or rounding is Rounding.HALF_UP and 2 * r >= d:
        q += 1
    return sign * q


def apply_bps(amount: int, bps: int, rounding: Rounding = Rounding.DOWN) -> int:
    """amount * bps / 10000: the share of `amount` at a rate in basis points."""
    _require_int(amount, bps)
    return div_round(amount * bps, BPS_WHOLE, rounding)


def litres_for_amount(amount_fen: int, price_fen_per_litre: int) -> int:
    """Millilitres that `amount_fen` buys at the locked price, rounded down."""
    _require_int(amount_fen, price_fen_per_litre)
    if price_fen_per_litre <= 0:
        raise MoneyError("price must be positive")
    if amount_fen < 0:
        raise MoneyError("amount must not be negative")
    return div_round(amount_fen * ML_PER_LITRE, price_fen_per_litre, Rounding.DOWN)


def amount_for_litres(millilitres: int, price_fen_per_litre: int) -> int:
    """Fen charged for a volume, rounded half up (a pump-preset volume sale)."""
    _require_int(millilitres, price_fen_per_litre)
    return div_round(millilitres * price_fen_per_litre, ML_PER_LITRE, Rounding.HALF_UP)


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`; the parts always sum exactly to `total`.

    Ties in the remainders go to the earlier weight, so the split is deterministic.
    """
    _require_int(total, *weights)
    if not weights:
        raise MoneyError("no weights")
    if any(w < 0 for w in weights):
        raise MoneyError("weights must not be negative")
    whole = sum(weights)
    if whole == 0:
        if total != 0:
            raise MoneyError("cannot split a non-zero total over zero weights")
        return [0] * len(weights)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors = []
    remainders = []
    for i, w in enumerate(weights):
        q, r = divmod(magnitude * w, whole)
        floors.append(q)
        remainders.append((-r, i))
    short = magnitude - sum(floors)
    for _, i in sorted(remainders)[:short]:
        floors[i] += 1
    return [sign * f for f in floors]


def prorate(amount: int, part: int, whole: int) -> int:
    """amount * part / whole rounded down; for one share when the others are not needed."""
    _require_int(amount, part, whole)
    if whole <= 0 or part < 0 or part > whole:
        raise MoneyError("part must be within 0..whole")
    return div_round(amount * part, whole, Rounding.DOWN)


def fen_to_yuan_str(fen: int) -> str:
    """12345 -> '123.45'; -5 -> '-0.05'."""
    _require_int(fen)
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{q}.{r:02d}"


def yuan_str_to_fen(text: str) -> int:
    """'123.45' -> 12345, exactly; refuses more than two decimals."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation as e:
        raise MoneyError(f"not an amount: {text!r}") from e
    fen = value * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise MoneyError(f"more than two decimals: {text!r}")
    return int(fen)
