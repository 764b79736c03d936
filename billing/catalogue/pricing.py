"""Pack pricing: net, VAT, gross, price per hour and the saving against the
hourly rate. Pure integer and Fraction arithmetic on minor units: no float
ever touches money."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def round_half_up(value: Fraction) -> int:
    """Commercial rounding to a whole minor unit (0.5 goes away from zero)."""
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


@dataclass(frozen=True)
class Price:
    net: int
    vat: int
    gross: int
    currency: str
    vat_rate_bp: int  # basis points: 810 is 8.1 %


def split_vat(amount: int, currency: str, vat_rate_bp: int, includes_vat: bool) -> Price:
    """Net, VAT and gross of a price stated either net or VAT included."""
    if amount < 0 or vat_rate_bp < 0:
        raise ValueError("prices and VAT rates cannot be negative")
    rate = Fraction(vat_rate_bp, 10_000)
    if includes_vat:
        gross = amount
        net = round_half_up(Fraction(amount) / (1 + rate))
    else:
        net = amount
        gross = net + round_half_up(net * rate)
    return Price(net=net, vat=gross - net, gross=gross, currency=currency, vat_rate_bp=vat_rate_bp)


def minutes_of(quantity: int, unit_minutes: int) -> int:
    """Working minutes a quantity of units buys."""
    return quantity * unit_minutes


def per_hour(amount: int, minutes: int) -> int | None:
    """Price of one hour when ``amount`` buys ``minutes`` of work."""
    if minutes <= 0:
        return None
    return round_half_up(Fraction(amount * 60, minutes))


def per_unit(amount: int, quantity: int) -> int | None:
    if quantity <= 0:
        return None
    return round_half_up(Fraction(amount, quantity))


def saving(amount: int, minutes: int, hourly_rate: int | None) -> int | None:
    """What the same time would cost at the hourly rate, less the pack price.

    Compared on the basis the prices are stated in (net with net, gross with
    gross), which is how the seeds announce their savings. None when there is
    no reference rate or the pack saves nothing.
    """
    if hourly_rate is None or minutes <= 0:
        return None
    difference = round_half_up(Fraction(hourly_rate * minutes, 60)) - amount
    return difference if difference > 0 else None
