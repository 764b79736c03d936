"""Payment references: ISO 11649 (RF) and Swiss QR references, with their check digits."""

from __future__ import annotations

import pytest

from billing.orders import references as refs


def test_known_iso_11649_reference_is_valid_and_rebuilt_from_its_payload():
    assert refs.is_rf_reference("RF18539007547034")
    assert refs.is_rf_reference("RF18 5390 0754 7034")  # as printed
    assert refs.rf_reference("539007547034") == "RF18539007547034"


@pytest.mark.parametrize("broken", ["RF19539007547034", "RF18539007547035", "RF1853900754703", "XX18539007547034",
                                    "RF18-539007547034", "RF", ""])
def test_a_mistyped_rf_reference_is_refused(broken):
    assert not refs.is_rf_reference(broken)


def test_known_swiss_qr_reference_is_valid_and_rebuilt_from_its_number():
    assert refs.is_qr_reference("210000000003139471430009017")
    assert refs.is_qr_reference("21 00000 00003 13947 14300 09017")
    assert refs.qr_reference("21000000000313947143000901") == "210000000003139471430009017"


@pytest.mark.parametrize("broken", ["210000000003139471430009018", "21000000000313947143000901",
                                    "2100000000031394714300090170", "000000000000000000000000000", "RF18539007547034"])
def test_a_mistyped_qr_reference_is_refused(broken):
    assert not refs.is_qr_reference(broken)


@pytest.mark.parametrize("digits", ["1", "42", "999999", "12345678901234567890123456"])
def test_every_qr_reference_made_checks_out(digits):
    made = refs.qr_reference(digits)
    assert len(made) == 27 and refs.is_qr_reference(made)
    # Any single digit changed is caught by the recursive mod 10.
    for position in range(27):
        changed = made[:position] + str((int(made[position]) + 1) % 10) + made[position + 1:]
        assert not refs.is_qr_reference(changed), position


@pytest.mark.parametrize("payload", ["1", "00000042", "ABCDEFGHIJKLMNOPQRSTU"])
def test_every_rf_reference_made_checks_out(payload):
    assert refs.is_rf_reference(refs.rf_reference(payload))


@pytest.mark.parametrize("payload", ["", "A" * 22, "ÉTÉ", "12-34"])
def test_payloads_that_cannot_be_references(payload):
    with pytest.raises(refs.ReferenceError):
        refs.rf_reference(payload)


def test_qr_iban_is_told_apart_from_an_ordinary_swiss_iban():
    assert refs.is_qr_iban("CH44 3199 9123 0008 8901 2")
    assert not refs.is_qr_iban("CH9300762011623852957")
    assert not refs.is_qr_iban("FR7630006000011234567890189")


@pytest.mark.parametrize(
    "currency, iban, kind",
    [("CHF", "CH4431999123000889012", "qr"), ("CHF", "CH9300762011623852957", "rf"),
     ("EUR", "FR7630006000011234567890189", "rf"), ("EUR", "CH4431999123000889012", "rf")],
)
def test_an_order_gets_a_qr_reference_only_for_chf_to_a_qr_iban(currency, iban, kind):
    reference = refs.order_reference(1234, currency, iban)
    assert (refs.is_qr_reference if kind == "qr" else refs.is_rf_reference)(reference)
    assert "1234" in reference


def test_references_are_found_however_they_are_typed():
    assert refs.normalise(" rf18 5390\u00a00754 7034 ") == "RF18539007547034"
    assert refs.pretty("RF18539007547034") == "RF18 5390 0754 7034"
    assert refs.pretty("210000000003139471430009017") == "21 00000 00003 13947 14300 09017"
