"""Staff's second factor (TOTP, RFC 6238, with pyotp) and the log of staff
logins.

A code is accepted for the time step it belongs to, one step either side
for a clock that drifts, and only for a step later than the last accepted:
a code read over a shoulder or from a log is worth nothing once used.
"""

from __future__ import annotations

import base64
import time

import pyotp
import segno
from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, clock
from billing.accounts.models import LoginEvent, User
from billing.transaction import atomic
from common.extensions import db
from common.identity import sessions
from common.mail import delivery

STEP_SECONDS = 30
OUTCOMES = ("login", "wrong password", "wrong code", "throttled")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=current_app.config["PROVIDER_NAME"])


def qr_data_uri(uri: str) -> str:
    """The enrolment QR code as an SVG data URI (segno), for an <img>."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def matching_step(secret: str, code: str, *, after: int | None, now: float | None = None) -> int | None:
    """The time step ``code`` is right for (this one or one either side),
    if it is later than ``after``; else None."""
    code = "".join((code or "").split())
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in (current, current - 1, current + 1):
        if (after is None or step > after) and pyotp.utils.strings_equal(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def enable(session: Session, user: User, secret: str, code: str) -> bool:
    """Turn the second factor on once a code from the new secret proves the app has it."""
    step = matching_step(secret, code, after=None)
    if step is None:
        return False
    with atomic(session):
        user.totp_secret, user.totp_last_step = secret, step
    return True


def disable(session: Session, user: User) -> None:
    with atomic(session):
        user.totp_secret, user.totp_last_step = None, None


def reset(session: Session, user: User, *, by: User | None = None) -> int:
    """A staff member lost their phone: the second factor is cleared and
    every login of theirs ends (whoever holds one of them is out), in one
    unit of work with its audit entry; returns how many logins ended. Their
    next login asks for the password only, then, if STAFF_TOTP_REQUIRED,
    for a new enrolment before anything else. ``by``: None from the command
    line."""
    with atomic(session):
        before = {"second_factor": bool(user.totp_secret)}
        user.totp_secret, user.totp_last_step = None, None
        ended = sessions.end_all(session, user)
        audit.record(by, "staff.second_factor_reset", "user", user.id, before=before,
                     after={"second_factor": False, "logins_ended": ended}, session=session)
    current_app.logger.warning("staff second factor reset: %s (%d logins ended) by %s", user.email, ended,
                               by.email if by is not None else "the command line")
    return ended


def check(session: Session, user: User, code: str) -> bool:
    """A login's code: right, and never used before (its step is spent)."""
    if not user.totp_secret:
        return False
    step = matching_step(user.totp_secret, code, after=user.totp_last_step)
    if step is None:
        return False
    with atomic(session):
        user.totp_last_step = step
    return True


def required(user: User) -> bool:
    return bool(user.is_staff and current_app.config["STAFF_TOTP_REQUIRED"] and not user.totp_secret)


# ------------------------------------------------------------ staff login log

def record(email: str, user: User | None, outcome: str) -> None:
    """Log a staff login or failed login (an email nobody uses is not staff:
    not logged). Written after the answer (common.mail.delivery.after_answer):
    a failed login on a staff address must take no longer than on any other,
    or its answer would tell which addresses are staff's."""
    if user is None or not user.is_staff:
        return
    user_id, address, agent = user.id, request.remote_addr or "", request.user_agent.string[:300]
    logger = current_app.logger

    def write() -> list[str]:
        with atomic(db.session()):
            db.session().add(LoginEvent(user_id=user_id, email=email, at=clock.now(), address=address[:64],
                                        user_agent=agent, outcome=outcome))
        logger.info("staff login: %s %s from %s", email, outcome, address)
        return []

    delivery.after_answer(write)


def recent(session: Session, limit: int = 200) -> list[LoginEvent]:
    return list(session.scalars(select(LoginEvent).order_by(LoginEvent.at.desc(), LoginEvent.id.desc()).limit(limit)))
