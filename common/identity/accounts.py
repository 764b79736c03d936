"""Accounts and the people in them: sign-up, staff, passwords, signed links.

Each service receives the SQLAlchemy session and commits once per action.
Rules a caller could break (password length, a taken email) raise
AccountError naming the form field, so that a view only has to show the text
under that field."""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from babel import Locale
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from billing import clock
from billing.accounts.models import STAFF_ROLES, Account, User
from billing.notifications import outbox
from billing.text import single_line
from billing.transaction import atomic
from common.config import LANGUAGES, NOT_COUNTRIES
from common.extensions import db
from common.identity import sessions
from common.mail import delivery

MIN_PASSWORD_LENGTH = 10
# argon2 takes any length, but hashing megabytes on every login attempt would be a cheap denial of service.
MAX_PASSWORD_LENGTH = 256



@functools.cache
def _argon2(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def password_hasher() -> PasswordHasher:
    """argon2 at the cost of the app's PASSWORD_HASH_* settings (argon2-cffi's
    defaults unless set); a hash made at another cost is upgraded at the next login."""
    config = current_app.config
    return _argon2(config["PASSWORD_HASH_TIME_COST"], config["PASSWORD_HASH_MEMORY_COST"],
                   config["PASSWORD_HASH_PARALLELISM"])


hasher: LocalProxy[PasswordHasher] = LocalProxy(password_hasher)


@functools.cache
def _unknown_user_hash(hasher: PasswordHasher) -> str:
    """Verified against when the email is unknown, so that the answer takes as long either way."""
    return hasher.hash("no such user")


class AccountError(ValueError):
    """A rule of accounts refused the input; ``field`` is the form field to blame."""

    def __init__(self, field: str, message: Any) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class EmailTaken(AccountError):
    """An account already uses ``email``."""

    def __init__(self, email: str) -> None:
        super().__init__("email", _l("An account already uses this email address. "
                                     "Log in, or reset your password if you forgot it."))
        self.email = email


class TokenError(Exception):
    """A signed link that is tampered with, for another purpose, or already used."""


class TokenExpired(TokenError):
    """A signed link older than TOKEN_MAX_AGE_HOURS."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def countries(locale: Locale) -> list[tuple[str, str]]:
    """(ISO 3166 code, name in ``locale``) for each country, in alphabetical order of the name."""
    return sorted(
        ((code, name) for code, name in locale.territories.items()
         if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES),
        key=lambda item: item[1].casefold(),
    )


def register(session: Session, organisation: str, name: str, email: str, password: str,
             language: str, country: str) -> User:
    """Open an account for a client organisation with its owner."""
    country = country.upper()
    if country not in dict(countries(Locale("en"))):
        raise AccountError("country", _l("Choose a country from the list."))
    account = Account(name=_text("organisation", organisation), country=country)
    owner = new_user(email, name, password, language, role="owner", account=account)
    return add_user(session, owner)


def create_staff(session: Session, name: str, email: str, password: str, language: str = "en",
                 role: str = "admin") -> User:
    """A member of the provider's team: no account, sees the back office,
    as an ``admin`` or an ``agent`` (STAFF_ROLES). The operator vouches for
    the address, so it counts as verified."""
    if role not in STAFF_ROLES:
        raise AccountError("role", _l("Choose a role from the list."))
    staff = new_user(email, name, password, language, is_staff=True, role=role, email_verified_at=clock.now())
    return add_user(session, staff)


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user with this email and password, else None (whichever of the two was wrong)."""
    user = find_user(session, email)
    hasher = password_hasher()
    try:
        hasher.verify(user.password_hash if user else _unknown_user_hash(hasher), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.removed_at is not None:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        with atomic(session):
            user.password_hash = hasher.hash(password)
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Also invalidates every reset link sent before (they carry the old hash's
    fingerprint) and ends every login of the user, wherever it is: whoever
    knew the old password, or held a cookie, is out."""
    with atomic(session):
        user.password_hash = _hash_password(password)
        sessions.end_all(session, user)


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """The user changes their password knowing the current one; AccountError otherwise."""
    try:
        password_hasher().verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise AccountError("current", _l("This is not your current password.")) from None
    set_password(session, user, new)


def mark_email_verified(session: Session, user: User) -> None:
    with atomic(session):
        user.email_verified_at = clock.now()


# ------------------------------------------------------------ signed links
#
# A link carries the user's id and a fingerprint of the state it is meant to
# change. Once that state changes (the password is reset, the email is
# verified) the fingerprint no longer matches: the link works once.

RESET, VERIFY = "reset-password", "verify-email"


def make_token(user: User, purpose: str, now: Callable[[], float] = time.time) -> str:
    """A signed token for ``user``; ``now`` lets a test issue it in the past."""
    return _serializer(purpose, now).dumps({"id": user.id, "fp": _fingerprint(user, purpose)})


def user_for_token(session: Session, token: str, purpose: str) -> User:
    """The user a token was made for, if it is still valid; else TokenError."""
    max_age = current_app.config["TOKEN_MAX_AGE_HOURS"] * 3600
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenExpired(purpose) from None
    except BadSignature:
        raise TokenError(purpose) from None
    user = session.get(User, data["id"])
    if user is None or data.get("fp") != _fingerprint(user, purpose):
        raise TokenError(purpose)
    return user


def send_verification(user: User, next: str | None = None) -> bool:
    """Mail the link that verifies the user's address, now; False when it
    could not go yet (it stays queued and is tried again). ``next``: a path
    of this site (the caller checked it) the link leads back to once the
    address is verified, such as the trial the person came for."""
    return _send_link(user, "verify_email", {"next": next} if next else None)


def sign_up(session: Session, organisation: str, name: str, email: str, password: str, language: str,
            country: str, *, next: str | None = None) -> list[str]:
    """What the sign-up form starts after its answer (common.mail.delivery.after_answer),
    which is the same whoever uses the address: a new address gets its
    account and the link that confirms it; for one an account uses, its owner
    is told instead (the form, which anybody can fill in, is not). Returns the
    keys of the mail queued. The form checked the fields by the same rules."""
    try:
        user = register(session, organisation, name, email, password, language, country)
    except EmailTaken:
        return queue_already_registered(email)
    except AccountError as error:
        # Only a rule changed in the service and not in the form lands here.
        current_app.logger.warning("sign-up refused after the answer: %s (%s)", error.message, error.field)
        return []
    return queue_verification(user, next)


def queue_verification(user: User, next: str | None = None) -> list[str]:
    """Queue the verification link; it goes when the request is over. Returns the keys queued."""
    return _queue_link(user, "verify_email", {"next": next} if next else None)


def queue_already_registered(email: str) -> list[str]:
    """Someone signed up with an address an account uses: tell its owner
    (with a link to choose a new password). Returns the keys queued."""
    user = find_user(db.session(), email)
    if user is None or user.removed_at is not None:
        return []
    return _queue_link(user, "reset_password", {"signup": True})


def queue_password_reset(email: str) -> list[str]:
    """A reset link to ``email`` if an account uses it, else nothing; the keys queued."""
    user = find_user(db.session(), email)
    if user is None or user.removed_at is not None:
        return []
    return _queue_link(user, "reset_password")


def _queue_link(user: User, kind: str, payload: dict | None = None) -> list[str]:
    with atomic(db.session()):
        return outbox.enqueue(db.session(), kind, f"{kind}:{user.id}:{uuid.uuid4().hex}", [user], now=clock.now(),
                              payload=payload)


def _send_link(user: User, kind: str, payload: dict | None = None) -> bool:
    # Each request is a message of its own: a person asking again gets another mail.
    with atomic(db.session()):
        keys = outbox.enqueue(db.session(), kind, f"{kind}:{user.id}:{uuid.uuid4().hex}", [user], now=clock.now(),
                              payload=payload)
    return delivery.deliver_now(keys)


# ------------------------------------------------------------ internals


def _hash_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError("password", _l("The password must have %(min)d to %(max)d characters.",
                                          min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH))
    return password_hasher().hash(password)


def _text(field: str, value: str, limit: int = 200) -> str:
    # A name is one line: it goes into mail headers and CSV rows.
    value = single_line(value)
    if not 1 <= len(value) <= limit:
        raise AccountError(field, _l("Enter 1 to %(max)d characters.", max=limit))
    return value


def new_user(email: str, name: str, password: str, language: str, **fields: Any) -> User:
    # The forms check the same; services are also called from the command line.
    try:
        validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise AccountError("email", _l("Enter a valid email address.")) from None
    if language not in LANGUAGES:
        raise AccountError("language", _l("Choose a language from the list."))
    return User(email=normalise_email(email), name=_text("name", name), password_hash=_hash_password(password),
                language=language, **fields)


def add_user(session: Session, user: User) -> User:
    """Insert, as a unit of work of its own or the caller's (checkout); a
    taken email (even one taken by a concurrent request a moment ago) becomes
    an AccountError and nothing of the unit is kept."""
    taken = EmailTaken(user.email)
    with atomic(session):
        if find_user(session, user.email) is not None:
            raise taken
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            raise taken from None
    return user


def _fingerprint(user: User, purpose: str) -> str:
    state = user.password_hash if purpose == RESET else f"{user.email}|{user.email_verified_at is None}"
    return hashlib.sha256(state.encode()).hexdigest()[:16]


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be set, for links issued in the past."""

    def __init__(self, *args: Any, now: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return int(self._now())


def _serializer(purpose: str, now: Callable[[], float] = time.time) -> URLSafeTimedSerializer:
    # One salt per purpose: a verification link can never serve as a reset link.
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"forfait.{purpose}",
                                  signer=_ClockSigner, signer_kwargs={"now": now})
