"""The command-line contract staff script against: exact stdout lines, and
every usage error as one line on stderr with exit code 2 and no stdout."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from billing.catalogue.models import Catalogue, Pack
from billing.catalogue.offers import preset_names
from common.extensions import db

# `flask catalogue list` for each preset: SLUG, UNIT, QUANTITY, PRICE, NAME.
LISTS = {
    "demo": [
        "demo-trial\tminute\t30\t0.00 EUR\tFree trial: 30 minutes",
        "demo-hours-5\tminute\t300\t425.00 EUR\t5 hours",
        "demo-hours-10\tminute\t600\t810.00 EUR\t10 hours",
        "demo-credits-100\tcredit\t100\t1912.50 EUR\t100 credits",
        "demo-tickets-10\tticket\t10\t400.00 EUR\t10 tickets",
        "demo-team-tickets\tticket\t1\t38.00 EUR\tTeam tickets (from 20)",
        "demo-annual-24h\tminute\t1440\t1980.00 EUR\tAnnual plan, 24 hours",
        "demo-unlimited\tticket\tunlimited\t149.00 EUR\tUnlimited tickets, monthly",
    ],
    "toopixel": [
        "toopixel-36\tcredit\t36\t950.00 CHF\t36 credits",
        "toopixel-72\tcredit\t72\t1500.00 CHF\t72 credits",
        "toopixel-150\tcredit\t150\t2800.00 CHF\t150 credits",
    ],
    "webservice": [
        "webservice-12h\tminute\t720\ton request\tUpdate plan, 1 hour a month",
        "webservice-24h\tminute\t1440\ton request\tUpdate plan, 2 hours a month",
        "webservice-36h\tminute\t2160\ton request\tUpdate plan, 3 hours a month",
    ],
    "digitale": [
        "digitale-3h\tminute\t180\t180.00 EUR\tSupport pack, 3 hours",
        "digitale-5h\tminute\t300\t285.00 EUR\tSupport pack, 5 hours",
        "digitale-10h\tminute\t600\t550.00 EUR\tSupport pack, 10 hours",
    ],
    "innova": [
        "innova-15\tcredit\t15\t10.00 EUR\tSupport top-up, 15 credits",
        "innova-30\tcredit\t30\t20.00 EUR\tSupport top-up, 30 credits",
        "innova-60\tcredit\t60\t36.00 EUR\tSupport top-up, 60 credits",
        "innova-120\tcredit\t120\t72.00 EUR\tSupport top-up, 120 credits",
        "innova-240\tcredit\t240\t144.00 EUR\tSupport top-up, 240 credits",
        "innova-480\tcredit\t480\t256.00 EUR\tSupport top-up, 480 credits",
    ],
    "itsupport": [
        "itsupport-trial\tminute\t15\t0.00 EUR\tFree trial: 15 minutes",
        "itsupport-ticket-1\tticket\t1\ton request\t1 ticket",
        "itsupport-tickets-20\tticket\t20\ton request\t20 tickets",
        "itsupport-team-tickets\tticket\t1\ton request\tMulti-user tickets (from 20)",
        "itsupport-hour\tminute\t60\ton request\tHourly pack, 1 hour",
        "itsupport-unlimited\tticket\tunlimited\ton request\tSubscription: unlimited tickets",
    ],
}

# `flask billing estimate SLUG MINUTES [--kind KIND]` on each preset: the
# seeds' worked examples, by policy slug or by pack slug.
ESTIMATES = [
    ("demo", ["demo-hours-5", "10"], "15 minute", "10 min → minimum 15 minutes → 15 minutes"),
    ("demo", ["demo-tickets-10", "75"], "3 ticket", "75 min → 3 blocks of 30 min → 3 tickets"),
    ("demo", ["demo-credits", "16"], "2 credit", "16 min → 2 blocks of 15 min → 2 credits"),
    ("toopixel", ["toopixel-36", "27"], "3 credit", "27 min → 3 blocks of 10 min → 3 credits"),
    ("toopixel", ["toopixel-credits", "0"], "0 credit", "0 min → 0 credits"),
    ("webservice", ["webservice-12h", "50"], "50 minute", "50 min → 50 minutes"),
    ("digitale", ["digitale-3h", "20", "--kind", "communication"], "0 minute", "20 min → not billable → 0 minutes"),
    ("digitale", ["digitale-minutes", "20"], "20 minute", "20 min → 20 minutes"),
    ("innova", ["innova-60", "20", "--kind", "consultation"], "30 credit", "20 min → 2 blocks of 15 min → 30 credits"),
    ("innova", ["innova-credits", "61", "--kind", "intervention"], "75 credit",
     "61 min → 5 blocks of 15 min → 75 credits"),
    ("innova", ["innova-15", "45", "--kind=security-update"], "60 credit", "45 min → fixed price → 60 credits"),
    ("itsupport", ["itsupport-tickets-20", "40"], "2 ticket", "40 min → 2 blocks of 30 min → 2 tickets"),
    ("itsupport", ["itsupport-hour", "12"], "30 minute", "12 min → minimum 30 minutes → 30 minutes"),
    ("itsupport", ["itsupport-minutes", "47"], "47 minute", "47 min → 47 minutes"),
    ("itsupport", ["itsupport-trial", "12"], "12 minute", "12 min → 12 minutes"),
]


def invoke(runner, *args: str):
    return runner.invoke(args=list(args))


def assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr == f"Error: {message}\n"


@pytest.mark.parametrize("name", sorted(LISTS))
def test_load_then_list_each_preset(runner, name):
    loaded = invoke(runner, "catalogue", "load", name)
    assert loaded.exit_code == 0, loaded.output
    lines = loaded.stdout.splitlines()
    packs = [line.split("\t")[0] for line in LISTS[name]]
    assert lines[0] == f"created catalogue {name}"
    assert lines[-(len(packs) + 1):-1] == [f"created pack {slug}" for slug in packs]
    assert lines[-1] == f"{name}: {len(lines) - 1} created, 0 updated, 0 unchanged, 0 retired, 0 restored, 0 deleted"

    listed = invoke(runner, "catalogue", "list")
    assert listed.exit_code == 0
    assert listed.stdout == "".join(f"{line}\n" for line in LISTS[name])
    assert listed.stderr == ""


def test_presets_are_all_covered():
    assert sorted(LISTS) == preset_names()
    assert {preset for preset, *_ in ESTIMATES} == set(preset_names())


def test_second_load_reports_nothing_changed(runner):
    invoke(runner, "catalogue", "load", "toopixel")
    again = invoke(runner, "catalogue", "load", "toopixel")
    assert again.exit_code == 0
    assert again.stdout == "toopixel: 0 created, 0 updated, 5 unchanged, 0 retired, 0 restored, 0 deleted\n"


def test_load_several_presets_at_once_and_list_them_in_catalogue_order(runner):
    loaded = invoke(runner, "catalogue", "load", *sorted(LISTS))
    assert loaded.exit_code == 0
    assert [line.split(":")[0] for line in loaded.stdout.splitlines() if " created, " in line] == sorted(LISTS)
    order = ["demo", "toopixel", "webservice", "digitale", "innova", "itsupport"]
    listed = invoke(runner, "catalogue", "list")
    assert listed.stdout.splitlines() == [line for name in order for line in LISTS[name]]


def test_if_empty_loads_only_into_an_empty_database(app, runner):
    first = invoke(runner, "catalogue", "load", "demo", "--if-empty")
    assert first.exit_code == 0 and first.stdout.startswith("created catalogue demo\n")
    second = invoke(runner, "catalogue", "load", "toopixel", "--if-empty")
    assert second.exit_code == 0
    assert second.stdout == "nothing loaded: the database already has a catalogue\n"
    with app.app_context():
        assert db.session.scalars(select(Catalogue.slug)).all() == ["demo"]


def test_list_leaves_out_retired_packs(app, runner):
    invoke(runner, "catalogue", "load", "toopixel")
    with app.app_context():
        db.session.execute(update(Pack).where(Pack.slug == "toopixel-72").values(retired_at=db.func.now()))
        db.session.commit()
    listed = invoke(runner, "catalogue", "list")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["toopixel-36", "toopixel-150"]


def test_list_of_an_empty_database_prints_nothing(runner):
    listed = invoke(runner, "catalogue", "list")
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "", "")


@pytest.mark.parametrize(("preset", "args", "first", "why"), ESTIMATES)
def test_estimate(runner, preset, args, first, why):
    invoke(runner, "catalogue", "load", preset)
    result = invoke(runner, "billing", "estimate", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{first}\n{why}\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "27"], "no policy or pack 'nope'"),
        (["toopixel-36", "-5"], "minutes cannot be negative"),
        (["toopixel-36", "abc"], "minutes must be a whole number, got 'abc'"),
        (["toopixel-36", "1.5"], "minutes must be a whole number, got '1.5'"),
        (["toopixel-36", ""], "minutes must be a whole number, got ''"),
        (["toopixel-36", "27", "--kind", "repair"], "unknown request kind 'repair' (known: none)"),
        (["innova-60", "20", "--kind", "chat"],
         "unknown request kind 'chat' (known: consultation, intervention, security-update)"),
        (["toopixel-36"], "Missing argument 'MINUTES'."),
        (["toopixel-36", "27", "--colour"], "Got unexpected extra argument (--colour)"),
    ],
)
def test_estimate_errors_are_one_line_with_exit_code_2(runner, args, message):
    invoke(runner, "catalogue", "load", "toopixel")
    invoke(runner, "catalogue", "load", "innova")
    assert_one_line_error(invoke(runner, "billing", "estimate", *args), message)


def test_load_of_an_unknown_preset_is_one_line_with_exit_code_2(app, runner):
    result = invoke(runner, "catalogue", "load", "nope")
    known = ", ".join(f"'{name}'" for name in preset_names())
    assert_one_line_error(result, f"Invalid value for 'NAME...': 'nope' is not one of {known}.")
    with app.app_context():
        assert db.session.scalar(select(Catalogue)) is None


def test_unknown_subcommand_is_one_line_with_exit_code_2(runner):
    assert_one_line_error(invoke(runner, "catalogue", "lst"), "No such command 'lst'. Did you mean 'list'?")
