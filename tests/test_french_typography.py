"""French typography (issue 12.6): a no-break space (U+00A0, or the narrow
U+202F) before : ; ? ! wherever French is shown — in the compiled catalogue,
around the strings in the templates, in the pages and in the mail subjects."""

from __future__ import annotations

from billing.text import single_line


def test_one_line_values_keep_their_no_break_spaces():
    assert (single_line("Ticket n°\u00a01 reçu\u00a0: Site\r\n  en panne ?")
            == "Ticket n°\u00a01 reçu\u00a0: Site en panne ?")
    assert single_line("«\u202fOui\u202f»\t\t!") == "«\u202fOui\u202f» !"
