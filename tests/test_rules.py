"""The charge rule and pack pricing, checked against every worked example of
DESIGN.md. The policies come from the preset files themselves, so these
examples also prove that each preset encodes its seed."""

from __future__ import annotations

import pytest

from billing.catalogue.offers import read_preset
from billing.catalogue.pricing import per_hour, per_unit, round_half_up, saving, split_vat
from billing.ledger.rules import KindRule, PolicyRule, RuleError, explain, units


def rule(policy_slug: str) -> PolicyRule:
    """The rule of a preset policy; preset and policy slugs share their prefix."""
    return read_preset(policy_slug.split("-")[0]).policies[policy_slug].rule()


def pack(slug: str) -> dict:
    return next(values for values in read_preset(slug.split("-")[0]).packs if values["slug"] == slug)


# (policy, request kind, billable minutes, units charged)
WORKED_EXAMPLES = [
    pytest.param("toopixel-credits", None, 27, 3, id="toopixel: 27 min → 3 credits"),
    pytest.param("innova-credits", "consultation", 20, 30, id="innova: consultation 20 → 30"),
    pytest.param("innova-credits", "intervention", 61, 75, id="innova: intervention 61 → 75"),
    pytest.param("innova-credits", "security-update", 45, 60, id="innova: security update fixed 60"),
    pytest.param("innova-credits", "security-update", 130, 60, id="innova: security update fixed however long"),
    pytest.param("itsupport-tickets", None, 40, 2, id="itsupport: 40-min ticket → 2 tickets"),
    pytest.param("itsupport-minutes", None, 12, 30, id="itsupport: hourly 12 → 30"),
    pytest.param("itsupport-minutes", None, 47, 47, id="itsupport: hourly 47 → 47"),
    pytest.param("digitale-minutes", "communication", 20, 0, id="digitale: 20 min of e-mail not charged"),
    pytest.param("digitale-minutes", "production", 20, 20, id="digitale: production to the minute"),
    pytest.param("digitale-minutes", "correction", 7, 7, id="digitale: corrections deducted"),
    pytest.param("digitale-minutes", "training", 45, 45, id="digitale: training deducted"),
    pytest.param("webservice-minutes", None, 50, 50, id="webservice: 50 min deducted"),
]

EDGES = [
    # Nothing logged costs nothing, whatever the kind.
    pytest.param("toopixel-credits", None, 0, 0, id="toopixel 0"),
    pytest.param("innova-credits", "intervention", 0, 0, id="innova intervention 0"),
    pytest.param("innova-credits", "security-update", 0, 0, id="innova fixed 0"),
    pytest.param("itsupport-minutes", None, 0, 0, id="hourly 0"),
    # Block boundaries: exactly on one, then one minute past it.
    pytest.param("toopixel-credits", None, 1, 1, id="toopixel 1"),
    pytest.param("toopixel-credits", None, 10, 1, id="toopixel 10"),
    pytest.param("toopixel-credits", None, 11, 2, id="toopixel 11"),
    pytest.param("toopixel-credits", None, 30, 3, id="toopixel 30"),
    pytest.param("toopixel-credits", None, 31, 4, id="toopixel 31"),
    pytest.param("itsupport-tickets", None, 1, 1, id="ticket 1"),
    pytest.param("itsupport-tickets", None, 30, 1, id="ticket 30"),
    pytest.param("itsupport-tickets", None, 31, 2, id="ticket 31"),
    pytest.param("itsupport-tickets", None, 60, 2, id="ticket 60"),
    pytest.param("itsupport-tickets", None, 61, 3, id="ticket 61"),
    # Minimums: consultation 15, intervention 60, hourly 30.
    pytest.param("innova-credits", "consultation", 1, 15, id="consultation 1"),
    pytest.param("innova-credits", "consultation", 15, 15, id="consultation 15"),
    pytest.param("innova-credits", "consultation", 16, 30, id="consultation 16"),
    pytest.param("innova-credits", None, 16, 30, id="innova default kind is consultation"),
    pytest.param("innova-credits", "intervention", 1, 60, id="intervention 1"),
    pytest.param("innova-credits", "intervention", 60, 60, id="intervention 60"),
    pytest.param("innova-credits", "intervention", 75, 75, id="intervention 75"),
    pytest.param("innova-credits", "intervention", 76, 90, id="intervention 76"),
    pytest.param("itsupport-minutes", None, 1, 30, id="hourly 1"),
    pytest.param("itsupport-minutes", None, 30, 30, id="hourly 30"),
    pytest.param("itsupport-minutes", None, 31, 31, id="hourly 31"),
    pytest.param("itsupport-trial-minutes", None, 12, 12, id="trial to the minute, no minimum"),
]


@pytest.mark.parametrize(("policy", "kind", "minutes", "charged"), WORKED_EXAMPLES + EDGES)
def test_units(policy, kind, minutes, charged):
    assert units(rule(policy), minutes, kind).units == charged


def test_annual_plan_leaves_11_h_10_min_after_50_minutes():
    plan = pack("webservice-12h")
    left = plan["quantity"] - units(rule(plan["policy"]), 50).units
    assert left == 670
    assert divmod(left, 60) == (11, 10)


def test_rounding_applies_to_the_ticket_total_not_to_each_entry():
    # Three entries of 4 minutes: one block of 10 for the ticket, not three.
    toopixel = rule("toopixel-credits")
    charged = [units(toopixel, total).units for total in (4, 8, 12)]
    assert charged == [1, 1, 2]
    assert charged[-1] < 3 * units(toopixel, 4).units


@pytest.mark.parametrize(
    ("policy", "kind", "minutes", "text"),
    [
        ("toopixel-credits", None, 27, "27 min → 3 blocks of 10 min → 3 credits"),
        ("toopixel-credits", None, 5, "5 min → 1 block of 10 min → 1 credit"),
        ("toopixel-credits", None, 0, "0 min → 0 credits"),
        ("innova-credits", "consultation", 20, "20 min → 2 blocks of 15 min → 30 credits"),
        ("innova-credits", "intervention", 20, "20 min → 2 blocks of 15 min → minimum 60 credits → 60 credits"),
        ("innova-credits", "intervention", 61, "61 min → 5 blocks of 15 min → 75 credits"),
        ("innova-credits", "security-update", 45, "45 min → fixed price → 60 credits"),
        ("itsupport-tickets", None, 40, "40 min → 2 blocks of 30 min → 2 tickets"),
        ("itsupport-tickets", None, 10, "10 min → 1 block of 30 min → 1 ticket"),
        ("itsupport-minutes", None, 12, "12 min → minimum 30 minutes → 30 minutes"),
        ("itsupport-minutes", None, 47, "47 min → 47 minutes"),
        ("itsupport-trial-minutes", None, 1, "1 min → 1 minute"),
        ("digitale-minutes", "communication", 20, "20 min → not billable → 0 minutes"),
    ],
)
def test_explain(policy, kind, minutes, text):
    assert explain(units(rule(policy), minutes, kind)) == text


def test_explain_goes_through_the_translation_functions_it_is_given():
    def gettext(message):
        return f"«{message}»"

    def ngettext(singular, plural, n):
        return f"‹{singular if n == 1 else plural}›"

    text = explain(units(rule("innova-credits"), 20, "intervention"), gettext, ngettext)
    assert text == "«20 min» → ‹2 blocks of 15 min› → «minimum ‹60 credits›» → ‹60 credits›"


@pytest.mark.parametrize(
    ("minutes", "message"),
    [
        (-1, "minutes cannot be negative"),
        (1.5, "minutes must be a whole number"),
        (30.0, "minutes must be a whole number"),
        ("30", "minutes must be a whole number"),
        (None, "minutes must be a whole number"),
        (True, "minutes must be a whole number"),
    ],
)
def test_bad_minutes(minutes, message):
    with pytest.raises(RuleError, match=message):
        units(rule("toopixel-credits"), minutes)


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(RuleError,
                       match=r"unknown request kind 'repair' \(known: consultation, intervention, security-update\)"):
        units(rule("innova-credits"), 20, "repair")
    with pytest.raises(RuleError, match=r"\(known: none\)"):
        units(rule("toopixel-credits"), 20, "repair")


@pytest.mark.parametrize(
    "arguments",
    [{"unit": "hour"}, {"unit": "credit", "unit_minutes": 0}, {"unit": "credit", "step": 0}],
)
def test_bad_policy(arguments):
    with pytest.raises(RuleError):
        PolicyRule(**arguments)


def test_no_kind_and_no_default_kind_charges_plain_blocks():
    policy = PolicyRule(unit="credit", unit_minutes=10, kinds={"x": KindRule("x", minimum=5)})
    assert units(policy, 27).units == 3
    assert units(policy, 27, "x").units == 5


# --- Pricing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rate_bp", "includes_vat", "net", "vat", "gross"),
    [
        (18000, 2000, False, 18000, 3600, 21600),  # digitale 3 h, HT + 20 %
        (25600, 2100, False, 25600, 5376, 30976),  # innova 480 credits, sin IVA + 21 %
        (95000, 810, True, 87882, 7118, 95000),  # toopixel 36 credits, VAT included
        (25, 1000, False, 25, 3, 28),  # 2.5 cents of VAT round half up, to 3
        (15, 1000, False, 15, 2, 17),  # 1.5 → 2
        (14, 1000, False, 14, 1, 15),  # 1.4 → 1
        (3, 2000, True, 3, 0, 3),  # net 2.5 rounds up to 3
        (0, 2000, False, 0, 0, 0),
        (5000, 0, True, 5000, 0, 5000),
    ],
)
def test_split_vat(amount, rate_bp, includes_vat, net, vat, gross):
    price = split_vat(amount, "EUR", rate_bp, includes_vat)
    assert (price.net, price.vat, price.gross) == (net, vat, gross)
    assert price.net + price.vat == price.gross
    assert all(isinstance(value, int) for value in (price.net, price.vat, price.gross))


@pytest.mark.parametrize(("amount", "rate_bp"), [(-1, 2000), (100, -1)])
def test_split_vat_refuses_negatives(amount, rate_bp):
    with pytest.raises(ValueError):
        split_vat(amount, "EUR", rate_bp, False)


def test_round_half_up_goes_away_from_zero():
    from fractions import Fraction

    assert [round_half_up(Fraction(n, 2)) for n in (-3, -1, 1, 3, 5)] == [-2, -1, 1, 2, 3]


@pytest.mark.parametrize(
    ("slug", "minutes", "saved"),
    [("toopixel-36", 360, 25000), ("toopixel-72", 720, 90000), ("toopixel-150", 1500, 220000)],
)
def test_toopixel_savings_are_the_seeds(slug, minutes, saved):
    values = pack(slug)
    bought = values["quantity"] * read_preset("toopixel").policies[values["policy"]].values["unit_minutes"]
    assert bought == minutes
    assert saving(values["price"], bought, values["hourly_rate"]) == saved


def test_saving_is_none_without_a_rate_or_a_saving():
    assert saving(1000, 15, None) is None
    assert saving(1000, 15, 4000) is None  # innova's 15 credits cost exactly the hourly rate
    assert saving(5000, 60, 4000) is None
    assert saving(1000, 0, 4000) is None


@pytest.mark.parametrize(
    ("amount", "minutes", "hourly"),
    [
        (95000, 360, 15833),  # toopixel 36 credits: 6 h for CHF 950
        (18000, 180, 6000),  # digitale 3 h
        (28500, 300, 5700),  # digitale 5 h
        (55000, 600, 5500),  # digitale 10 h
        (1000, 15, 4000),  # innova 15 credits
        (25600, 480, 3200),  # innova 480 credits
    ],
)
def test_per_hour(amount, minutes, hourly):
    assert per_hour(amount, minutes) == hourly


def test_per_hour_and_per_unit_without_a_quantity():
    assert per_hour(1000, 0) is None
    assert per_unit(1000, 0) is None
    assert per_unit(95000, 36) == 2639  # 2638.89 rounds up
