"""Login throttling that counts failed logins, never successes, and cannot
be turned against the person whose account is guessed.

Counting every attempt per email let anyone lock a chosen user out (ten
wrong passwords, and the right one answered 429 too); counting per address
locked out everybody behind one proxy. Here only failures count, under keys
that the guesser's own failures fill:

- per email and address (LOGIN_RATE_LIMIT, several windows: the wait grows
  with the failures, a minute, then an hour, then a day);
- per address, whatever the email (LOGIN_ADDRESS_RATE_LIMIT), and per email
  from every address that failed on it (LOGIN_ACCOUNT_RATE_LIMIT): neither
  stops a *known device*, a browser holding a signed cookie that a correct
  login for that email gave it, nor (the latter) an address that never
  failed on the account: the owner logging in from home is not kept out by
  someone guessing elsewhere;
- per device cookie (LOGIN_RATE_LIMIT): a device cookie that fails too often
  stops counting as known.

The counts live in the limits library's storage, the same
RATELIMIT_STORAGE_URI as flask-limiter's, so that several processes sharing
Redis share them.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass, field

from flask import Flask, current_app, request
from itsdangerous import BadSignature, URLSafeSerializer
from limits import RateLimitItem, parse, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.wrappers import Response

DEVICE_COOKIE = "forfait_device"
DEVICE_MAX_AGE = 365 * 24 * 3600
# How many accounts one browser remembers having logged in to.
DEVICE_ACCOUNTS = 10
# Whether an address failed on an account lately (LOGIN_ACCOUNT_RATE_LIMIT applies to it).
FAILED_HERE = parse("1 per day")


@dataclass
class Attempt:
    """Who tries to log in, from where, with which device cookie."""

    email: str
    address: str
    device: str | None = None
    known_for: list[str] = field(default_factory=list)

    @property
    def account(self) -> str:
        # The email is not kept in the store as typed.
        return hashlib.sha256(self.email.encode()).hexdigest()[:32]

    @property
    def known(self) -> bool:
        return self.device is not None and self.account in self.known_for


class Throttle:
    def __init__(self, storage: Storage, prefix: str, pair: list[RateLimitItem], address: list[RateLimitItem],
                 account: list[RateLimitItem]) -> None:
        self.strategy = MovingWindowRateLimiter(storage)
        self.prefix = prefix
        self.limits = {"pair": pair, "address": address, "account": account, "device": pair}

    def _wait(self, kind: str, *identifiers: str) -> float | None:
        """Seconds until one more failure is allowed under ``kind``, or None if it is now."""
        waits = [self.strategy.get_window_stats(item, self.prefix, kind, *identifiers).reset_time - time.time()
                 for item in self.limits[kind] if not self.strategy.test(item, self.prefix, kind, *identifiers)]
        return max(waits) if waits else None

    def refused(self, attempt: Attempt) -> int | None:
        """Seconds this attempt must wait, or None when it may be checked."""
        waits = [self._wait("pair", attempt.account, attempt.address)]
        known = attempt.device is not None and attempt.known and self._wait("device", attempt.device) is None
        if not known:
            waits.append(self._wait("address", attempt.address))
            if not self.strategy.test(FAILED_HERE, self.prefix, "failed-here", attempt.account, attempt.address):
                waits.append(self._wait("account", attempt.account))
        found = [wait for wait in waits if wait is not None]
        return max(1, math.ceil(max(found))) if found else None

    def failed(self, attempt: Attempt) -> None:
        for kind, identifiers in (("pair", (attempt.account, attempt.address)), ("address", (attempt.address,)),
                                  ("account", (attempt.account,)),
                                  ("device", (attempt.device,) if attempt.device else None)):
            if identifiers is None:
                continue
            for item in self.limits[kind]:
                self.strategy.hit(item, self.prefix, kind, *identifiers)
        self.strategy.hit(FAILED_HERE, self.prefix, "failed-here", attempt.account, attempt.address)

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: this address's mistakes on this account are forgiven."""
        for item in self.limits["pair"]:
            self.strategy.clear(item, self.prefix, "pair", attempt.account, attempt.address)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="forfait.device")


def attempt(email: str) -> Attempt:
    """The login attempt of this request for ``email`` (already normalised)."""
    made = Attempt(email=email, address=request.remote_addr or "")
    cookie = request.cookies.get(DEVICE_COOKIE)
    if cookie:
        try:
            data = _serializer().loads(cookie)
            made.device, made.known_for = str(data["d"]), list(data["a"])
        except (BadSignature, KeyError, TypeError, ValueError):
            pass
    return made


def remember_device(response: Response, made: Attempt) -> None:
    """After a correct login: this browser is a known device for the account."""
    accounts = [made.account] + [a for a in made.known_for if a != made.account]
    value = _serializer().dumps({"d": made.device or secrets.token_urlsafe(16), "a": accounts[:DEVICE_ACCOUNTS]})
    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))


def get() -> Throttle:
    return current_app.extensions["forfait.throttle"]


def init_app(app: Flask) -> None:
    config = app.config
    storage = storage_from_string(config["RATELIMIT_STORAGE_URI"])
    if not isinstance(storage, Storage):
        raise ValueError(f"RATELIMIT_STORAGE_URI: {config['RATELIMIT_STORAGE_URI']!r} is an asynchronous storage")
    app.extensions["forfait.throttle"] = Throttle(
        storage,
        (config.get("RATELIMIT_KEY_PREFIX") or "forfait") + ":login",
        parse_many(config["LOGIN_RATE_LIMIT"]), parse_many(config["LOGIN_ADDRESS_RATE_LIMIT"]),
        parse_many(config["LOGIN_ACCOUNT_RATE_LIMIT"]))
