"""Who may see a page: the user a session stands for, the access decorators
every view uses, and the answer to a form that was understood but refused.
Both web layers (shop, portal) stand on this."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, flash
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from billing.accounts.models import User
from common.extensions import login_manager
from common.identity import accounts, sessions

# A form sent back with errors: the request was understood, its content was not acceptable.
INVALID = 422

login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to see this page.")
login_manager.login_message_category = "info"


# The session's user is that of a login still running, unless an owner
# removed them from the pool since: then nobody, and their very next request
# is anonymous.
login_manager.user_loader(sessions.load_user)


# ------------------------------------------------------------ access

def _requires(allowed: Callable[[User], bool]) -> Callable:
    """Anonymous visitors go to the login page (and come back); a logged-in
    user without the right gets the 403 page."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not allowed(current_user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


staff_required = _requires(lambda user: user.is_staff)
# Staff with the admin role: the catalogue, refunds, credit adjustments, the team, the audit log.
admin_required = _requires(lambda user: user.is_admin)
owner_required = _requires(lambda user: user.is_owner)


def send_verification(user: User, next: str | None = None) -> None:
    """Mail the verification link and say so; a mail server that fails is
    told to the user (the link is sent as soon as it is back) and does not
    undo the sign-up. ``next``: where the link leads once verified."""
    if accounts.send_verification(user, next):
        flash(_("We have sent a link to %(email)s: open it to confirm your address.", email=user.email), "info")
    else:
        flash(_("We could not send the email to %(email)s just now. We will try again shortly, "
                "or use “Send the link again” in a few minutes.", email=user.email), "error")
