"""Error pages of ours, in the visitor's language, for every 4xx and 500."""

from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException, NotFound, SecurityError


class MissingHere(NotFound):
    """A 404 whose page says what is missing, in the visitor's language."""

    def __init__(self, description_for_user: str) -> None:
        super().__init__()
        self.description_for_user = description_for_user


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"),
        403: _("Forbidden"),
        404: _("Page not found"),
        405: _("Method not allowed"),
        413: _("Upload too large"),
        429: _("Too many attempts"),
        500: _("Something went wrong"),
    }


def _messages() -> dict[int, str]:
    return {
        400: _("The request could not be understood. Please check what you entered and try again."),
        403: _("You do not have access to this page."),
        404: _("There is nothing at this address. It may have moved, or the link may be mistyped."),
        405: _("This address does not accept that kind of request."),
        413: _("The file you sent is larger than we accept."),
        429: _("Too many attempts in a short time. Please wait a minute and try again."),
        500: _("We could not complete your request. Nothing was saved; please try again."),
    }


def handle(error: HTTPException):
    code = error.code or 500
    if code >= 500:
        # A database error leaves the session's transaction failed: the page
        # (the menu reads the user, the locale reads their language) would
        # fail too (PendingRollbackError). Nothing of it is to be kept anyway.
        from common.extensions import db

        db.session.rollback()
    title = _titles().get(code, error.name)
    message = getattr(error, "description_for_user", None) or _messages().get(code, error.description)
    return render_template("error.html", code=code, title=title, message=message), code


def untrusted_host(error: SecurityError):
    """A request for a host this site does not serve (TRUSTED_HOSTS): no page
    of ours, whose links would be built for that host, just the refusal."""
    return _("This site is not served at that address."), 400, {"Content-Type": "text/plain; charset=utf-8"}


def init_app(app) -> None:
    app.register_error_handler(SecurityError, untrusted_host)
    app.register_error_handler(HTTPException, handle)
