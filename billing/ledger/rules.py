"""The charge rule of DESIGN.md, as pure functions.

    units(m, k) = fixed[k]                                              if k has a fixed price
                = max(minimum[k], step * ceil(m / (unit_minutes * step)))   otherwise

Nothing here imports Flask or the database, so the rule can be tested with a
table and reused by the CLI, the estimator and the ledger alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from billing.errors import BillingError

Unit = Literal["minute", "credit", "ticket"]
UNITS: tuple[Unit, ...] = ("minute", "credit", "ticket")
OverageMode = Literal["block", "ask", "allow"]
OVERAGE_MODES: tuple[OverageMode, ...] = ("block", "ask", "allow")


class RuleError(BillingError):
    """Input the rule cannot price: the message is meant for the user."""


def as_unit(value: str) -> Unit:
    """A unit read from storage (constraint policy_unit) as the Unit it is."""
    for unit in UNITS:
        if value == unit:
            return unit
    raise ValueError(f"unknown unit {value!r}")


@dataclass(frozen=True)
class KindRule:
    """How one request kind is charged under a policy."""

    slug: str
    minimum: int = 0
    fixed: int | None = None
    billable: bool = True


@dataclass(frozen=True)
class PolicyRule:
    unit: Unit
    unit_minutes: int = 1
    step: int = 1
    kinds: Mapping[str, KindRule] = field(default_factory=dict)
    default_kind: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise RuleError(f"unknown unit {self.unit!r}")
        if self.unit_minutes < 1 or self.step < 1:
            raise RuleError("unit_minutes and step must be at least 1")

    @property
    def block_minutes(self) -> int:
        return self.unit_minutes * self.step

    def kind(self, slug: str | None) -> KindRule:
        slug = slug or self.default_kind
        if slug is None:
            return KindRule(slug="")
        try:
            return self.kinds[slug]
        except KeyError:
            known = ", ".join(sorted(self.kinds)) or "none"
            raise RuleError(f"unknown request kind {slug!r} (known: {known})") from None


@dataclass(frozen=True)
class Charge:
    """The units a ticket costs and every fact needed to explain why."""

    minutes: int
    units: int
    unit: Unit
    kind: str
    block_minutes: int
    blocks: int
    step: int
    minimum: int
    fixed: int | None
    billable: bool

    @property
    def minimum_applied(self) -> bool:
        return (
            self.billable and self.fixed is None and self.minutes > 0 and self.blocks * self.step < self.minimum
        )


def units(policy: PolicyRule, minutes: int, kind: str | None = None) -> Charge:
    """Units charged for a ticket whose billable time totals ``minutes``.

    Rounding applies to the ticket's total, never to each time entry. A ticket
    with no time logged costs nothing, even for a fixed-price kind: the price
    is due once work starts.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise RuleError("minutes must be a whole number")
    if minutes < 0:
        raise RuleError("minutes cannot be negative")
    rule = policy.kind(kind)
    block = policy.block_minutes
    blocks = -(-minutes // block)  # ceil without floats
    if not rule.billable or minutes == 0:
        charged = 0
    elif rule.fixed is not None:
        charged = rule.fixed
    else:
        charged = max(rule.minimum, policy.step * blocks)
    return Charge(
        minutes=minutes,
        units=charged,
        unit=policy.unit,
        kind=rule.slug,
        block_minutes=block,
        blocks=blocks,
        step=policy.step,
        minimum=rule.minimum,
        fixed=rule.fixed,
        billable=rule.billable,
    )


Gettext = Callable[[str], str]
Ngettext = Callable[[str, str, int], str]


def english_plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def unit_label(unit: Unit, n: int, ngettext: Ngettext = english_plural) -> str:
    # Spelled out so that message extraction sees every form.
    if unit == "minute":
        return ngettext("%(num)d minute", "%(num)d minutes", n) % {"num": n}
    if unit == "credit":
        return ngettext("%(num)d credit", "%(num)d credits", n) % {"num": n}
    return ngettext("%(num)d ticket", "%(num)d tickets", n) % {"num": n}


def explain(charge: Charge, gettext: Gettext = lambda s: s, ngettext: Ngettext = english_plural) -> str:
    """One line a client can check by hand: ``27 min → 3 blocks of 10 min → 3 credits``.

    Translation functions are passed in so that this module stays free of Flask.
    """
    spent = gettext("%(num)d min") % {"num": charge.minutes}
    total = unit_label(charge.unit, charge.units, ngettext)
    # Each gettext call stands alone, outside f-strings, where extraction finds it.
    if not charge.billable:
        return " → ".join([spent, gettext("not billable"), total])
    if charge.minutes == 0:
        return " → ".join([spent, total])
    if charge.fixed is not None:
        return " → ".join([spent, gettext("fixed price"), total])
    if charge.block_minutes == 1:
        steps = [spent]
    else:
        blocks = ngettext(
            "%(num)d block of %(size)d min", "%(num)d blocks of %(size)d min", charge.blocks
        ) % {"num": charge.blocks, "size": charge.block_minutes}
        steps = [spent, blocks]
    if charge.minimum_applied:
        steps.append(gettext("minimum %(min)s") % {"min": unit_label(charge.unit, charge.minimum, ngettext)})
    steps.append(total)
    return " → ".join(steps)
