"""The `bank` command group, under the contract of commands/cli.py: English,
one record a line, tab-separated fields.

    flask bank import FILE [--format camt053|camt054|mt940|csv] [--mapping NAME]
        BANK_LINE_ID  OUTCOME  ORDER_ID  AMOUNT  CURRENCY

For a bank file fetched by a script each night. OUTCOME is one of
confirmed, partial, overpaid, suggested, unmatched, duplicate, ignored
(billing.bank.imports); ORDER_ID is ``-`` when there is none; AMOUNT is the
line's, unsigned, as the bank wrote it (a debit is ``ignored``). Importing
the same file again prints ``duplicate`` for every line and credits
nothing. A malformed file exits 2 with one line naming the line or the
element, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select

from billing import clock
from billing.bank import imports, statements
from billing.bank.models import FORMATS, BankMapping
from commands.cli import ScriptError, ScriptGroup
from common.extensions import db
from common.i18n import to_decimal

bank_cli = ScriptGroup("bank", help="Import bank statements and credit the transfers they show.")
# What one file may weigh, as the upload form allows.
MAX_BYTES = 20 * 1024 * 1024


@bank_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "format_", type=click.Choice(FORMATS), help="Default: read from the file.")
@click.option("--mapping", help="The CSV column mapping, by name (see the staff page Bank statements).")
def import_(file: Path, format_: str | None, mapping: str | None) -> None:
    """Import FILE: BANK_LINE_ID OUTCOME ORDER_ID AMOUNT CURRENCY, a line each."""
    from common import payments

    data = file.read_bytes()
    if len(data) > MAX_BYTES:
        raise ScriptError(f"{file.name} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    # A mapping only reads CSV: naming one says the format.
    format_ = format_ or ("csv" if mapping else statements.guess_format(data, file.name))
    chosen = None
    if format_ == "csv":
        if not mapping:
            raise ScriptError("a CSV statement needs --mapping NAME")
        row = db.session.scalar(select(BankMapping).where(BankMapping.name == mapping))
        if row is None:
            raise ScriptError(f"there is no mapping named {mapping!r}")
        chosen = imports.mapping_of(row)
    try:
        done = imports.import_statement(db.session(), data, format=format_, filename=file.name,
                                        seller=payments.seller(), now=clock.now(), mapping=chosen)
    except statements.MalformedStatement as error:
        raise ScriptError(f"{file.name}: {error}") from None
    for result in done.lines:
        line = result.line
        order = str(result.order_id) if result.order_id is not None else "-"
        click.echo(f"{line.id}\t{result.outcome}\t{order}\t{to_decimal(line.amount, line.currency):f}\t{line.currency}")


def init_app(app: Flask) -> None:
    app.cli.add_command(bank_cli)
