"""What billing says when it refuses, and how it marks its words.

Billing has no Flask and no request language: a refusal carries a gettext
message id with its parameters, and the view that shows it translates it
(``_(error.message, **error.params)``). ``str(error)`` is the English sentence,
for logs and the command line."""

from __future__ import annotations


def N_(message: str) -> str:
    """Marks a message for extraction (pybabel's default keywords) without
    translating it: whoever shows it translates it in the reader's language."""
    return message


class BillingError(ValueError):
    """A request billing refused, in words a person reads. ``message`` is a
    gettext message id with ``params``; ``field`` names the form field to
    blame, if any."""

    def __init__(self, message: str, field: str | None = None, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.field = field
        self.params = params
